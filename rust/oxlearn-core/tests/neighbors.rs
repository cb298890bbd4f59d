//! Oracle tests of the neighbour kernels: the heap/sort port, brute force against a naive
//! O(n^2) search for every metric, ties, thread-count independence and input errors.

use ndarray::{Array2, ArrayView2, array};
use oxlearn_core::neighbors::heap::{KHeap, heap_push, simultaneous_sort};
use oxlearn_core::neighbors::{Metric, kneighbors, kneighbors_multi, radius_neighbors};
use oxlearn_core::{CoreError, Threads};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn random(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 2.0 - 1.0)
}

fn integers(n: usize, d: usize, levels: u32, seed: u64) -> Array2<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| f64::from(rng.random_range(0..levels)))
}

/// The metric's distance between two rows, computed the obvious way.
fn naive_dist(metric: &Metric, a: &[f64], b: &[f64]) -> f64 {
    let diffs = a.iter().zip(b).map(|(x, y)| (x - y).abs());
    match metric {
        Metric::Euclidean | Metric::L2 => diffs.map(|d| d * d).sum::<f64>().sqrt(),
        Metric::SqEuclidean => diffs.map(|d| d * d).sum(),
        Metric::Manhattan => diffs.sum(),
        Metric::Chebyshev => diffs.fold(0.0, f64::max),
        Metric::Minkowski { p, w } => {
            let s: f64 = diffs
                .enumerate()
                .map(|(j, d)| w.as_ref().map_or(1.0, |w| w[j]) * d.powf(*p))
                .sum();
            s.powf(1.0 / p)
        }
        Metric::Cosine => {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            let sim = if na > 0.0 && nb > 0.0 {
                dot / (na * nb)
            } else {
                0.0
            };
            (1.0 - sim).clamp(0.0, 2.0)
        }
        Metric::Precomputed => unreachable!("precomputed rows are distances already"),
    }
}

/// Every distance, then a stable sort by (distance, index): the k smallest.
fn naive_knn(
    metric: &Metric,
    q: ArrayView2<'_, f64>,
    t: ArrayView2<'_, f64>,
    k: usize,
) -> (Array2<f64>, Array2<usize>) {
    let mut dist = Array2::zeros((q.nrows(), k));
    let mut idx = Array2::zeros((q.nrows(), k));
    for i in 0..q.nrows() {
        let qi = q.row(i).to_vec();
        let mut all: Vec<(f64, usize)> = (0..t.nrows())
            .map(|j| (naive_dist(metric, &qi, &t.row(j).to_vec()), j))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (slot, (d, j)) in all.into_iter().take(k).enumerate() {
            dist[[i, slot]] = d;
            idx[[i, slot]] = j;
        }
    }
    (dist, idx)
}

fn metrics() -> Vec<Metric> {
    vec![
        Metric::Euclidean,
        Metric::SqEuclidean,
        Metric::L2,
        Metric::Manhattan,
        Metric::Chebyshev,
        Metric::Minkowski { p: 3.0, w: None },
        Metric::Minkowski {
            p: 1.5,
            w: Some(vec![0.5, 1.0, 2.0, 0.25, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0, 1.0]),
        },
        Metric::Cosine,
    ]
}

#[test]
fn brute_matches_naive_on_random_data_for_every_metric() {
    // 11 features: exercises both the 8-wide accumulators and their tail.
    let train = random(700, 11, 1);
    let query = random(90, 11, 2);
    for metric in metrics() {
        for k in [1, 5, 33] {
            let (d, i) = kneighbors(query.view(), train.view(), k, &metric, Threads::Single)
                .expect("valid input");
            let (nd, ni) = naive_knn(&metric, query.view(), train.view(), k);
            assert_eq!(i, ni, "indices, {metric:?}, k={k}");
            for (a, b) in d.iter().zip(nd.iter()) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{metric:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn precomputed_matches_naive() {
    let train = random(200, 5, 3);
    let query = random(40, 5, 4);
    let dists = Array2::from_shape_fn((40, 200), |(i, j)| {
        naive_dist(
            &Metric::Euclidean,
            &query.row(i).to_vec(),
            &train.row(j).to_vec(),
        )
    });
    let (d, i) = kneighbors(
        dists.view(),
        train.view(),
        6,
        &Metric::Precomputed,
        Threads::Single,
    )
    .unwrap();
    let (nd, ni) = naive_knn(&Metric::Euclidean, query.view(), train.view(), 6);
    assert_eq!(i, ni);
    assert_eq!(d, nd);
}

#[test]
fn ties_keep_the_k_smallest_distances() {
    // Small integers: exact distances and many ties. The kept distances are the k smallest
    // whatever the tie order, and every reported distance is that index's true distance.
    let train = integers(900, 3, 3, 5);
    let query = integers(300, 3, 3, 6);
    for metric in [Metric::Euclidean, Metric::Manhattan, Metric::Chebyshev] {
        for k in [1, 4, 9, 40] {
            let (d, i) = kneighbors(query.view(), train.view(), k, &metric, Threads::Single)
                .expect("valid input");
            let (nd, _) = naive_knn(&metric, query.view(), train.view(), k);
            assert_eq!(d, nd, "{metric:?} k={k}");
            for q in 0..query.nrows() {
                let qrow = query.row(q).to_vec();
                for s in 0..k {
                    let j = i[[q, s]];
                    assert_eq!(
                        d[[q, s]],
                        naive_dist(&metric, &qrow, &train.row(j).to_vec())
                    );
                }
            }
        }
    }
}

#[test]
fn several_k_from_one_search_equal_separate_searches() {
    let train = integers(1500, 4, 3, 7);
    for n_query in [100, 1300] {
        let query = integers(n_query, 4, 3, 8);
        let ks = [9, 1, 3, 2, 9, 5];
        let multi = kneighbors_multi(
            query.view(),
            train.view(),
            &ks,
            &Metric::Euclidean,
            Threads::Pool(2),
        )
        .unwrap();
        for (&k, got) in ks.iter().zip(&multi) {
            let single = kneighbors(
                query.view(),
                train.view(),
                k,
                &Metric::Euclidean,
                Threads::Single,
            )
            .unwrap();
            assert_eq!(got, &single, "k={k}");
        }
    }
}

/// Small searches keep their working memory for the next search of the same shape (see
/// `Scratch::keep_spare`): searches of other data, other `k`s, other dtypes and thread
/// counts in between must not change a result.
#[test]
fn searches_in_a_row_do_not_leak_state() {
    let train = integers(1347, 64, 17, 21);
    let query = integers(450, 64, 17, 22);
    let other_t = random(1347, 64, 23);
    let other_q = random(450, 64, 24);
    let m = Metric::Euclidean;
    // The digits' shape and levels: many tied distances, so the reference is the search
    // itself (on one thread its tiles are twice as tall: other working sets), and the naive
    // search checks the distances only.
    let first = kneighbors(query.view(), train.view(), 5, &m, Threads::Single).unwrap();
    assert_eq!(first.0, naive_knn(&m, query.view(), train.view(), 5).0);
    for round in 0..3 {
        let other = kneighbors(other_q.view(), other_t.view(), 5, &m, Threads::Pool(2)).unwrap();
        let (nd, ni) = naive_knn(&m, other_q.view(), other_t.view(), 5);
        assert_eq!(other.1, ni, "round {round}");
        assert!(
            other
                .0
                .iter()
                .zip(&nd)
                .all(|(a, b)| (a - b).abs() <= 1e-12 * b.max(1.0))
        );
        let (q32, t32) = (query.mapv(|v| v as f32), train.mapv(|v| v as f32));
        let f32_res = kneighbors(q32.view(), t32.view(), 5, &m, Threads::Pool(2)).unwrap();
        assert_eq!(f32_res.1, first.1, "round {round}");
        let multi =
            kneighbors_multi(query.view(), train.view(), &[3, 9], &m, Threads::Pool(2)).unwrap();
        let nine = kneighbors(query.view(), train.view(), 9, &m, Threads::Single).unwrap();
        assert_eq!(multi[1], nine, "round {round}");
        let fewer = kneighbors(
            query.slice(ndarray::s![..7, ..]),
            train.view(),
            5,
            &m,
            Threads::Single,
        )
        .unwrap();
        assert_eq!(fewer.1, first.1.slice(ndarray::s![..7, ..]));
        let again = kneighbors(query.view(), train.view(), 5, &m, Threads::Pool(2)).unwrap();
        assert_eq!(again, first, "round {round}");
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let train = integers(2000, 6, 4, 9);
    let query = integers(777, 6, 4, 10);
    for metric in metrics().into_iter().take(5) {
        let one = kneighbors(query.view(), train.view(), 12, &metric, Threads::Single).unwrap();
        for t in [2, 3, 8] {
            let many =
                kneighbors(query.view(), train.view(), 12, &metric, Threads::Pool(t)).unwrap();
            assert_eq!(one, many, "{metric:?} with {t} threads");
        }
    }
}

#[test]
fn float32_stays_close_to_float64() {
    let train = random(400, 16, 11);
    let query = random(50, 16, 12);
    let (t32, q32) = (train.mapv(|v| v as f32), query.mapv(|v| v as f32));
    let (d64, _) = kneighbors(
        query.view(),
        train.view(),
        5,
        &Metric::Euclidean,
        Threads::Single,
    )
    .unwrap();
    let (d32, _) = kneighbors(
        q32.view(),
        t32.view(),
        5,
        &Metric::Euclidean,
        Threads::Single,
    )
    .unwrap();
    for (a, b) in d32.iter().zip(d64.iter()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn radius_matches_naive() {
    let train = random(300, 4, 13);
    let query = random(30, 4, 14);
    for metric in metrics()
        .into_iter()
        .filter(|m| !matches!(m, Metric::Minkowski { w: Some(_), .. }))
    {
        let r = if matches!(metric, Metric::Cosine) {
            0.3
        } else {
            0.8
        };
        for sort in [false, true] {
            let res = radius_neighbors(
                query.view(),
                train.view(),
                r,
                &metric,
                sort,
                Threads::Pool(2),
            )
            .unwrap();
            assert_eq!(res.indptr.len(), 31);
            for q in 0..30 {
                let qrow = query.row(q).to_vec();
                let mut expected: Vec<(f64, usize)> = (0..300)
                    .map(|j| (naive_dist(&metric, &qrow, &train.row(j).to_vec()), j))
                    .filter(|(d, _)| *d <= r)
                    .collect();
                if sort {
                    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
                let span = res.indptr[q]..res.indptr[q + 1];
                let got: Vec<usize> = res.indices[span.clone()].to_vec();
                assert_eq!(got, expected.iter().map(|e| e.1).collect::<Vec<_>>());
                for (a, e) in res.distances[span].iter().zip(&expected) {
                    assert!((a - e.0).abs() < 1e-12);
                }
            }
        }
    }
}

#[test]
fn heap_keeps_the_k_smallest_values() {
    let mut rng = Pcg64::seed_from_u64(15);
    for k in 1..20 {
        let vals: Vec<f64> = (0..200)
            .map(|_| f64::from(rng.random_range(0..30u32)))
            .collect();
        let mut heap = KHeap::new(k);
        for (i, &v) in vals.iter().enumerate() {
            heap.push(v, i);
        }
        let mut kept = heap.values.clone();
        kept.sort_by(f64::total_cmp);
        let mut all = vals.clone();
        all.sort_by(f64::total_cmp);
        assert_eq!(kept, all[..k].to_vec());
        for (&v, &i) in heap.values.iter().zip(&heap.indices) {
            assert_eq!(vals[i], v);
        }
        // Max-heap property.
        for c in 1..k {
            assert!(heap.values[(c - 1) / 2] >= heap.values[c]);
        }
    }
    // `val >= root` is rejected.
    let (mut v, mut i) = (vec![1.0, 0.5], vec![3, 4]);
    heap_push(&mut v, &mut i, 1.0, 9);
    assert_eq!((v, i), (vec![1.0, 0.5], vec![3, 4]));
}

#[test]
fn sort_is_scikit_learns_introsort() {
    // Expected order from sklearn.utils._sorting._py_simultaneous_sort (two-way partition).
    let mut v: Vec<f64> = (0..40).map(|i| f64::from((i * 7) % 5)).collect();
    let mut idx: Vec<usize> = (0..40).collect();
    simultaneous_sort(&mut v, &mut idx);
    let expected = vec![
        0, 35, 30, 25, 15, 10, 20, 5, 23, 8, 38, 13, 33, 28, 18, 3, 36, 1, 31, 26, 21, 6, 11, 16,
        39, 9, 34, 14, 29, 4, 19, 24, 2, 22, 32, 17, 12, 37, 7, 27,
    ];
    assert_eq!(idx, expected);
    // Against a naive oracle: sorted, and the same (value, index) pairs.
    let mut rng = Pcg64::seed_from_u64(16);
    for n in [0, 1, 2, 15, 16, 17, 100, 1000] {
        let vals: Vec<f64> = (0..n)
            .map(|_| f64::from(rng.random_range(0..50u32)))
            .collect();
        let mut v = vals.clone();
        let mut i: Vec<usize> = (0..n).collect();
        simultaneous_sort(&mut v, &mut i);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        let mut seen: Vec<usize> = i.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
        for (val, ix) in v.iter().zip(&i) {
            assert_eq!(*val, vals[*ix]);
        }
    }
    // Already-sorted input of many equal values must not go quadratic: heapsort fallback.
    let mut v = vec![1.0f64; 5000];
    let mut i: Vec<usize> = (0..5000).collect();
    simultaneous_sort(&mut v, &mut i);
    assert!(v.iter().all(|&x| x == 1.0));
}

#[test]
fn errors_not_panics() {
    let t = array![[0.0, 1.0], [2.0, 3.0]];
    let q = array![[0.0, 1.0]];
    let empty = Array2::<f64>::zeros((0, 2));
    let e = kneighbors(
        q.view(),
        empty.view(),
        1,
        &Metric::Euclidean,
        Threads::Single,
    );
    assert!(matches!(e, Err(CoreError::EmptyInput(_))));
    for k in [0, 3] {
        let e = kneighbors(q.view(), t.view(), k, &Metric::Euclidean, Threads::Single);
        assert!(
            matches!(e, Err(CoreError::InvalidParameter { .. })),
            "k={k}"
        );
    }
    let q3 = array![[0.0, 1.0, 2.0]];
    let e = kneighbors(q3.view(), t.view(), 1, &Metric::Manhattan, Threads::Single);
    assert!(matches!(e, Err(CoreError::ShapeMismatch { .. })));
    let e = kneighbors(
        q3.view(),
        t.view(),
        1,
        &Metric::Precomputed,
        Threads::Single,
    );
    assert!(matches!(e, Err(CoreError::ShapeMismatch { .. })));
    let w = Metric::Minkowski {
        p: 3.0,
        w: Some(vec![1.0]),
    };
    assert!(matches!(
        kneighbors(q.view(), t.view(), 1, &w, Threads::Single),
        Err(CoreError::ShapeMismatch { .. })
    ));
    assert!(Metric::from_name("minkowski", 0.5, None).is_err());
    assert!(Metric::from_name("minkowski", f64::NAN, None).is_err());
    assert!(Metric::from_name("minkowski", 2.0, Some(vec![-1.0])).is_err());
    assert!(Metric::from_name("hamming", 2.0, None).is_err());
    assert_eq!(
        Metric::from_name("minkowski", f64::INFINITY, None),
        Ok(Metric::Chebyshev)
    );
    assert!(
        radius_neighbors(
            q.view(),
            t.view(),
            -1.0,
            &Metric::Euclidean,
            false,
            Threads::Single
        )
        .is_err()
    );
    // Queries may be empty: an empty answer, not an error.
    let none = Array2::<f64>::zeros((0, 2));
    let (d, i) = kneighbors(
        none.view(),
        t.view(),
        1,
        &Metric::Euclidean,
        Threads::Pool(2),
    )
    .unwrap();
    assert_eq!((d.dim(), i.dim()), ((0, 1), (0, 1)));
}

#[test]
fn non_contiguous_views_are_accepted() {
    let train = random(100, 6, 17);
    let query = random(20, 6, 18);
    let tf = train.t().as_standard_layout().into_owned();
    let (a, ai) = kneighbors(
        query.view(),
        train.view(),
        4,
        &Metric::Euclidean,
        Threads::Single,
    )
    .unwrap();
    let (b, bi) = kneighbors(query.view(), tf.t(), 4, &Metric::Euclidean, Threads::Single).unwrap();
    assert_eq!(ai, bi);
    assert_eq!(a, b);
}

#[test]
fn nan_distances_enter_the_heaps_as_in_scikit_learn() {
    // A zero Minkowski weight on a feature whose difference overflows gives 0 * inf = NaN.
    // scikit-learn's heap refuses only values `>=` its root, so it takes a NaN; the results
    // must be those of pushing every candidate in index order into that heap (NaN results
    // are not meaningful, in scikit-learn either, but they must come from the same rule).
    let mut train = integers(30, 4, 3, 21);
    let mut query = integers(40, 4, 3, 22);
    for r in (0..30).step_by(4) {
        train[[r, 0]] = 1e300;
    }
    for r in (0..40).step_by(5) {
        query[[r, 0]] = -1e300;
    }
    let w = vec![0.0, 1.0, 2.0, 1.0];
    let metric = Metric::Minkowski {
        p: 2.0,
        w: Some(w.clone()),
    };
    let k = 7;
    let (d, i) = kneighbors(query.view(), train.view(), k, &metric, Threads::Single).unwrap();
    let mut saw_nan = false;
    for q in 0..query.nrows() {
        let mut heap = KHeap::new(k);
        for t in 0..train.nrows() {
            let r: f64 = (0..4)
                .map(|j| w[j] * (query[[q, j]] - train[[t, j]]).abs().powi(2))
                .sum();
            heap.push(r, t);
        }
        simultaneous_sort(&mut heap.values, &mut heap.indices);
        assert_eq!(i.row(q).to_vec(), heap.indices, "query {q}");
        for (s, &r) in heap.values.iter().enumerate() {
            let got = d[[q, s]];
            saw_nan |= got.is_nan();
            assert!(got.is_nan() == r.is_nan() && (r.is_nan() || got == r.sqrt()));
        }
    }
    assert!(saw_nan, "the data must produce NaN distances");
}

#[test]
fn cosine_rows_whose_norm_overflows_are_at_distance_one() {
    // scikit-learn divides such a row by an infinite norm, so it becomes zero and its
    // cosine distance to anything is 1 (not the NaN of 0 * inf).
    let mut train = random(25, 5, 23);
    let mut query = random(30, 5, 24);
    for r in (0..25).step_by(3) {
        train.row_mut(r).mapv_inplace(|v| v * 1e200);
    }
    query.row_mut(0).mapv_inplace(|v| v * 1e200);
    let (d, i) = kneighbors(
        query.view(),
        train.view(),
        25,
        &Metric::Cosine,
        Threads::Single,
    )
    .unwrap();
    for q in 0..query.nrows() {
        let mut seen = i.row(q).to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..25).collect::<Vec<_>>(), "query {q}");
        for s in 0..25 {
            let t = i[[q, s]];
            if q == 0 || t % 3 == 0 {
                assert_eq!(d[[q, s]], 1.0, "query {q}, row {t}");
            } else {
                assert!(d[[q, s]].is_finite());
            }
        }
    }
}

/// scikit-learn's `DistanceMetric` arithmetic for the direct-sum metrics: each feature's
/// difference in the input dtype, its term in float64, the terms summed in feature order,
/// the sum rounded to the input dtype (`dist`/`rdist` return it). Returns the reduced
/// distance as float64.
fn sklearn_rdist<T: oxlearn_core::Real>(metric: &Metric, a: &[T], b: &[T]) -> f64 {
    let mut d = 0.0_f64;
    for (j, (&x, &y)) in a.iter().zip(b).enumerate() {
        let diff = (x - y).to_f64_lossless().abs();
        d += match metric {
            Metric::Manhattan => diff,
            Metric::L2 => diff * diff,
            Metric::Minkowski { p, w } => w.as_ref().map_or(1.0, |w| w[j]) * diff.powf(*p),
            _ => unreachable!("direct-sum metrics only"),
        };
    }
    T::from_f64_lossy(d).to_f64_lossless()
}

/// Decimal-grid data (multiples of 0.1) ties in exact arithmetic but not in rounded sums:
/// the neighbours kept depend on the order of the sums. Ours must be scikit-learn's, bit
/// for bit, in float64 and float32.
#[test]
fn direct_sums_are_scikit_learns_bit_for_bit() {
    // The tracker's example: scikit-learn keeps row 1 (feature-order sums), a
    // pairwise-summed 0.1 grid keeps row 0.
    let x = array![
        [0.1, 0.3, 0.3, 0.1, 0.2, 0.1, 0.2, 0.0],
        [0.2, 0.3, 0.1, 0.5, 0.1, 0.5, 0.4, 0.4]
    ];
    let q = array![[0.3, 0.5, 0.1, 0.1, 0.3, 0.4, 0.3, 0.2]];
    let (_, idx) = kneighbors(q.view(), x.view(), 1, &Metric::Manhattan, Threads::Single)
        .expect("search runs");
    assert_eq!(idx[[0, 0]], 1);

    let mut rng = Pcg64::seed_from_u64(11);
    let grid = |n: usize, rng: &mut Pcg64| {
        Array2::from_shape_fn((n, 37), |_| f64::from(rng.random_range(0..6_u8)) * 0.1)
    };
    let (t, q) = (grid(700, &mut rng), grid(60, &mut rng));
    let w: Vec<f64> = (0..37).map(|j| 0.5 + f64::from(j % 3) * 0.3).collect();
    let metrics = [
        Metric::Manhattan,
        Metric::L2,
        Metric::Minkowski { p: 3.0, w: None },
        Metric::Minkowski { p: 1.5, w: Some(w) },
    ];
    for metric in &metrics {
        let want = |qr: &[f64], j: usize| sklearn_rdist(metric, qr, t.row(j).as_slice().unwrap());
        let (dist, idx) =
            kneighbors(q.view(), t.view(), 700, metric, Threads::exactly(2)).expect("runs");
        for i in 0..q.nrows() {
            let qr = q.row(i).to_vec();
            for c in 0..700 {
                let r = want(&qr, idx[[i, c]]);
                assert_eq!(dist[[i, c]].to_bits(), metric.rdist_to_dist(r).to_bits());
            }
        }
        let (t32, q32) = (t.mapv(|v| v as f32), q.mapv(|v| v as f32));
        let (dist, idx) =
            kneighbors(q32.view(), t32.view(), 700, metric, Threads::Single).expect("runs");
        for i in 0..q.nrows() {
            let qr = q32.row(i).to_vec();
            for c in 0..700 {
                let r = sklearn_rdist(metric, &qr, t32.row(idx[[i, c]]).as_slice().unwrap());
                let reported = f64::from(metric.rdist_to_dist(r) as f32);
                assert_eq!(
                    dist[[i, c]].to_bits(),
                    reported.to_bits(),
                    "{metric:?} float32"
                );
            }
        }
    }
}
