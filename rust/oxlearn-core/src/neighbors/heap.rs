//! scikit-learn's fixed-size max-heap and simultaneous sort, ported line by line.
//!
//! scikit-learn's brute-force `ArgKmin` pushes every candidate of a query, in increasing
//! training index order, into a fixed-size max-heap ([`heap_push`], `sklearn/utils/_heap.pyx`)
//! that rejects a value `>=` its root, then sorts the heap arrays with an unstable introsort
//! ([`simultaneous_sort`], `sklearn/utils/_sorting.pyx`). Which of several equal distances is
//! kept, and the order of equal distances in the result, follow from these two algorithms
//! exactly, so they are reproduced here operation for operation (same pivots, same swaps).

use crate::real::Real;

/// Pushes `(val, val_idx)` onto the fixed-size max-heap stored in `values`/`indices`
/// (`sklearn.utils._heap.heap_push`). Does nothing when `val >= values[0]` (the root).
///
/// `values` and `indices` must have the same non-zero length (the heap size).
#[inline]
pub fn heap_push<T: Real>(values: &mut [T], indices: &mut [usize], val: T, val_idx: usize) {
    let size = values.len().min(indices.len());
    if size == 0 || val >= values[0] {
        return;
    }
    sift_in(&mut values[..size], &mut indices[..size], val, val_idx);
}

/// The accepted path of [`heap_push`]: puts `val` at the root and sifts it down.
///
/// scikit-learn's loop, made branch-free: a sift stops at a data-dependent depth, so its
/// branches are mispredicted about once per level, which made pushes the largest cost of
/// the top-k reduction. Here every level of the heap is visited (`floor(log2(size))` of
/// them); at each the child scikit-learn would pick is selected without a branch, moved up
/// only while the sift is still going, and the sift stops for good at the first level
/// where scikit-learn's loop breaks. The moves, and so the heap, are exactly those of
/// [`sift_in_reference`] (the loop as scikit-learn writes it; the tests compare the two).
#[inline]
fn sift_in<T: Real>(values: &mut [T], indices: &mut [usize], val: T, val_idx: usize) {
    let size = values.len().min(indices.len());
    if size == 0 {
        return;
    }
    let last = size - 1;
    let depth = (usize::BITS - 1 - size.leading_zeros()) as usize;
    let mut current = 0usize;
    let mut going = true;
    for _ in 0..depth {
        let left = 2 * current + 1;
        let right = left + 1;
        let (l, r) = (left.min(last), right.min(last));
        let (vl, vr) = (values[l], values[r]);
        // scikit-learn: the left child when it is the only one or `values[left] >=
        // values[right]`, else the right one; it moves up when `val` is below it.
        let left_first = vl >= vr; // false for NaN, as in scikit-learn's `else` branch
        let take_right = right < size && !left_first;
        let child = if take_right { r } else { l };
        let vc = if take_right { vr } else { vl };
        going = going && left < size && val < vc;
        let ic = indices[child];
        let (vcur, icur) = (values[current], indices[current]);
        values[current] = if going { vc } else { vcur };
        indices[current] = if going { ic } else { icur };
        current = if going { child } else { current };
    }
    values[current] = val;
    indices[current] = val_idx;
}

/// scikit-learn's sift loop as written (`sklearn/utils/_heap.pyx`): the reference that
/// [`sift_in`] reproduces.
#[cfg(test)]
fn sift_in_reference<T: Real>(values: &mut [T], indices: &mut [usize], val: T, val_idx: usize) {
    let size = values.len();
    let mut current = 0usize;
    loop {
        let left = 2 * current + 1;
        let right = left + 1;
        let swap = if left >= size {
            None
        } else if right >= size || values[left] >= values[right] {
            (val < values[left]).then_some(left)
        } else {
            (val < values[right]).then_some(right)
        };
        let Some(swap) = swap else {
            break;
        };
        values[current] = values[swap];
        indices[current] = indices[swap];
        current = swap;
    }
    values[current] = val;
    indices[current] = val_idx;
}

/// A fixed-size heap of the `k` smallest values seen so far, with scikit-learn's push rule.
#[derive(Debug, Clone, PartialEq)]
pub struct KHeap<T> {
    /// Heap-ordered values (root = largest), initialised to the largest finite value.
    pub values: Vec<T>,
    /// The training index of each value (initialised to 0, as scikit-learn does).
    pub indices: Vec<usize>,
}

impl<T: Real> KHeap<T> {
    /// An empty heap of size `k` (every slot holds `T::max_value()` and index 0).
    pub fn new(k: usize) -> Self {
        Self {
            values: vec![T::max_value(); k],
            indices: vec![0; k],
        }
    }

    /// [`KHeap::new`], or [`crate::CoreError::OutOfMemory`] when it cannot be allocated
    /// (`k` comes from the caller: `n_neighbors` can be as large as the training set).
    pub fn try_new(k: usize) -> crate::Result<Self> {
        const WHAT: &str = "the neighbour heaps";
        Ok(Self {
            values: crate::try_filled(k, T::max_value(), WHAT)?,
            indices: crate::try_filled(k, 0, WHAT)?,
        })
    }

    /// One heap per `k` of `ks` for each of `rows` queries (see [`KHeap::try_new`]).
    pub fn try_sets(rows: usize, ks: &[usize]) -> crate::Result<Vec<Vec<Self>>> {
        let mut sets = crate::try_vec(rows, "the neighbour heaps")?;
        for _ in 0..rows {
            sets.push(Self::try_row(ks)?);
        }
        Ok(sets)
    }

    /// One heap per `k` of `ks` (see [`KHeap::try_new`]).
    pub fn try_row(ks: &[usize]) -> crate::Result<Vec<Self>> {
        ks.iter().map(|&k| Self::try_new(k)).collect()
    }

    /// Empties the heap (as [`KHeap::new`] makes it), keeping its storage.
    pub fn reset(&mut self) {
        self.values.fill(T::max_value());
        self.indices.fill(0);
    }

    /// The largest value kept (the one a new candidate must beat).
    #[inline]
    pub fn root(&self) -> T {
        self.values[0]
    }

    /// [`heap_push`] on this heap.
    #[inline]
    pub fn push(&mut self, val: T, idx: usize) {
        heap_push(&mut self.values, &mut self.indices, val, idx);
    }
}

/// Sorts `values` ascending and applies the same permutation to `indices`
/// (`sklearn.utils._sorting.simultaneous_sort` with two-way partitioning: an introsort whose
/// order of equal values is that of scikit-learn, not a stable one).
pub fn simultaneous_sort<T: Real>(values: &mut [T], indices: &mut [usize]) {
    let n = values.len().min(indices.len());
    if n == 0 {
        return;
    }
    // `2 * <intp_t>log2(n)`: log2 of a positive integer, truncated towards zero.
    let maxd = 2 * (n as f64).log2() as isize;
    introsort_2way(&mut values[..n], &mut indices[..n], maxd);
}

fn introsort_2way<T: Real>(mut values: &mut [T], mut indices: &mut [usize], mut maxd: isize) {
    while values.len() > 15 {
        let n = values.len();
        if maxd <= 0 {
            heapsort(values, indices);
            return;
        }
        maxd -= 1;
        let pivot = inplace_median3(values, indices);
        let mut i = 1usize;
        let mut j = n - 2;
        loop {
            while i <= j && values[i] < pivot {
                i += 1;
            }
            while i <= j && values[j] > pivot {
                // `j >= i >= 1` here, so this never underflows.
                j -= 1;
            }
            if i >= j {
                break;
            }
            values.swap(i, j);
            indices.swap(i, j);
            i += 1;
            j -= 1;
        }
        let pivot_idx = i;
        values.swap(pivot_idx, n - 1);
        indices.swap(pivot_idx, n - 1);
        let (left_v, right_v) = values.split_at_mut(pivot_idx + 1);
        let (left_i, right_i) = indices.split_at_mut(pivot_idx + 1);
        introsort_2way(&mut left_v[..pivot_idx], &mut left_i[..pivot_idx], maxd);
        values = right_v;
        indices = right_i;
    }
    insertion_sort(values, indices);
}

fn inplace_median3<T: Real>(values: &mut [T], indices: &mut [usize]) -> T {
    let n = values.len();
    let pivot_idx = n / 2;
    if values[0] > values[n - 1] {
        values.swap(0, n - 1);
        indices.swap(0, n - 1);
    }
    if values[n - 1] > values[pivot_idx] {
        values.swap(n - 1, pivot_idx);
        indices.swap(n - 1, pivot_idx);
        if values[0] > values[n - 1] {
            values.swap(0, n - 1);
            indices.swap(0, n - 1);
        }
    }
    values[n - 1]
}

fn heapsort<T: Real>(values: &mut [T], indices: &mut [usize]) {
    let n = values.len();
    if n < 2 {
        return;
    }
    let mut start = (n - 2) / 2;
    loop {
        sift_down(values, indices, start, n);
        if start == 0 {
            break;
        }
        start -= 1;
    }
    let mut end = n - 1;
    while end > 0 {
        values.swap(0, end);
        indices.swap(0, end);
        sift_down(values, indices, 0, end);
        end -= 1;
    }
}

fn sift_down<T: Real>(values: &mut [T], indices: &mut [usize], start: usize, end: usize) {
    let mut root = start;
    loop {
        let child = root * 2 + 1;
        let mut maxind = root;
        if child < end && values[maxind] < values[child] {
            maxind = child;
        }
        if child + 1 < end && values[maxind] < values[child + 1] {
            maxind = child + 1;
        }
        if maxind == root {
            break;
        }
        values.swap(root, maxind);
        indices.swap(root, maxind);
        root = maxind;
    }
}

fn insertion_sort<T: Real>(values: &mut [T], indices: &mut [usize]) {
    for i in 1..values.len() {
        let temp_val = values[i];
        let temp_idx = indices[i];
        let mut j = i;
        while j > 0 && values[j - 1] > temp_val {
            values[j] = values[j - 1];
            indices[j] = indices[j - 1];
            j -= 1;
        }
        values[j] = temp_val;
        indices[j] = temp_idx;
    }
}

/// Sorts by value, keeping the existing order of equal values (a stable sort), as NumPy's
/// `argsort(kind="mergesort")` does (scikit-learn's order for radius results of metrics that
/// do not go through its compiled reductions).
pub fn stable_sort<T: Real>(values: &mut [T], indices: &mut [usize]) {
    let mut pairs: Vec<(T, usize)> = values
        .iter()
        .copied()
        .zip(indices.iter().copied())
        .collect();
    pairs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    for (slot, (v, i)) in pairs.into_iter().enumerate() {
        values[slot] = v;
        indices[slot] = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_push_doc_example() {
        // The example of sklearn/utils/_heap.pyx.
        let mut values = vec![1.2, 0.4, 0.1];
        let mut indices = vec![42, 1, 5];
        heap_push(&mut values, &mut indices, 0.2, 4);
        assert_eq!(values, vec![0.4, 0.2, 0.1]);
        assert_eq!(indices, vec![1, 4, 5]);
    }

    #[test]
    fn branch_free_sift_equals_scikit_learns_loop() {
        // Few distinct values (many ties), every heap size up to 40, long push sequences.
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize
        };
        for k in 1..=40 {
            for levels in [3, 10, 1000] {
                let mut a = (vec![f64::MAX; k], vec![0usize; k]);
                let mut b = a.clone();
                for i in 0..400 {
                    let v = (next() % levels) as f64;
                    if v < a.0[0] {
                        sift_in(&mut a.0, &mut a.1, v, i);
                    }
                    if v < b.0[0] {
                        sift_in_reference(&mut b.0, &mut b.1, v, i);
                    }
                    assert_eq!(a, b, "k={k}, levels={levels}, push {i}");
                }
            }
        }
    }

    #[test]
    fn sort_small_and_large() {
        let mut v: Vec<f64> = (0..100).map(|i| f64::from((i * 37) % 11)).collect();
        let mut idx: Vec<usize> = (0..100).collect();
        simultaneous_sort(&mut v, &mut idx);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        for (val, i) in v.iter().zip(&idx) {
            assert_eq!(*val, f64::from(((*i as u32) * 37) % 11));
        }
    }
}
