//! The radius search's tiles: every training row within a radius of each query row, the
//! tiles filled by a [`Fill`] and scanned in increasing training index.

use crate::error::{Result, try_filled, try_reserve, try_vec};
use crate::exec::{Cancel, Threads};
use crate::neighbors::Metric;
use crate::neighbors::heap::{simultaneous_sort, stable_sort};
use crate::neighbors::precision::Precision;
use crate::real::Real;

use super::reduce::epilogue;
use super::tiles::{RESULTS, effective_threads, over_query_tiles};
use super::{Fill, TRAIN_TILE};

/// Neighbours within a radius, in compressed-row form: query `i`'s neighbours are
/// `indices[indptr[i]..indptr[i + 1]]` at `distances[...]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RadiusResult {
    /// Row pointers, `n_queries + 1` of them.
    pub indptr: Vec<usize>,
    /// Training indices.
    pub indices: Vec<usize>,
    /// Distances (as the metric defines them, not reduced).
    pub distances: Vec<f64>,
}

/// A radius search's parameters (see `radius_neighbors_with`).
pub(crate) struct RadiusSearch<'a> {
    pub(crate) radius: f64,
    pub(crate) metric: &'a Metric,
    pub(crate) sort_results: bool,
    pub(crate) threads: Threads,
    pub(crate) precision: Precision,
    pub(crate) cancel: &'a Cancel,
}

impl RadiusSearch<'_> {
    /// Every training row within the radius of each of `n_q` query rows, among `n_t`
    /// training rows of `d` features, the tiles of distances filled by `fill` (see
    /// `radius_neighbors`).
    pub(crate) fn tiles<T: Real>(
        &self,
        fill: &impl Fill<T>,
        n_q: usize,
        n_t: usize,
        d: usize,
    ) -> Result<RadiusResult> {
        let Self {
            radius,
            metric,
            sort_results,
            threads,
            precision,
            cancel,
        } = *self;
        let threads = effective_threads(threads, n_q, n_t, d);
        let stable = matches!(metric, Metric::Cosine | Metric::Precomputed);
        // Cosine and precomputed distances are compared in the input dtype, as NumPy
        // compares scikit-learn's distance matrix with the radius; the other metrics'
        // reduced distances in float64, as its compiled radius search does (an exact
        // float32 tile included).
        let r_t = T::from_f64_lossy(metric.dist_to_rdist(radius));
        let r64 = precision.rdist_radius(metric, radius);
        let within = |v: T| {
            if stable {
                v <= r_t
            } else {
                v.to_f64_lossless() <= r64
            }
        };
        let tiles = over_query_tiles(n_q, threads, fill.query_grid(), |qs, qe| -> Result<_> {
            let mut buf = try_filled((qe - qs) * TRAIN_TILE.min(n_t), T::zero(), RESULTS)?;
            let mut found: Vec<(Vec<T>, Vec<usize>)> =
                try_filled(qe - qs, (Vec::new(), Vec::new()), RESULTS)?;
            for ts in (0..n_t).step_by(TRAIN_TILE) {
                if cancel.is_cancelled() {
                    break;
                }
                let te = (ts + TRAIN_TILE).min(n_t);
                let tt = te - ts;
                if let Some((qn, tn)) = fill.fill_tile(qs, qe, ts, te, &mut buf) {
                    // A GEMM tile: its distances whole before they are compared.
                    for (out, &q) in buf[..(qe - qs) * tt].chunks_exact_mut(tt).zip(qn) {
                        epilogue(out, Some((q, tn)));
                    }
                }
                for (i, (vals, idx)) in found.iter_mut().enumerate() {
                    let row = &buf[i * tt..(i + 1) * tt];
                    // Room for this row's neighbours first (growing as `push` would), so
                    // running out of memory is an error, not an abort.
                    let hits = row.iter().filter(|&&v| within(v)).count();
                    if vals.capacity() - vals.len() < hits || idx.capacity() - idx.len() < hits {
                        let more = hits.max(vals.len());
                        try_reserve(vals, more, RESULTS)?;
                        try_reserve(idx, more, RESULTS)?;
                    }
                    for (j, &v) in row.iter().enumerate() {
                        if within(v) {
                            vals.push(v);
                            idx.push(ts + j);
                        }
                    }
                }
            }
            if sort_results {
                for (vals, idx) in &mut found {
                    if stable {
                        stable_sort(vals, idx);
                    } else {
                        simultaneous_sort(vals, idx);
                    }
                }
            }
            Ok(found)
        })?
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        cancel.check()?;
        let total: usize = tiles.iter().flatten().map(|(_, idx)| idx.len()).sum();
        let mut res = RadiusResult {
            indptr: try_vec(n_q + 1, RESULTS)?,
            indices: try_vec(total, RESULTS)?,
            distances: try_vec(total, RESULTS)?,
        };
        res.indptr.push(0);
        for tile in tiles {
            for (vals, idx) in tile {
                res.distances
                    .extend(vals.iter().map(|&v| precision.dist(metric, v)));
                res.indices.extend_from_slice(&idx);
                res.indptr.push(res.indices.len());
            }
        }
        Ok(res)
    }
}
