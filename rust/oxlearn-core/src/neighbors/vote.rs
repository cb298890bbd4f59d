//! Aggregating the neighbours' targets: the classifier's vote and the regressor's average.
//!
//! scikit-learn does this with NumPy reductions whose summation order is part of the answer
//! for weighted votes (`np.sum(..., axis=1)` is a pairwise sum, see [`pairwise_sum`]), so the
//! same orders are used here: predictions and probabilities come out bit for bit identical.

use ndarray::{Array2, ArrayView2};

use crate::error::{CoreError, Result, try_array2};
use crate::real::Real;

/// NumPy's pairwise summation (`pairwise_sum` in `numpy/_core/src/umath/loops_utils.h.src`),
/// used by `np.sum` along a contiguous axis: plain loop below 8 values, 8 interleaved
/// accumulators up to 128, halves (at a multiple of 8) beyond.
pub fn pairwise_sum<T: Real>(a: &[T]) -> T {
    let n = a.len();
    if n < 8 {
        let mut res = T::zero();
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [T::zero(); 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

fn check_neighbors(neigh: &ArrayView2<'_, i64>, n_train: usize) -> Result<()> {
    if neigh.ncols() == 0 {
        return Err(CoreError::invalid(
            "n_neighbors",
            "at least one neighbour is needed",
        ));
    }
    if neigh.iter().any(|&i| i < 0 || i as usize >= n_train) {
        return Err(CoreError::invalid(
            "neigh_ind",
            format!("neighbour indices must lie in [0, {n_train})"),
        ));
    }
    Ok(())
}

fn check_weights(weights: Option<&ArrayView2<'_, f64>>, neigh: &ArrayView2<'_, i64>) -> Result<()> {
    if let Some(w) = weights
        && w.dim() != neigh.dim()
    {
        return Err(CoreError::shape(
            "weights vs neighbour indices (elements)",
            neigh.len(),
            w.len(),
        ));
    }
    Ok(())
}

fn check_labels(y: &ArrayView2<'_, i64>, n_classes: &[usize]) -> Result<()> {
    if y.ncols() != n_classes.len() {
        return Err(CoreError::shape(
            "outputs of y vs lists of classes",
            n_classes.len(),
            y.ncols(),
        ));
    }
    for (o, &nc) in n_classes.iter().enumerate() {
        if y.column(o).iter().any(|&c| c < 0 || c as usize >= nc) {
            return Err(CoreError::invalid(
                "y",
                format!("encoded labels of output {o} must lie in [0, {nc})"),
            ));
        }
    }
    Ok(())
}

/// The predicted class index of every query for every output, `(n_queries, n_outputs)`.
///
/// `neigh` holds the neighbours' training indices `(n_queries, k)` in scikit-learn's order;
/// `y` the encoded training labels `(n_train, n_outputs)` with `n_classes[o]` classes in
/// output `o`. Without `weights` the most frequent class wins, the smallest index on a tie
/// (`scipy.stats.mode` / `ArgKminClassMode`). With `weights` `(n_queries, k)` the class with
/// the largest pairwise-summed weight wins, only if that sum is positive, else class 0, the
/// smallest on a tie (`sklearn.utils.extmath.weighted_mode`).
pub fn classify(
    neigh: ArrayView2<'_, i64>,
    y: ArrayView2<'_, i64>,
    n_classes: &[usize],
    weights: Option<ArrayView2<'_, f64>>,
) -> Result<Array2<i64>> {
    check_neighbors(&neigh, y.nrows())?;
    check_labels(&y, n_classes)?;
    check_weights(weights.as_ref(), &neigh)?;
    let (n_q, k) = neigh.dim();
    let mut out = try_array2(n_q, n_classes.len(), 0_i64, "the predicted classes")?;
    let mut template = vec![0.0f64; k];
    for (o, &nc) in n_classes.iter().enumerate() {
        let mut counts = vec![0usize; nc];
        for q in 0..n_q {
            let labels = neigh.row(q).mapv(|i| y[[i as usize, o]] as usize);
            let best = if let Some(w) = &weights {
                let w = w.row(q);
                let mut best = 0usize;
                let mut best_count = 0.0f64;
                for c in 0..nc {
                    let mut any = false;
                    for (t, (&l, &wj)) in template.iter_mut().zip(labels.iter().zip(w.iter())) {
                        *t = if l == c { wj } else { 0.0 };
                        any |= l == c;
                    }
                    if !any {
                        continue;
                    }
                    let s = pairwise_sum(&template);
                    if s > best_count {
                        best = c;
                        best_count = s;
                    }
                }
                best
            } else {
                counts.fill(0);
                for &l in &labels {
                    counts[l] += 1;
                }
                let mut best = 0usize;
                for c in 1..nc {
                    if counts[c] > counts[best] {
                        best = c;
                    }
                }
                best
            };
            out[[q, o]] = best as i64;
        }
    }
    Ok(out)
}

/// Class probabilities of every query, one `(n_queries, n_classes[o])` array per output.
///
/// Each neighbour adds its weight (1 without `weights`) to its class, in neighbour order;
/// each row is then divided by its pairwise sum, as `KNeighborsClassifier.predict_proba` does.
pub fn classify_proba(
    neigh: ArrayView2<'_, i64>,
    y: ArrayView2<'_, i64>,
    n_classes: &[usize],
    weights: Option<ArrayView2<'_, f64>>,
) -> Result<Vec<Array2<f64>>> {
    check_neighbors(&neigh, y.nrows())?;
    check_labels(&y, n_classes)?;
    check_weights(weights.as_ref(), &neigh)?;
    let (n_q, k) = neigh.dim();
    let mut all = Vec::with_capacity(n_classes.len());
    for (o, &nc) in n_classes.iter().enumerate() {
        let mut proba = try_array2(n_q, nc, 0.0_f64, "the class probabilities")?;
        for q in 0..n_q {
            let mut row = proba.row_mut(q);
            for j in 0..k {
                let c = y[[neigh[[q, j]] as usize, o]] as usize;
                row[c] += weights.as_ref().map_or(1.0, |w| w[[q, j]]);
            }
            let norm = row.as_slice().map_or_else(|| row.sum(), pairwise_sum);
            row.mapv_inplace(|v| v / norm);
        }
        all.push(proba);
    }
    Ok(all)
}

/// The regressor's prediction `(n_queries, n_outputs)` from training targets `y`
/// `(n_train, n_outputs)`.
///
/// Without `weights`: the mean of the neighbours' targets (`np.mean(y[neigh], axis=1)`: a
/// pairwise sum for one output, a running sum per output otherwise, over `k`). With `weights`:
/// `pairwise_sum(y * w) / pairwise_sum(w)` per output.
pub fn regress<T: Real>(
    neigh: ArrayView2<'_, i64>,
    y: ArrayView2<'_, T>,
    weights: Option<ArrayView2<'_, f64>>,
) -> Result<Array2<T>> {
    check_neighbors(&neigh, y.nrows())?;
    check_weights(weights.as_ref(), &neigh)?;
    let (n_q, k) = neigh.dim();
    let n_out = y.ncols();
    let mut out = try_array2(n_q, n_out, T::zero(), "the predictions")?;
    let mut vals = vec![T::zero(); k];
    let mut prods = vec![0.0f64; k];
    let kf = T::from_f64_lossy(k as f64);
    for q in 0..n_q {
        let nb = neigh.row(q);
        match &weights {
            None => {
                for o in 0..n_out {
                    for (v, &i) in vals.iter_mut().zip(nb.iter()) {
                        *v = y[[i as usize, o]];
                    }
                    let s = if n_out == 1 {
                        pairwise_sum(&vals)
                    } else {
                        let mut s = vals[0];
                        for &v in &vals[1..] {
                            s += v;
                        }
                        s
                    };
                    out[[q, o]] = s / kf;
                }
            }
            Some(w) => {
                let w = w.row(q);
                let wv: Vec<f64> = w.to_vec();
                let denom = pairwise_sum(&wv);
                for o in 0..n_out {
                    for ((p, &i), &wj) in prods.iter_mut().zip(nb.iter()).zip(&wv) {
                        *p = y[[i as usize, o]].to_f64_lossless() * wj;
                    }
                    out[[q, o]] = T::from_f64_lossy(pairwise_sum(&prods) / denom);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn pairwise_sum_small_is_sequential() {
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        assert_eq!(pairwise_sum::<f64>(&[]), 0.0);
        let v: Vec<f64> = (0..300).map(f64::from).collect();
        assert_eq!(pairwise_sum(&v), 299.0 * 300.0 / 2.0);
    }

    #[test]
    fn tie_vote_goes_to_smallest_class() {
        let y = array![[1i64], [0], [1], [0]];
        let neigh = array![[0i64, 1], [2, 3]];
        let pred = classify(neigh.view(), y.view(), &[2], None).unwrap();
        assert_eq!(pred, array![[0i64], [0]]);
    }

    #[test]
    fn bad_indices_are_errors() {
        let y = array![[1i64], [0]];
        let neigh = array![[0i64, 5]];
        assert!(classify(neigh.view(), y.view(), &[2], None).is_err());
        let y_bad = array![[3i64], [0]];
        let neigh = array![[0i64, 1]];
        assert!(classify(neigh.view(), y_bad.view(), &[2], None).is_err());
    }
}
