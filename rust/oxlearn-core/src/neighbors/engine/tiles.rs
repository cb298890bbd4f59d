//! The query tiles: how a search is split among threads, each thread's working memory
//! reused by every tile it takes, and every tile's rows of the results written in place.

use ndarray::Array2;
use std::sync::Mutex;

use super::plan::{Plan, finish_tile};
use super::reduce::reduce_tile;
use super::scratch::Scratch;
use super::{Fill, QUERY_TILE, TRAIN_TILE};
use crate::error::{CoreError, Result, checked_len, try_collect, try_filled};
use crate::exec::{Threads, Wake};
use crate::platform::SimdLevel;
use crate::real::Real;

/// Below this many multiply-adds a search runs on the calling thread: starting a pool would
/// cost more than it saves (results are the same either way).
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// `threads`, or one thread when the search is too small to gain from a pool.
pub(crate) fn effective_threads(threads: Threads, n_q: usize, n_t: usize, d: usize) -> Threads {
    if n_q.saturating_mul(n_t).saturating_mul(d.max(1)) < MIN_PARALLEL_WORK {
        Threads::Single
    } else {
        threads
    }
}

/// Query rows per tile for `n_queries` queries on `threads` threads: enough tiles for every
/// thread, at most `max_rows` rows each, a multiple of `grid` (see [`Fill::query_grid`];
/// `max_rows` is one).
fn query_tile(n_queries: usize, threads: Threads, max_rows: usize, grid: usize) -> usize {
    let per_thread = n_queries.div_ceil(2 * threads.count()).max(1);
    per_thread
        .next_multiple_of(grid.max(1))
        .clamp(1, max_rows.max(1))
}

/// Runs `f` on every query tile (`start..end`), in parallel when `threads` is a pool, and
/// returns the per-tile outputs in tile order.
pub(crate) fn over_query_tiles<R: Send>(
    n_queries: usize,
    threads: Threads,
    grid: usize,
    f: impl Fn(usize, usize) -> R + Sync + Send,
) -> Result<Vec<R>> {
    let tq = query_tile(n_queries, threads, QUERY_TILE, grid);
    let starts: Vec<usize> = (0..n_queries).step_by(tq).collect();
    let slots: Vec<Mutex<Option<R>>> = starts.iter().map(|_| Mutex::new(None)).collect();
    threads.for_each_index(starts.len(), |t| {
        let qs = starts[t];
        let r = f(qs, (qs + tq).min(n_queries));
        if let Ok(mut slot) = slots[t].lock() {
            *slot = Some(r);
        }
    })?;
    threads.linger();
    slots
        .into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect::<Option<Vec<R>>>()
        .ok_or_else(|| CoreError::ThreadPool("a query tile produced no result".into()))
}

/// The search proper: every query tile against every training tile, each tile of
/// distances filled by `fill` ([`Fill::fill_tile`]) and reduced into the query's heaps, the
/// heaps sorted into the results.
pub(crate) fn search_tiles<T: Real>(
    plan: &Plan<'_>,
    wake: Wake,
    fill: &impl Fill<T>,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    let n_t = plan.n_t;
    let cols = TRAIN_TILE.min(n_t);
    let ks = &plan.sorted_ks;
    // The last search's sets that fit, taken at the first request (before any set is made:
    // the others are freed first).
    let spare: Mutex<Option<Vec<Scratch<T>>>> = Mutex::new(None);
    over_tiles(
        plan,
        wake,
        QUERY_TILE,
        fill.query_grid(),
        |rows| {
            let reused = spare.lock().ok().and_then(|mut taken| {
                let sets = taken.get_or_insert_with(|| Scratch::take_spare(rows, cols, ks));
                let at = sets.iter().position(|s| s.fits(rows, cols, ks))?;
                Some(sets.swap_remove(at))
            });
            reused.map_or_else(|| Scratch::new(rows, cols, ks), Ok)
        },
        |scratch: &mut Scratch<T>, qs, qe, out_d, out_i| {
            let Scratch {
                buf, heaps, fresh, ..
            } = scratch;
            let heaps = &mut heaps[..qe - qs];
            for h in heaps.iter_mut().flatten() {
                h.reset();
            }
            for ts in (0..n_t).step_by(TRAIN_TILE) {
                if plan.cancel.is_cancelled() {
                    return;
                }
                let te = (ts + TRAIN_TILE).min(n_t);
                let norms = fill.fill_tile(qs, qe, ts, te, buf);
                reduce_tile(SimdLevel::detected(), heaps, buf, te - ts, ts, norms);
            }
            finish_tile(plan, heaps, fresh, out_d, out_i);
        },
        Scratch::keep_spare,
    )
}

/// What the searches' result buffers are, for their out-of-memory errors.
pub(crate) const RESULTS: &str = "the neighbour results";

/// Runs `run(scratch, qs, qe, out_d, out_i)` on every query tile `qs..qe` of at most
/// `max_rows` rows, starting on multiples of `grid` (in parallel on `plan.threads`), where `out_*` are the tile's rows of the
/// results (`plan.kk` values per query) and `scratch` a thread's working memory, made by
/// `new_scratch(rows)` and handed to `recycle` at the end; returns the results, one pair of
/// arrays per `k` of `plan.ks`.
pub(crate) fn over_tiles<S: Send>(
    plan: &Plan<'_>,
    wake: Wake,
    max_rows: usize,
    grid: usize,
    new_scratch: impl Fn(usize) -> Result<S> + Sync,
    run: impl Fn(&mut S, usize, usize, &mut [f64], &mut [usize]) + Sync,
    recycle: impl FnOnce(Vec<S>),
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    let Plan {
        n_q,
        ks,
        threads,
        kk,
        ..
    } = *plan;
    // Results go straight into one flat buffer per output type: row q holds, for each k of
    // `ks` in order, its k distances (indices). Each query tile writes its own rows, so
    // heaps live only while their tile is searched (memory: tiles in flight, not n_queries).
    let mut flat_d = try_filled(checked_len(n_q, kk, RESULTS)?, 0.0f64, RESULTS)?;
    let mut flat_i = try_filled(flat_d.len(), 0usize, RESULTS)?;
    let tq = query_tile(n_q, threads, max_rows, grid);
    let n_tiles = n_q.div_ceil(tq);
    // One working set per thread, allocated here, by the calling thread, and reused by every
    // tile: pool threads then allocate (almost) nothing, so a search does not grow each
    // thread's malloc arena by a tile buffer per tile it took (that churn, fragmented by the
    // GEMM's packing buffers, was most of a first search's extra memory).
    let slots: Vec<Mutex<S>> = (0..threads.count().min(n_tiles))
        .map(|_| new_scratch(tq.min(n_q)).map(Mutex::new))
        .collect::<Result<_>>()?;
    // A working set the fallback below could not allocate (reported after the search).
    let failed: Mutex<Option<CoreError>> = Mutex::new(None);
    let search_tile = |t: usize, out_d: &mut [f64], out_i: &mut [usize]| {
        let qs = t * tq;
        let qe = (qs + tq).min(n_q);
        // Each thread holds at most one slot at a time and there is one per thread, so a
        // free one exists; the fallback only guards against a poisoned lock.
        let mut own = None;
        let mut guard = slots.iter().find_map(|s| s.try_lock().ok());
        let scratch = match guard.as_deref_mut() {
            Some(s) => s,
            None => match new_scratch(qe - qs) {
                Ok(s) => own.insert(s),
                Err(e) => {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            },
        };
        run(scratch, qs, qe, out_d, out_i);
    };
    let chunk = (tq * kk).max(1);
    // Each tile's output rows, taken by exactly one thread (the locks are never contended).
    let outputs: Vec<Mutex<(&mut [f64], &mut [usize])>> = flat_d
        .chunks_mut(chunk)
        .zip(flat_i.chunks_mut(chunk))
        .map(Mutex::new)
        .collect();
    drop(wake);
    threads.for_each_index(outputs.len(), |t| {
        if plan.cancel.is_cancelled() {
            return;
        }
        if let Ok(mut out) = outputs[t].lock() {
            let (out_d, out_i) = &mut *out;
            search_tile(t, out_d, out_i);
        }
    })?;
    threads.linger();
    drop(outputs);
    plan.cancel.check()?;
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    recycle(
        slots
            .into_iter()
            .filter_map(|m| m.into_inner().ok())
            .collect(),
    );

    if let [k] = ks {
        // One k: the flat buffers are the results (no copy).
        let dist = Array2::from_shape_vec((n_q, *k), flat_d);
        let idx = Array2::from_shape_vec((n_q, *k), flat_i);
        return match (dist, idx) {
            (Ok(d), Ok(i)) => Ok(vec![(d, i)]),
            _ => Err(CoreError::shape("neighbour results", n_q * k, n_q * kk)),
        };
    }
    let out = ks
        .iter()
        .zip(&plan.offsets)
        .map(|(&k, &o)| {
            let n = n_q * k;
            let cells = move |i: usize| (i / k) * kk + o + i % k;
            let dist = try_collect(n, (0..n).map(|i| flat_d[cells(i)]), RESULTS)?;
            let idx = try_collect(n, (0..n).map(|i| flat_i[cells(i)]), RESULTS)?;
            match (
                Array2::from_shape_vec((n_q, k), dist),
                Array2::from_shape_vec((n_q, k), idx),
            ) {
                (Ok(d), Ok(i)) => Ok((d, i)),
                _ => Err(CoreError::shape("neighbour results", n, n)),
            }
        })
        .collect::<Result<_>>()?;
    Ok(out)
}
