//! The search engine: what every brute-force search does whatever computes its distances.
//!
//! A search runs every query tile (in parallel: only tiles of *queries* are split among
//! threads) against every training tile in increasing training index order; a [`Fill`]
//! writes each tile of reduced distances, the engine reduces it into one fixed-size heap
//! per query and `k`, and sorts the heaps into scikit-learn's order. Because each heap sees
//! its candidates in index order, as scikit-learn's single-threaded `ArgKmin` feeds them,
//! the result is scikit-learn's whatever the thread count.
//!
//! The engine knows nothing of how a tile is filled (it imports no fill): the fills (the
//! GEMM, the direct metrics, the exact small-integer kernel) implement [`Fill`], and the
//! screened search, which reduces as it computes, drives [`over_tiles`] itself.
//!
//! * `plan`: what a search computes and reports ([`Plan`], [`Strategy`]), and the heaps'
//!   final sort.
//! * `tiles`: the query tiles and their threads ([`search_tiles`], [`over_tiles`]).
//! * `reduce`: a tile's top-k into the heaps, compiled for each SIMD level.
//! * `scratch`: a thread's working memory, and the spare kept between small searches.
//! * `radius`: the radius search's tiles ([`RadiusSearch`], [`RadiusResult`]).

mod plan;
mod radius;
mod reduce;
mod scratch;
mod tiles;

pub use plan::{Strategy, sklearn_strategy};
pub use radius::RadiusResult;

#[cfg(test)]
pub(crate) use plan::finish_heap;
pub(crate) use plan::{Plan, finish_tile, validate_ks};
pub(crate) use radius::RadiusSearch;
#[cfg(target_arch = "x86_64")]
pub(crate) use reduce::admit_mask_avx;
pub(crate) use reduce::{admit_mask_portable, push_all, sq_dist};
pub(crate) use tiles::{effective_threads, over_tiles, search_tiles};

use ndarray::Array2;

use crate::error::Result;
use crate::exec::Wake;
use crate::real::Real;

/// Training rows per tile: a tile of distances holds at most `QUERY_TILE x TRAIN_TILE` values.
pub(crate) const TRAIN_TILE: usize = 256;
/// Training rows per GEMM call within a tile (see `GemmFill::cross`).
pub(crate) const GEMM_TRAIN_ROWS: usize = 64;
/// Query rows per GEMM call, on a grid fixed by the query index (see [`Fill::query_grid`]).
///
/// Why: the gemm crate's last bit depends on the shape of its call (it picks its kernels by
/// size), and query tiles are sized by the thread count. Calls of this many query rows,
/// starting on its multiples, give every distance the same bits whatever the thread count
/// and wherever a block of queries starts (a cluster's query blocks).
pub(crate) const GEMM_QUERY_ROWS: usize = 64;
/// Largest number of query rows per tile (256 x 256: scikit-learn's chunk shape; larger tiles
/// cut the GEMM's repacking but raise the peak memory, smaller ones the reverse).
pub(crate) const QUERY_TILE: usize = 256;
/// Candidates compared against the heap root at once (the bits of one `u64` mask).
pub(crate) const LANES: usize = 64;

/// A whole k-nearest search, as the search module runs it: the one interface behind which
/// every way of computing the distances sits. The fills (the GEMM, the direct metrics, the
/// exact small integers) run the engine's tiles, filled by them, then reduced (their
/// `search` is [`search_tiles`]); the screened search reduces as it computes, and so drives
/// the query tiles itself ([`over_tiles`]).
pub(crate) trait Search<T: Real> {
    /// The `plan`'s results, one pair of arrays per `k` (see [`search_tiles`]).
    #[allow(clippy::type_complexity)]
    fn search(&self, plan: &Plan<'_>, wake: Wake) -> Result<Vec<(Array2<f64>, Array2<usize>)>>;
}

/// The squared norms of a tile's query rows and training rows, returned by a [`Fill`] whose
/// tile holds the GEMM term `-2 q.t`: the reduction adds them (see `reduce::epilogue`), fused
/// with its pass over the tile. `None` when the tile holds reduced distances already.
pub(crate) type TileNorms<'a, T> = Option<(&'a [T], &'a [T])>;

/// What computes a search's distances, one tile at a time: the one interface between the
/// engine and the fills (the GEMM, the direct metrics, the exact small integers).
///
/// The engine is generic over it, so each fill's tile loop is compiled with its own
/// kernel inlined (no dynamic dispatch).
pub(crate) trait Fill<T: Real>: Sync {
    /// Fills `buf` (row-major, `(qe - qs) x (te - ts)`) with the reduced distances between
    /// queries `qs..qe` and training rows `ts..te`, or with the GEMM term `-2 q.t`, returning
    /// the squared norms to add to it (see [`TileNorms`]).
    fn fill_tile(
        &self,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [T],
    ) -> TileNorms<'_, T>;

    /// Query tiles start on multiples of this many rows (and hold a multiple of it, but for
    /// the last): 1 for a fill whose distances do not depend on the tile's shape; the GEMM
    /// fill's [`GEMM_QUERY_ROWS`].
    fn query_grid(&self) -> usize {
        1
    }
}
