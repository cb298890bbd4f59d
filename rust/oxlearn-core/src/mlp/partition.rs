//! The fixed row partition behind the MLP's parallelism.
//!
//! A batch is cut into chunks of at most [`CHUNK_ROWS`] rows by [`chunk_len`], which depends on
//! the number of rows only, never on the thread count. Each chunk runs its forward and
//! backward passes on its own buffers with single-threaded GEMMs, chunks run in parallel, and
//! the per-chunk gradients are summed element by element in chunk order (see
//! [`super::elementwise::reduce`]). So the bits are the same for 1, 2 or 16 threads.
//! (Parallelising inside each small GEMM instead, as the `gemm` crate does, made two threads
//! slower than one on the `(200, 64) x (64, 256)` products of a training step.)

use crate::exec::Exec;

/// The most rows one chunk holds in a network of at least [`MIN_CHUNK_MACS`] / 128
/// multiply-adds per row.
pub const CHUNK_ROWS: usize = 128;

/// A chunk holds at least this many forward multiply-adds (`rows * sum(units[i] *
/// units[i + 1])`): below that, a chunk's work is too short to pay for a second thread and
/// its extra kernel calls. With the fused kernels of [`super::tiled`], a 100-row chunk of a
/// digits `(16,)` net (about 118k multiply-adds) does pay, so that net's 200-row batches
/// split in two: a second thread gains more than one thread loses to the second chunk's
/// kernel calls.
pub const MIN_CHUNK_MACS: usize = 1 << 17;

/// Chunks whose buffers are alive at once; more chunks are processed in waves of this many
/// (the reduction order, chunk after chunk, does not change).
pub const MAX_LIVE_CHUNKS: usize = 16;

/// The most rows one chunk of a network with layer widths `units` holds: [`CHUNK_ROWS`],
/// or more for small networks (see [`MIN_CHUNK_MACS`]). Depends on the shapes only.
pub fn max_chunk_rows(units: &[usize]) -> usize {
    let per_row: usize = units.windows(2).map(|w| w[0] * w[1]).sum();
    (MIN_CHUNK_MACS / per_row.max(1)).max(CHUNK_ROWS)
}

/// Rows of every chunk of a `rows`-row batch but the last (which may be shorter), for
/// chunks of at most `max` rows: `ceil(rows / ceil(rows / max))`, so a 200-row batch is
/// two chunks of 100 when `max` is 128.
pub fn chunk_len(rows: usize, max: usize) -> usize {
    let max = max.max(1);
    if rows <= max {
        rows.max(1)
    } else {
        rows.div_ceil(rows.div_ceil(max))
    }
}

/// Runs `f(i, item)` over `items`, in parallel on the installed pool or the team when
/// `exec` allows.
pub(crate) fn for_each_chunk<C: Send>(
    exec: Exec<'_>,
    items: &mut [C],
    f: impl Fn(usize, &mut C) + Sync + Send,
) {
    exec.for_each_mut(items, f);
}

#[cfg(test)]
mod tests {
    use super::{CHUNK_ROWS, chunk_len, max_chunk_rows};

    #[test]
    fn chunks_cover_rows_and_stay_small() {
        for max in [1, 7, CHUNK_ROWS, 442] {
            for rows in 1..2000 {
                let len = chunk_len(rows, max);
                assert!(len >= 1 && len <= max, "{rows}: {len}");
                assert!(rows.div_ceil(len) <= rows.div_ceil(max), "{rows}");
            }
        }
        assert_eq!(chunk_len(200, CHUNK_ROWS), 100);
        assert_eq!(chunk_len(147, CHUNK_ROWS), 74);
        assert_eq!(chunk_len(128, CHUNK_ROWS), 128);
        assert_eq!(max_chunk_rows(&[64, 256, 10]), CHUNK_ROWS);
        assert_eq!(max_chunk_rows(&[64, 128, 128, 128, 10]), CHUNK_ROWS);
        // A digits (16,) net: 200-row batches in two chunks of 100 (see MIN_CHUNK_MACS).
        assert_eq!(chunk_len(200, max_chunk_rows(&[64, 16, 10])), 100);
        // Tinier nets still train a batch as one chunk.
        assert!(max_chunk_rows(&[8, 4, 2]) >= 200);
    }
}
