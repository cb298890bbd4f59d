//! What a search computes and how it reports it: the requested `k`s, the metric and
//! precision of the distances reported, scikit-learn's heap strategy, and the final sort of
//! each query's heaps into its rows of the results.

use crate::error::{CoreError, Result};
use crate::exec::{Cancel, Threads};
use crate::neighbors::Metric;
use crate::neighbors::heap::{KHeap, simultaneous_sort};
use crate::neighbors::precision::Precision;
use crate::real::Real;

/// scikit-learn's `pairwise_dist_chunk_size` default, which enters its strategy choice.
const SKLEARN_CHUNK: usize = 256;

/// How scikit-learn's `ArgKmin` (run with one thread) arranges its heaps before sorting them.
///
/// With `ParallelOnX` the per-query heap is sorted as filled. With `ParallelOnY` the heap
/// filled by the (single) worker is pushed, slot by slot, into a fresh heap, which is then
/// sorted; the kept neighbours are the same, the order of equal distances may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Heaps are sorted directly.
    ParallelOnX,
    /// Heaps are re-pushed into fresh heaps, then sorted.
    ParallelOnY,
}

/// The strategy scikit-learn's `ArgKmin` picks with one thread and its default chunk size
/// (`BaseDistancesReduction.__init__`, `strategy="auto"`).
pub fn sklearn_strategy(n_queries: usize, n_train: usize) -> Strategy {
    if n_train < n_queries || 4 * SKLEARN_CHUNK < n_queries {
        Strategy::ParallelOnX
    } else {
        Strategy::ParallelOnY
    }
}

/// Checks the requested `k`s against the training set, with scikit-learn's messages.
pub(crate) fn validate_ks(ks: &[usize], n_train: usize) -> Result<()> {
    if ks.is_empty() {
        return Err(CoreError::invalid("n_neighbors", "no value of k was given"));
    }
    for &k in ks {
        if k == 0 {
            return Err(CoreError::invalid(
                "n_neighbors",
                "Expected n_neighbors > 0. Got 0",
            ));
        }
        if k > n_train {
            return Err(CoreError::invalid(
                "n_neighbors",
                format!(
                    "Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, \
                     n_samples_fit = {n_train}"
                ),
            ));
        }
    }
    Ok(())
}

/// What a search computes and how it reports it (see `search_tiles`).
pub(crate) struct Plan<'a> {
    pub(crate) n_q: usize,
    pub(crate) n_t: usize,
    pub(crate) ks: &'a [usize],
    pub(crate) metric: &'a Metric,
    pub(crate) threads: Threads,
    pub(crate) precision: Precision,
    pub(crate) strategy: Strategy,
    /// Positions in `ks` in increasing `k` order, and those `k`.
    pub(crate) order: Vec<usize>,
    pub(crate) sorted_ks: Vec<usize>,
    /// Where each `k`'s values start in a query's row of results, and the row length.
    pub(crate) offsets: Vec<usize>,
    pub(crate) kk: usize,
    /// Polled between tiles (see `kneighbors_multi_with`).
    pub(crate) cancel: &'a Cancel,
}

impl<'a> Plan<'a> {
    /// This plan, stopping soon after `cancel` is set.
    pub(crate) fn with_cancel(self, cancel: &'a Cancel) -> Self {
        Self { cancel, ..self }
    }

    pub(crate) fn new(
        n_q: usize,
        n_t: usize,
        ks: &'a [usize],
        metric: &'a Metric,
        threads: Threads,
        precision: Precision,
    ) -> Self {
        // Heaps in increasing size; `order[i]` is the position in `ks` of the i-th smallest.
        let mut order: Vec<usize> = (0..ks.len()).collect();
        order.sort_by_key(|&i| ks[i]);
        let sorted_ks = order.iter().map(|&i| ks[i]).collect();
        let offsets = ks
            .iter()
            .scan(0usize, |acc, &k| {
                let o = *acc;
                *acc += k;
                Some(o)
            })
            .collect();
        Self {
            n_q,
            n_t,
            ks,
            metric,
            threads,
            precision,
            strategy: sklearn_strategy(n_q, n_t),
            order,
            sorted_ks,
            offsets,
            kk: ks.iter().sum(),
            cancel: Cancel::never(),
        }
    }

    /// Writes one query's results (`row_*`: its `kk` slots) from sorted candidates: the
    /// first `k` for each `k` (a heap's sorted values for its own `k` alone).
    fn write(
        &self,
        slot: usize,
        vals: &[impl Real],
        idx: &[usize],
        row_d: &mut [f64],
        row_i: &mut [usize],
    ) {
        let o = self.offsets[slot];
        let k = self.ks[slot];
        for (j, (&v, &ix)) in vals.iter().zip(idx).take(k).enumerate() {
            row_d[o + j] = self.precision.dist(self.metric, v);
            row_i[o + j] = ix;
        }
    }
}

/// Sorts each query's filled heaps (see [`finish_heap`]) into its rows of the results;
/// `fresh` holds one spare heap per `k`.
pub(crate) fn finish_tile<T: Real>(
    plan: &Plan<'_>,
    heaps: &mut [Vec<KHeap<T>>],
    fresh: &mut [KHeap<T>],
    out_d: &mut [f64],
    out_i: &mut [usize],
) {
    let kk = plan.kk;
    let rows = out_d.chunks_exact_mut(kk).zip(out_i.chunks_exact_mut(kk));
    for (per_query, (row_d, row_i)) in heaps.iter_mut().zip(rows) {
        for ((&slot, h), spare) in plan
            .order
            .iter()
            .zip(per_query.iter_mut())
            .zip(fresh.iter_mut())
        {
            finish_heap(h, plan.strategy, spare);
            plan.write(slot, &h.values, &h.indices, row_d, row_i);
        }
    }
}

/// Puts a filled heap in scikit-learn's final order (see [`Strategy`]); `spare` is a heap
/// of the same size to re-push into (its contents are overwritten).
pub(crate) fn finish_heap<T: Real>(h: &mut KHeap<T>, strategy: Strategy, spare: &mut KHeap<T>) {
    if strategy == Strategy::ParallelOnY {
        spare.reset();
        for (&v, &i) in h.values.iter().zip(&h.indices) {
            spare.push(v, i);
        }
        std::mem::swap(h, spare);
    }
    simultaneous_sort(&mut h.values, &mut h.indices);
}
