//! The optimizer step on a [`Workspace`]: the update with the gradients of its last
//! evaluation, summed from the chunks' parts inside the optimizer's own pass when the
//! evaluation left them there (see [`Workspace::backprop_deferred`]).

use super::optim::{Grads, Optimizer, SummedGrads};
use super::workspace::Workspace;
use crate::exec::Exec;
use crate::exec::Threads;
use crate::real::Real;

impl<T: Real> Workspace<T> {
    /// One optimizer step with the gradients of the last evaluation: summed block by block
    /// in the update's own pass after [`Workspace::backprop_deferred`], or read from
    /// [`Workspace::coef_grads`]/[`Workspace::intercept_grads`] otherwise.
    pub fn update_params(
        &mut self,
        optimizer: &mut Optimizer,
        params: &mut [&mut [T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        threads: Threads,
    ) {
        self.update_params_on(optimizer, params, first, second, threads.into());
    }

    /// [`Workspace::update_params`] on `exec` (the training loop's team). After a deferred
    /// evaluation it returns the updated coefficients' sum of squares, which the next
    /// batch's loss needs (computed in the update's pass while each block is in cache,
    /// instead of by the chunks over every coefficient again).
    pub(crate) fn update_params_on(
        &mut self,
        optimizer: &mut Optimizer,
        params: &mut [&mut [T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        exec: Exec<'_>,
    ) -> Option<f64> {
        let layers = self.units.len() - 1;
        if let Some((n, alpha, scale)) = self.pending.take() {
            let chunks = &self.chunks[..n];
            let parts: Vec<Vec<&[T]>> = (0..layers)
                .map(|l| chunks.iter().map(|c| &c.coef_grads[l][..]).collect())
                .chain((0..layers).map(|l| chunks.iter().map(|c| &c.int_grads[l][..]).collect()))
                .collect();
            let summed = SummedGrads {
                parts: &parts,
                decayed: layers,
                alpha,
                scale,
            };
            optimizer.update_with_on(params, Grads::Summed(&summed), first, second, exec)
        } else {
            let grads: Vec<&[T]> = self
                .coef_grads
                .iter()
                .map(|g| g.as_slice().expect("owned gradient is contiguous"))
                .chain(
                    self.intercept_grads
                        .iter()
                        .map(|g| g.as_slice().expect("owned gradient is contiguous")),
                )
                .collect();
            optimizer.update_par(params, &grads, first, second, exec.threads());
            None
        }
    }
}
