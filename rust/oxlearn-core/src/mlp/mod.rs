//! Multi-layer perceptrons: scikit-learn's `BaseMultilayerPerceptron` arithmetic in Rust.
//!
//! Modules, by stage:
//!
//! * [`workspace`]: [`Workspace`], the preallocated buffers of a batch and its row chunks.
//! * [`forward`]: the forward pass (one chunk, a batch on a workspace, [`forward_predict`]).
//! * [`backward`]: the loss and its gradients for a batch (scikit-learn's `_backprop`).
//! * [`update`]: the optimizer step on a workspace, summing deferred chunk gradients in its pass.
//! * [`train`]: the whole `_fit_stochastic` loop, with an epoch-end hook (interrupts, callbacks).
//! * [`packed`]: the packed parameter vector and the L-BFGS objective, [`loss_grad_packed`].
//!
//! and what the stages use:
//!
//! * [`partition`]: the fixed row partition that parallelises a batch (same bits for any
//!   thread count).
//! * [`tiled`]: register-tiled products fused with their element-wise passes (every net on
//!   AVX-512, narrow nets elsewhere), and the input zero masks they skip.
//! * [`elementwise`]: the gradient reduction, the final gradient blocks and the sum of squares.
//! * [`activation`]: activations and hidden derivatives, fused with bias and column sums.
//! * [`loss`]: scikit-learn's `LOSS_FUNCTIONS` with their eps clipping.
//! * [`optim`]: the SGD (momentum, Nesterov, three schedules) and Adam updates.
//! * [`score`]: the early-stopping validation scores.
//! * [`buf`]: cache-line-aligned buffers for the vector kernels.
//!
//! The CPU-level builds of the element-wise passes come from [`crate::platform`], and the
//! threads (the spinning team between a step's parallel sections, the pools) from
//! [`crate::exec`].
//!
//! Parameters follow scikit-learn's layout: `coefs[i]` has shape `(units[i], units[i + 1])`
//! and `intercepts[i]` shape `(units[i + 1],)`; the packed vector (L-BFGS) is every coef
//! raveled in C order, then every intercept.
//!
//! ```
//! use ndarray::array;
//! use oxlearn_core::mlp::{forward_predict, Activation, OutActivation};
//! use oxlearn_core::Threads;
//! let x = array![[1.0_f64, 2.0]];
//! let w = array![[0.5], [0.25]];
//! let b = array![0.0];
//! let out = forward_predict(
//!     x.view(), &[w.view()], &[b.view()], Activation::Relu, OutActivation::Identity,
//!     Threads::Single,
//! ).unwrap();
//! assert_eq!(out[[0, 0]], 1.0);
//! ```

pub mod activation;
pub mod backward;
pub mod buf;
pub mod elementwise;
pub mod forward;
pub mod loss;
pub mod optim;
pub mod packed;
pub mod partition;
pub mod score;
pub mod tiled;
pub mod train;
pub mod update;
pub mod workspace;

pub use activation::{Activation, OutActivation};
pub use forward::forward_predict;
pub use loss::Loss;
pub use optim::{Optimizer, Schedule};
pub use packed::loss_grad_packed;
pub use score::ScoreKind;
pub use train::{
    EpochControl, EpochEnd, StopReason, TrainConfig, TrainData, TrainState, TrainSummary,
    fit_stochastic,
};
pub use workspace::Workspace;

use ndarray::{ArrayView1, ArrayView2};

use crate::error::{CoreError, Result};

/// The fixed description of a network: layer widths and the functions between them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// `[n_features, hidden..., n_outputs]`.
    pub units: Vec<usize>,
    /// Hidden-layer activation.
    pub activation: Activation,
    /// Output activation.
    pub out_activation: OutActivation,
    /// The loss (already switched to `binary_log_loss` for a logistic output, as
    /// scikit-learn's `_backprop` does).
    pub loss: Loss,
}

impl NetSpec {
    /// Builds a spec; `log_loss` with a logistic output becomes `binary_log_loss`.
    pub fn new(
        units: Vec<usize>,
        activation: Activation,
        out_activation: OutActivation,
        loss: Loss,
    ) -> Result<Self> {
        if units.len() < 2 {
            return Err(CoreError::invalid(
                "layer_units",
                format!("need at least an input and an output layer, got {units:?}"),
            ));
        }
        if units.contains(&0) {
            return Err(CoreError::invalid(
                "layer_units",
                format!("every layer needs at least one unit, got {units:?}"),
            ));
        }
        let loss = if loss == Loss::LogLoss && out_activation == OutActivation::Logistic {
            Loss::BinaryLogLoss
        } else {
            loss
        };
        Ok(Self {
            units,
            activation,
            out_activation,
            loss,
        })
    }

    /// Number of weight layers (`len(coefs_)`).
    pub fn n_weight_layers(&self) -> usize {
        self.units.len() - 1
    }

    /// Total number of parameters (the packed length).
    pub fn n_params(&self) -> usize {
        self.units.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

/// Checks that `coefs`/`intercepts` match `units` (shapes, counts).
pub fn check_params<T>(
    units: &[usize],
    coefs: &[ArrayView2<'_, T>],
    intercepts: &[ArrayView1<'_, T>],
) -> Result<()> {
    let layers = units.len().saturating_sub(1);
    if coefs.len() != layers {
        return Err(CoreError::shape("number of coefs", layers, coefs.len()));
    }
    if intercepts.len() != layers {
        return Err(CoreError::shape(
            "number of intercepts",
            layers,
            intercepts.len(),
        ));
    }
    for (i, (c, b)) in coefs.iter().zip(intercepts).enumerate() {
        if c.nrows() != units[i] {
            return Err(CoreError::shape(
                format!("coefs[{i}] rows"),
                units[i],
                c.nrows(),
            ));
        }
        if c.ncols() != units[i + 1] {
            return Err(CoreError::shape(
                format!("coefs[{i}] columns"),
                units[i + 1],
                c.ncols(),
            ));
        }
        if b.len() != units[i + 1] {
            return Err(CoreError::shape(
                format!("intercepts[{i}] length"),
                units[i + 1],
                b.len(),
            ));
        }
    }
    Ok(())
}

/// Layer widths implied by a list of coefficient matrices (`[rows of coefs[0], cols...]`).
pub fn units_of<T>(coefs: &[ArrayView2<'_, T>]) -> Result<Vec<usize>> {
    let first = coefs
        .first()
        .ok_or_else(|| CoreError::invalid("coefs", "at least one weight matrix is required"))?;
    let mut units = vec![first.nrows()];
    for (i, c) in coefs.iter().enumerate() {
        if c.nrows() != units[i] {
            return Err(CoreError::shape(
                format!("coefs[{i}] rows"),
                units[i],
                c.nrows(),
            ));
        }
        units.push(c.ncols());
    }
    Ok(units)
}
