//! The buffers of the MLP's stages: a [`Workspace`] and the per-chunk buffers it cuts a batch into.
//!
//! Every buffer whose size follows from the shapes is allocated when the workspace is built,
//! so that running out of memory is an error of the constructor, never an abort inside the
//! training loop. The stages themselves live in [`super::forward`], [`super::backward`] and
//! [`super::update`].

use ndarray::{Array1, Array2};

use super::buf::Buf;
use super::forward::panel_room;
use super::partition::{MAX_LIVE_CHUNKS, max_chunk_rows};
use crate::error::{CoreError, Result, checked_len as mul, try_filled, try_vec};
use crate::platform::SimdLevel;
use crate::real::Real;

/// The buffers of one row chunk (see [`super::partition`]).
#[derive(Debug, Clone)]
pub(super) struct Chunk<T> {
    /// `acts[l]` holds layer `l + 1`'s activations, `(len, units[l + 1])` row-major.
    pub(super) acts: Vec<Buf<T>>,
    /// `deltas[l]`: gradient of the loss w.r.t. layer `l + 1`'s pre-activations.
    pub(super) deltas: Vec<Buf<T>>,
    /// This chunk's `activations[l].T @ deltas[l]`.
    pub(super) coef_grads: Vec<Buf<T>>,
    /// This chunk's column sums of `deltas[l]`.
    pub(super) int_grads: Vec<Buf<T>>,
    /// This chunk's [`super::Loss::sum`].
    pub(super) loss: f64,
    /// This chunk's share of the coefficients' sum of squares (see [`super::backward`]).
    pub(super) sumsq: f64,
    /// The chunk's gathered input rows, targets and weights (shuffled training batches).
    pub(super) xb: Buf<T>,
    pub(super) yb: Buf<T>,
    pub(super) swb: Vec<T>,
    /// Scratch space of the tiled kernels: packed column tiles, a transposed gradient.
    pub(super) panel: Buf<T>,
    pub(super) tr: Buf<T>,
    /// The log-loss's logarithms (see [`super::loss::log_loss_and_delta`]).
    pub(super) logs: Vec<f64>,
    /// Part of a whole-batch workspace: GEMMs keep their plain orientation.
    pub(super) whole: bool,
}

impl<T: Real> Chunk<T> {
    /// A chunk of `len` rows. Every buffer whose size follows from the shapes is allocated
    /// here, up front, so that an allocation failure is an error of the constructor (and
    /// never an abort inside the training loop): the activations (and with `grads` the
    /// deltas and gradients) written in full, and the room of the buffers the passes grow
    /// on demand, reserved but not written: the tiled kernels' packed panels (unless
    /// `whole`), and for a training chunk (`grads` and not `whole`) the gathered rows, the
    /// transposed gradients and the log-loss's logarithms.
    fn new(units: &[usize], len: usize, grads: bool, whole: bool) -> Result<Self> {
        const WHAT: &str = "the MLP's per-chunk activations and gradients";
        let zero = T::zero();
        let per_layer = |on: bool| -> Result<Vec<Buf<T>>> {
            units[1..]
                .iter()
                .map(|&w| {
                    let n = if on { mul(len, w, WHAT)? } else { 0 };
                    Buf::try_filled(n, zero, WHAT)
                })
                .collect()
        };
        let train = grads && !whole;
        let (d, n_out) = (units[0], units[units.len() - 1]);
        let tr_room = units
            .windows(2)
            .map(|w| w[0].saturating_mul(w[1]))
            .max()
            .unwrap_or(0);
        let room = |n: usize| if train { n } else { 0 };
        // Forward-only chunks (validation scores) run the tiled kernels too.
        let panel_room = if whole { 0 } else { panel_room(units, len) };
        Ok(Self {
            acts: per_layer(true)?,
            deltas: per_layer(grads)?,
            coef_grads: units
                .windows(2)
                .map(|w| {
                    let n = if grads { mul(w[0], w[1], WHAT)? } else { 0 };
                    Buf::try_filled(n, zero, WHAT)
                })
                .collect::<Result<_>>()?,
            int_grads: units[1..]
                .iter()
                .map(|&w| Buf::try_filled(if grads { w } else { 0 }, zero, WHAT))
                .collect::<Result<_>>()?,
            loss: 0.0,
            sumsq: 0.0,
            xb: Buf::try_with_room(room(len.saturating_mul(d)), zero, WHAT)?,
            yb: Buf::try_with_room(room(len.saturating_mul(n_out)), zero, WHAT)?,
            swb: try_vec(room(len), WHAT)?,
            panel: Buf::try_with_room(panel_room, zero, WHAT)?,
            tr: Buf::try_with_room(room(tr_room), zero, WHAT)?,
            logs: try_vec(room(len.saturating_mul(2)), WHAT)?,
            whole,
        })
    }
}

/// Every buffer one loss-and-gradient evaluation needs, for batches of up to `cap` rows.
///
/// Allocated once per fit; batches use the leading rows. The stages run on it: the forward
/// pass ([`Workspace::forward`], in [`super::forward`]), the loss and gradients
/// ([`Workspace::backprop`], in [`super::backward`]) and the optimizer step
/// ([`Workspace::update_params`], in [`super::update`]). A batch is cut into the fixed row
/// chunks of [`super::partition`], which run in parallel with their own buffers; the gradients
/// are then summed chunk after chunk, so results never depend on the thread count.
#[derive(Debug, Clone)]
pub struct Workspace<T> {
    pub(super) units: Vec<usize>,
    pub(super) cap: usize,
    pub(super) chunks: Vec<Chunk<T>>,
    /// The output-layer activations of the last [`Workspace::forward`], row-major.
    pub(super) out: Vec<T>,
    pub(super) level: SimdLevel,
    /// One chunk for the whole batch, GEMMs parallel inside (see [`Workspace::whole_batch`]).
    pub(super) whole: bool,
    /// Set by the deferred evaluations: the per-chunk gradients of this many chunks wait
    /// for [`Workspace::update_params`], with the L2 factor and the gradient scale (the
    /// reciprocal of the weight sum).
    pub(super) pending: Option<(usize, T, T)>,
    /// Gradient of each coefficient matrix (scikit-learn's `coef_grads`).
    pub coef_grads: Vec<Array2<T>>,
    /// Gradient of each intercept vector (scikit-learn's `intercept_grads`).
    pub intercept_grads: Vec<Array1<T>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for a network with layer widths `units` and batches of up to `cap` rows.
    pub fn new(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, true, false)
    }

    /// Buffers for full-batch evaluations (L-BFGS) that keep the original summation order:
    /// one chunk (the GEMMs, parallel inside, sum over all rows) and a sequential L2 sum.
    /// L-BFGS amplifies last-bit differences of the loss and gradient over hundreds of
    /// iterations, and this order is the one whose results track scikit-learn's.
    pub fn whole_batch(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, true, true)
    }

    /// Buffers for [`Workspace::forward`] only (no gradient buffers).
    pub fn forward_only(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, false, false)
    }

    fn build(units: &[usize], cap: usize, grads: bool, whole: bool) -> Result<Self> {
        const WHAT: &str = "the MLP's gradients and outputs";
        let cap = cap.max(1);
        let max_rows = max_chunk_rows(units);
        let (live, len) = if whole {
            (1, cap)
        } else {
            (
                cap.div_ceil(max_rows).min(MAX_LIVE_CHUNKS),
                cap.min(max_rows),
            )
        };
        let chunks = (0..live)
            .map(|_| Chunk::new(units, len, grads, whole))
            .collect::<Result<_>>()?;
        let n_out = units[units.len() - 1];
        let zeros2 = |w: &[usize]| -> Result<Array2<T>> {
            let (r, c) = if grads { (w[0], w[1]) } else { (0, 0) };
            let v = try_filled(mul(r, c, WHAT)?, T::zero(), WHAT)?;
            Array2::from_shape_vec((r, c), v)
                .map_err(|e| CoreError::invalid("units", e.to_string()))
        };
        let coef_grads = units.windows(2).map(zeros2).collect::<Result<_>>()?;
        let intercept_grads = units[1..]
            .iter()
            .map(|&w| {
                Ok(Array1::from_vec(try_filled(
                    if grads { w } else { 0 },
                    T::zero(),
                    WHAT,
                )?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            units: units.to_vec(),
            cap,
            chunks,
            out: if grads {
                Vec::new()
            } else {
                try_filled(mul(cap, n_out, WHAT)?, T::zero(), WHAT)?
            },
            level: SimdLevel::detected(),
            whole,
            pending: None,
            coef_grads,
            intercept_grads,
        })
    }

    /// The largest batch these buffers hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The output-layer activations of the last [`Workspace::forward`] over `rows` rows.
    pub fn output(&self, rows: usize) -> &[T] {
        let n_out = self.units[self.units.len() - 1];
        &self.out[..rows * n_out]
    }
}
