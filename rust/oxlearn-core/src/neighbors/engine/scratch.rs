//! A thread's working memory for the tiles it searches (a tile of distances and the
//! queries' heaps), and the sets of the last small search, kept for the next one.

use std::any::Any;
use std::sync::Mutex;

use crate::error::{Result, checked_len, try_filled};
use crate::neighbors::heap::KHeap;
use crate::real::Real;

/// The working sets (a `Vec<Scratch<T>>`) of the last small search (see
/// [`Scratch::keep_spare`]).
static SPARE_SCRATCH: Mutex<Option<Box<dyn Any + Send>>> = Mutex::new(None);
/// The most memory [`SPARE_SCRATCH`] keeps between searches: a digits-sized search's sets
/// (about 250 KiB on two threads, 350 KiB for a k = 1..9 sweep), not those of larger
/// searches, for which making them is a negligible part of the time (memory would be held
/// for nothing).
const SPARE_SCRATCH_BYTES: usize = 512 << 10;

/// One query's neighbours for each requested `k`.
type TileHeaps<T> = Vec<Vec<KHeap<T>>>;

/// A thread's working memory for the query tiles it searches (see `search_tiles`).
pub(super) struct Scratch<T> {
    /// One tile of distances.
    pub(super) buf: Vec<T>,
    /// Per query row of a tile, one heap per `k` (in increasing `k`).
    pub(super) heaps: TileHeaps<T>,
    /// One spare heap per `k`, for `finish_heap`.
    pub(super) fresh: Vec<KHeap<T>>,
}

impl<T: Real> Scratch<T> {
    pub(super) fn new(rows: usize, cols: usize, sorted_ks: &[usize]) -> Result<Self> {
        const WHAT: &str = "the neighbour search's working memory";
        Ok(Self {
            buf: try_filled(checked_len(rows, cols, WHAT)?, T::zero(), WHAT)?,
            heaps: KHeap::try_sets(rows, sorted_ks)?,
            fresh: KHeap::try_row(sorted_ks)?,
        })
    }

    /// Whether this set is the one [`Scratch::new`] makes for these arguments.
    pub(super) fn fits(&self, rows: usize, cols: usize, sorted_ks: &[usize]) -> bool {
        self.heaps.len() == rows
            && self.buf.len() == rows * cols
            && self
                .fresh
                .iter()
                .map(|h| h.values.len())
                .eq(sorted_ks.iter().copied())
    }

    /// The working sets the last search left (see [`Scratch::keep_spare`]) that fit a
    /// search of `rows`-row query tiles; the others are freed.
    pub(super) fn take_spare(rows: usize, cols: usize, sorted_ks: &[usize]) -> Vec<Self> {
        // `try_lock`: never wait (nor deadlock in a child forked while another thread held
        // the lock); without the lock a search just allocates its own.
        let Ok(mut slot) = SPARE_SCRATCH.try_lock() else {
            return Vec::new();
        };
        match slot
            .take()
            .map(<Box<dyn Any + Send>>::downcast::<Vec<Self>>)
        {
            Some(Ok(mut sets)) => {
                sets.retain(|s| s.fits(rows, cols, sorted_ks));
                *sets
            }
            _ => Vec::new(),
        }
    }

    /// Keeps a search's working sets for the next search, if they are small (at most
    /// [`SPARE_SCRATCH_BYTES`] in all).
    ///
    /// Why: in a small search (the digits data, say) making the sets, nearly all of it the
    /// small allocations of each query's heaps, is a visible share of the time; a search
    /// alternating with a little Python work (fit then predict, a k sweep,
    /// cross-validation) now makes them once. Their contents need no clearing: every tile
    /// resets its heaps, and every distance is written before it is read.
    pub(super) fn keep_spare(slots: Vec<Self>) {
        let per_query: usize = slots.first().map_or(0, |s| {
            let k_sum: usize = s.fresh.iter().map(|h| h.values.len()).sum();
            k_sum * (size_of::<T>() + size_of::<usize>())
        });
        let bytes: usize = slots
            .iter()
            .map(|s| s.buf.len() * size_of::<T>() + (s.heaps.len() + 1) * per_query)
            .sum();
        if slots.is_empty() || bytes > SPARE_SCRATCH_BYTES {
            return;
        }
        if let Ok(mut slot) = SPARE_SCRATCH.try_lock() {
            *slot = Some(Box::new(slots));
        }
    }
}
