//! Every instruction-set build of the MLP's element-wise passes gives the portable build's
//! bits (`oxlearn_core::mlp::simd`), and the chunked passes give the same bits for any thread
//! count.

use oxlearn_core::mlp::activation::{
    backprop_rows_at, exp_f64, hidden_bias_activate, softmax_block, softmax_row,
};
use oxlearn_core::mlp::elementwise::{reduce, sum_squares};
use oxlearn_core::mlp::optim::{AdamConsts, adam_step_at, sgd_step_at};
use oxlearn_core::mlp::{Activation, forward_predict};
use oxlearn_core::platform::SimdLevel;
use oxlearn_core::{Real, Threads};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn data<T: Real>(rng: &mut Pcg64, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64_lossy(rng.random_range(-2.0..2.0)))
        .collect()
}

fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64_lossless().to_bits()).collect()
}

fn check_levels<T: Real>() {
    let mut rng = Pcg64::seed_from_u64(7);
    // Odd sizes: remainders of every vector width.
    let (rows, w) = (37, 29);
    let z0 = data::<T>(&mut rng, rows * w);
    let bias = data::<T>(&mut rng, w);
    let delta0 = data::<T>(&mut rng, rows * w);
    let parts: Vec<Vec<T>> = (0..3).map(|_| data::<T>(&mut rng, 20_011)).collect();
    // Every seventh weight and gradient tiny (near, at and below the bounds under which
    // `sum_squares` and Adam flush a subnormal square), so the levels agree there too.
    let tiny = |v: Vec<T>, rng: &mut Pcg64| -> Vec<T> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| {
                if i % 7 == 3 {
                    x * T::from_f64_lossy(10f64.powf(rng.random_range(-30.0..-14.0)))
                } else {
                    x
                }
            })
            .collect()
    };
    let wts = tiny(data::<T>(&mut rng, 20_011), &mut rng);
    let g = tiny(data::<T>(&mut rng, 20_011), &mut rng);
    let m0 = data::<T>(&mut rng, 20_011);
    let v0: Vec<T> = data::<T>(&mut rng, 20_011)
        .iter()
        .map(|x| *x * *x)
        .collect();
    let c = AdamConsts {
        b1: T::from_f64_lossy(0.9),
        omb1: T::from_f64_lossy(0.1),
        b2: T::from_f64_lossy(0.999),
        omb2: T::from_f64_lossy(1.0 - 0.999),
        eps: T::from_f64_lossy(1e-8),
        neg_lr: T::from_f64_lossy(-1e-3),
    };
    let mut reference = None;
    for level in SimdLevel::available().into_iter().rev() {
        let mut out = Vec::new();
        for act in [
            Activation::Identity,
            Activation::Logistic,
            Activation::Tanh,
            Activation::Relu,
        ] {
            let mut z = z0.clone();
            hidden_bias_activate(level, act, &mut z, &bias);
            out.extend(bits(&z));
            let mut d = delta0.clone();
            let mut colsum = vec![T::zero(); w];
            backprop_rows_at(level, act, &z, &mut d, &mut colsum);
            out.extend(bits(&d));
            out.extend(bits(&colsum));
        }
        let mut z = z0.clone();
        softmax_block(level, &mut z, &bias);
        out.extend(bits(&z));
        let refs: Vec<&[T]> = parts.iter().map(Vec::as_slice).collect();
        for threads in [Threads::Single, Threads::Pool(2), Threads::Pool(3)] {
            let mut dst = vec![T::zero(); 20_011];
            threads
                .install(|| {
                    reduce(
                        level,
                        threads,
                        &mut dst,
                        &refs,
                        false,
                        Some((&wts, T::from_f64_lossy(1e-4), T::from_f64_lossy(200.0))),
                    );
                })
                .unwrap();
            out.extend(bits(&dst));
        }
        out.push(sum_squares(level, &wts).to_bits());
        let (mut p, mut m, mut v) = (wts.clone(), m0.clone(), v0.clone());
        adam_step_at(level, &mut p, &g, &mut m, &mut v, &c);
        out.extend(bits(&p));
        out.extend(bits(&m));
        out.extend(bits(&v));
        let (mut p, mut vel) = (wts.clone(), m0.clone());
        sgd_step_at(
            level,
            &mut p,
            &g,
            &mut vel,
            T::from_f64_lossy(0.9),
            T::from_f64_lossy(0.1),
            true,
        );
        out.extend(bits(&p));
        out.extend(bits(&vel));
        match &reference {
            None => reference = Some(out),
            Some(r) => assert!(*r == out, "{level:?} differs from the portable build"),
        }
    }
}

#[test]
fn every_level_gives_the_portable_bits_f64() {
    check_levels::<f64>();
}

#[test]
fn every_level_gives_the_portable_bits_f32() {
    check_levels::<f32>();
}

#[test]
fn chunked_forward_is_thread_count_independent() {
    let mut rng = Pcg64::seed_from_u64(3);
    // 1000 rows: eight chunks of 125.
    let x = ndarray::Array2::from_shape_vec((1000, 13), data::<f64>(&mut rng, 13_000)).unwrap();
    let w1 = ndarray::Array2::from_shape_vec((13, 31), data::<f64>(&mut rng, 403)).unwrap();
    let b1 = ndarray::Array1::from(data::<f64>(&mut rng, 31));
    let w2 = ndarray::Array2::from_shape_vec((31, 4), data::<f64>(&mut rng, 124)).unwrap();
    let b2 = ndarray::Array1::from(data::<f64>(&mut rng, 4));
    let run = |t| {
        forward_predict(
            x.view(),
            &[w1.view(), w2.view()],
            &[b1.view(), b2.view()],
            Activation::Relu,
            oxlearn_core::mlp::OutActivation::Softmax,
            t,
        )
        .unwrap()
    };
    let one = run(Threads::Single);
    assert_eq!(one, run(Threads::Pool(2)));
    assert_eq!(one, run(Threads::Pool(3)));
}

#[test]
fn exp_is_within_two_ulp_of_libm() {
    let mut rng = Pcg64::seed_from_u64(11);
    let mut xs: Vec<f64> = (0..200_000)
        .map(|_| rng.random_range(-745.0..709.7))
        .collect();
    xs.extend((0..20_000).map(|_| rng.random_range(-40.0..1.0)));
    xs.extend([
        0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 709.78, -708.4, -744.0, -745.1,
    ]);
    for &x in &xs {
        let (got, want) = (exp_f64(x), x.exp());
        let ulp = if want == 0.0 {
            f64::from_bits(1)
        } else {
            (f64::from_bits(want.to_bits() + 1) - want).max(f64::from_bits(1))
        };
        assert!(
            (got - want).abs() <= 2.0 * ulp,
            "exp({x}) = {got}, libm {want}"
        );
    }
    assert!(exp_f64(f64::NAN).is_nan());
    assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
    assert_eq!(exp_f64(-800.0), 0.0);
    assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
    assert_eq!(exp_f64(710.0), f64::INFINITY);
}

#[test]
fn softmax_block_matches_row_softmax() {
    let mut rng = Pcg64::seed_from_u64(5);
    let (rows, w) = (50, 10);
    let z0 = data::<f64>(&mut rng, rows * w);
    let bias = data::<f64>(&mut rng, w);
    let mut a: Vec<f64> = z0
        .iter()
        .zip(bias.iter().cycle())
        .map(|(z, b)| z + b)
        .collect();
    for row in a.chunks_exact_mut(w) {
        softmax_row(row);
    }
    let mut b = z0.clone();
    softmax_block(SimdLevel::detected(), &mut b, &bias);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-15 * x.abs().max(1e-300), "{x} vs {y}");
    }
    // A NaN in a row makes the whole row NaN, as np.max and np.exp do.
    let mut c = z0.clone();
    c[3] = f64::NAN;
    softmax_block(SimdLevel::detected(), &mut c, &bias);
    assert!(c[..w].iter().all(|v| v.is_nan()));
    assert!(c[w..].iter().all(|v| v.is_finite()));
}

/// `sum_k a(i, k) b(k, j)` with one fused multiply-add per step, `k` ascending from zero:
/// the arithmetic `tiled::product` promises.
fn naive_product<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    a: impl Fn(usize, usize) -> T,
    b: impl Fn(usize, usize) -> T,
) -> Vec<T> {
    let mut out = vec![T::zero(); m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = T::zero();
            for k in 0..kk {
                s = a(i, k).mul_add(b(k, j), s);
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn check_small_products<T: Real>() {
    use oxlearn_core::mlp::tiled::{
        Epilogue, GEMM_MIN, LeftOperand as Left, Mat, RightOperand as Right, product,
    };
    let mut rng = Pcg64::seed_from_u64(17);
    // Row counts with every remainder of the 4- and 2-row tiles, widths below, at and
    // above one 16-column tile, inner sizes down to one.
    for &(m, n, kk) in &[
        (37, 10, 13),
        (16, 16, 64),
        (9, 33, 5),
        (3, 1, 1),
        (200, 16, 10),
        (11, 29, 200),
        // Wide tiles (AVX-512): 32 and 64 columns, partial last tiles, every row remainder
        // of the 12-, 6-, 4-, 2- and 1-row blocks.
        (100, 256, 64),
        (23, 70, 37),
        (13, 64, 1),
        (31, 129, 100),
        (47, 48, 9),
        (12, 10, 256),
        // Large in every dimension: the `gemm` crate's products (with the row index, still
        // the tiles).
        (100, 128, 128),
        (GEMM_MIN, GEMM_MIN + 1, GEMM_MIN),
    ] {
        let src_rows = m.max(n).max(kk) + 7;
        let wide = m.max(n).max(kk) + 3;
        let adata = data::<T>(&mut rng, src_rows * wide);
        let bdata = data::<T>(&mut rng, src_rows * wide);
        let idx: Vec<usize> = (0..src_rows).map(|i| (i * 5 + 3) % src_rows).collect();
        let bias = data::<T>(&mut rng, n);
        let act: Vec<T> = data::<T>(&mut rng, m * n)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { T::zero() } else { v.abs() })
            .collect();
        let mut reference: Option<Vec<u64>> = None;
        for level in SimdLevel::available() {
            let mut got = Vec::new();
            let mut panel = oxlearn_core::mlp::buf::Buf::default();
            for picked in [false, true] {
                let mat = |d: &'static str| {
                    let src = if d == "a" { &adata } else { &bdata };
                    if picked {
                        Mat::picked(src, wide, &idx)
                    } else {
                        Mat::rows(src, wide)
                    }
                };
                let row = |r: usize| if picked { idx[r] } else { r };
                // Large, index-free products go to the gemm crate: another summation order.
                let routed = !picked && m.min(n).min(kk) >= GEMM_MIN;
                // Left rows / cols against right rows / cols.
                let cases: [(bool, bool); 4] =
                    [(true, true), (true, false), (false, true), (false, false)];
                for (left_rows, right_rows) in cases {
                    let a = if left_rows {
                        Left::Rows(mat("a"))
                    } else {
                        Left::Cols(mat("a"))
                    };
                    let b = if right_rows {
                        Right::Rows(Mat::rows(&bdata, wide))
                    } else {
                        Right::Cols(Mat::rows(&bdata, wide))
                    };
                    let want = naive_product(
                        m,
                        n,
                        kk,
                        |i, k| {
                            if left_rows {
                                adata[row(i) * wide + k]
                            } else {
                                adata[row(k) * wide + i]
                            }
                        },
                        |k, j| {
                            if right_rows {
                                bdata[k * wide + j]
                            } else {
                                bdata[j * wide + k]
                            }
                        },
                    );
                    for e in 0..6 {
                        let mut c = vec![T::nan(); m * n];
                        let mut colsum = vec![T::nan(); n];
                        let epi = match e {
                            0 => Epilogue::Store,
                            1 => Epilogue::BiasAct(&bias, Activation::Tanh),
                            3 => Epilogue::Bias(&bias),
                            4 => Epilogue::BiasAct(&bias, Activation::Relu),
                            5 => Epilogue::BiasAct(&bias, Activation::Identity),
                            _ => Epilogue::Deriv {
                                f: Activation::Relu,
                                act: &act,
                                colsum: &mut colsum,
                            },
                        };
                        product(level, m, n, kk, a, b, &mut c, n, epi, &mut panel);
                        let mut expect = want.clone();
                        match e {
                            0 => {}
                            1 => Activation::Tanh.bias_activate(&mut expect, &bias),
                            3 | 5 => Activation::Identity.bias_activate(&mut expect, &bias),
                            4 => Activation::Relu.bias_activate(&mut expect, &bias),
                            _ => {
                                let mut sums = vec![T::zero(); n];
                                Activation::Relu.backprop_rows(&act, &mut expect, &mut sums);
                                if !routed {
                                    assert_eq!(bits(&colsum), bits(&sums), "{level:?} colsum");
                                }
                            }
                        }
                        if routed {
                            // Another summation order: equal to rounding.
                            let tol =
                                T::from_f64_lossy(if size_of::<T>() == 4 { 1e-4 } else { 1e-12 });
                            for (&g, &w) in c.iter().zip(&expect) {
                                let scale = T::from_f64_lossy(kk as f64 * 4.0);
                                assert!((g - w).abs() <= tol * scale, "{level:?} {m}x{n}x{kk} {e}");
                            }
                        } else {
                            assert_eq!(bits(&c), bits(&expect), "{level:?} {m}x{n}x{kk} {e}");
                        }
                        got.extend(bits(&c));
                    }
                }
            }
            match &reference {
                None => reference = Some(got),
                Some(r) => assert!(*r == got, "{level:?} differs from the first level"),
            }
        }
    }
}

#[test]
fn small_products_match_fused_loops_at_every_level_f64() {
    check_small_products::<f64>();
}

#[test]
fn small_products_match_fused_loops_at_every_level_f32() {
    check_small_products::<f32>();
}

#[test]
fn ln_is_within_one_ulp_of_libm_at_every_level() {
    use oxlearn_core::mlp::loss::{ln_f64, ln_slice};
    let mut rng = Pcg64::seed_from_u64(23);
    let mut xs: Vec<f64> = (0..100_000)
        .map(|_| 10f64.powf(rng.random_range(-300.0..300.0)))
        .collect();
    // Probabilities, and the values near 1 (|f| < 2^-20) a trained softmax gives.
    xs.extend((0..100_000).map(|_| rng.random_range(f64::EPSILON..1.0)));
    xs.extend((0..20_000).map(|_| 1.0 - rng.random_range(0.0..1e-5)));
    xs.extend((0..20_000).map(|_| 1.0 + rng.random_range(0.0..1e-5)));
    xs.extend((0..2_000).map(|_| rng.random_range(1e-320..2.2e-308)));
    xs.extend([
        1.0,
        2.0,
        0.5,
        f64::EPSILON,
        1.0 - f64::EPSILON,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        std::f64::consts::SQRT_2,
        std::f64::consts::FRAC_1_SQRT_2,
    ]);
    for &x in &xs {
        let (got, want) = (ln_f64(x), x.ln());
        let ulp = (f64::from_bits(want.abs().to_bits() + 1) - want.abs()).max(f64::from_bits(1));
        assert!(
            (got - want).abs() <= ulp,
            "ln({x:e}) = {got:e}, libm {want:e}"
        );
    }
    assert_eq!(ln_f64(0.0), f64::NEG_INFINITY);
    assert_eq!(ln_f64(f64::INFINITY), f64::INFINITY);
    assert!(ln_f64(-1.0).is_nan() && ln_f64(f64::NAN).is_nan());
    let reference: Vec<u64> = xs.iter().map(|&x| ln_f64(x).to_bits()).collect();
    for level in SimdLevel::available() {
        let mut v = xs.clone();
        ln_slice::<f64>(level, &mut v);
        assert_eq!(bits(&v), reference, "{level:?}");
    }
}

#[test]
fn fused_log_loss_matches_loss_sum_and_delta() {
    use oxlearn_core::mlp::Loss;
    use oxlearn_core::mlp::loss::log_loss_and_delta;
    let mut rng = Pcg64::seed_from_u64(29);
    let (rows, w) = (57, 10);
    let mut z = data::<f64>(&mut rng, rows * w);
    softmax_block(SimdLevel::detected(), &mut z, &vec![0.0; w]);
    // A few extremes: a probability below eps, one at 1, a NaN row.
    z[3] = 1e-300;
    z[w + 4] = 1.0;
    z[5 * w + 2] = f64::NAN;
    let mut y = vec![0.0; rows * w];
    for r in 0..rows {
        y[r * w + (r * 7) % w] = 1.0;
    }
    y[3] = 1.0;
    y[w + 4] = 1.0;
    let sw: Vec<f64> = (0..rows).map(|_| rng.random_range(0.1..2.0)).collect();
    for weights in [None, Some(&sw[..])] {
        let want_loss = Loss::LogLoss.sum(&z, &y, w, weights);
        let mut want_delta = vec![0.0; rows * w];
        let mut want_cs = vec![0.0; w];
        for r in 0..rows {
            for c in 0..w {
                let mut d = z[r * w + c] - y[r * w + c];
                if let Some(sw) = weights {
                    d *= sw[r];
                }
                want_delta[r * w + c] = d;
            }
        }
        for row in want_delta.chunks_exact(w) {
            for (s, &d) in want_cs.iter_mut().zip(row) {
                *s += d;
            }
        }
        for level in SimdLevel::available() {
            let mut delta = vec![0.0; rows * w];
            let mut cs = vec![0.0; w];
            let mut scratch = Vec::new();
            let got =
                log_loss_and_delta(level, &z, &y, w, weights, &mut delta, &mut cs, &mut scratch);
            assert_eq!(bits(&delta), bits(&want_delta), "{level:?}");
            assert_eq!(bits(&cs), bits(&want_cs), "{level:?}");
            assert!(
                got.is_nan() && want_loss.is_nan(),
                "a NaN probability makes the loss NaN"
            );
            // Without the NaN row: the same loss to the last bits but one (ln within 1 ulp).
            let (z2, y2) = (&z[6 * w..], &y[6 * w..]);
            let w2 = weights.map(|s| &s[6..]);
            let want = Loss::LogLoss.sum(z2, y2, w, w2);
            let got = log_loss_and_delta(
                level,
                z2,
                y2,
                w,
                w2,
                &mut delta[6 * w..],
                &mut cs,
                &mut scratch,
            );
            assert!((got - want).abs() <= 1e-14 * want.abs(), "{got} vs {want}");
        }
    }
}

/// Left operands with `Mat::nonzero` masks: the products that skip their zeros give the
/// bits of the same products over every term, for inputs zero in runs and at random (with
/// `-0.0` among the zeros), one and three mask words per row, row blocks that are zero
/// throughout, and every epilogue the training loop fuses.
fn check_zero_skipping<T: Real>() {
    use oxlearn_core::mlp::tiled::{
        Epilogue, LeftOperand as Left, Mat, RightOperand as Right, nonzero_masks, product,
    };
    let mut rng = Pcg64::seed_from_u64(17);
    for (m, n, kk) in [
        (100, 256, 64),
        (37, 70, 130),
        (13, 64, 1),
        (31, 129, 100),
        (6, 40, 200),
        (100, 16, 64),
    ] {
        let src_rows = m.max(kk) + 9;
        let wide = m.max(kk) + 3;
        // Element (row, col) is zero more often for low columns and for rows in blocks.
        let adata: Vec<T> = data::<T>(&mut rng, src_rows * wide)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let (row, col) = (i / wide, i % wide);
                let p = 0.9 - 0.8 * (col as f64 / wide as f64);
                if (row / 7) % 5 == 0 || rng.random_bool(p) {
                    if rng.random_bool(0.5) {
                        T::zero()
                    } else {
                        -T::zero()
                    }
                } else {
                    v
                }
            })
            .collect();
        let masks = nonzero_masks(&adata, wide);
        assert_eq!(masks.len(), src_rows * wide.div_ceil(64));
        let bdata = data::<T>(&mut rng, src_rows * wide);
        let bias = data::<T>(&mut rng, n);
        let act: Vec<T> = data::<T>(&mut rng, m * n)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { T::zero() } else { v.abs() })
            .collect();
        let idx: Vec<usize> = (0..src_rows).map(|i| (i * 7 + 2) % src_rows).collect();
        for level in SimdLevel::available() {
            let mut panel = oxlearn_core::mlp::buf::Buf::default();
            for picked in [false, true] {
                let plain = if picked {
                    Mat::picked(&adata, wide, &idx)
                } else {
                    Mat::rows(&adata, wide)
                };
                for left_rows in [true, false] {
                    for e in 0..3 {
                        let mut out = [vec![T::nan(); m * n], vec![T::nan(); m * n]];
                        let mut sums = [vec![T::nan(); n], vec![T::nan(); n]];
                        for (s, (c, colsum)) in out.iter_mut().zip(sums.iter_mut()).enumerate() {
                            let mat = if s == 0 {
                                plain
                            } else {
                                plain.with_nonzero(&masks)
                            };
                            let a = if left_rows {
                                Left::Rows(mat)
                            } else {
                                Left::Cols(mat)
                            };
                            let b = Right::Rows(Mat::rows(&bdata, wide));
                            let epi = match e {
                                0 => Epilogue::Store,
                                1 => Epilogue::BiasAct(&bias, Activation::Relu),
                                _ => Epilogue::Deriv {
                                    f: Activation::Relu,
                                    act: &act,
                                    colsum,
                                },
                            };
                            product(level, m, n, kk, a, b, c, n, epi, &mut panel);
                        }
                        let what = format!("{level:?} {m}x{n}x{kk} rows={left_rows} e={e}");
                        assert_eq!(bits(&out[0]), bits(&out[1]), "{what}");
                        if e == 2 {
                            assert_eq!(bits(&sums[0]), bits(&sums[1]), "{what} colsum");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn zero_skipping_products_keep_the_bits_f64() {
    check_zero_skipping::<f64>();
}

#[test]
fn zero_skipping_products_keep_the_bits_f32() {
    check_zero_skipping::<f32>();
}

/// `forward_predict` skips the zeros of a sparse input (see `mlp::tiled::skips_zeros`): its
/// output has the bits of the training workspace's forward pass, which takes every term, and
/// with an infinite first-layer weight both take every term (`0 * inf` is NaN).
#[test]
fn predict_on_sparse_inputs_keeps_the_bits() {
    use oxlearn_core::mlp::Workspace;
    use oxlearn_core::mlp::{Loss, NetSpec, OutActivation};
    let mut rng = Pcg64::seed_from_u64(21);
    let units = [70, 64, 5];
    let n = 300;
    let x: Vec<f64> = data::<f64>(&mut rng, n * units[0])
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if (i % units[0]) < 30 || rng.random_bool(0.3) {
                0.0
            } else {
                v
            }
        })
        .collect();
    let x = ndarray::Array2::from_shape_vec((n, units[0]), x).unwrap();
    let mut w1 = ndarray::Array2::from_shape_vec((70, 64), data::<f64>(&mut rng, 70 * 64)).unwrap();
    let b1 = ndarray::Array1::from(data::<f64>(&mut rng, 64));
    let w2 = ndarray::Array2::from_shape_vec((64, 5), data::<f64>(&mut rng, 320)).unwrap();
    let b2 = ndarray::Array1::from(data::<f64>(&mut rng, 5));
    let spec = NetSpec::new(
        units.to_vec(),
        Activation::Relu,
        OutActivation::Softmax,
        Loss::LogLoss,
    )
    .unwrap();
    for infinite in [false, true] {
        if infinite {
            w1[[3, 7]] = f64::INFINITY;
        }
        let got = forward_predict(
            x.view(),
            &[w1.view(), w2.view()],
            &[b1.view(), b2.view()],
            Activation::Relu,
            OutActivation::Softmax,
            Threads::Pool(2),
        )
        .unwrap();
        let mut ws = Workspace::<f64>::forward_only(&units, n).unwrap();
        ws.forward(
            x.view(),
            &[w1.view(), w2.view()],
            &[b1.as_slice().unwrap(), b2.as_slice().unwrap()],
            &spec,
            Threads::Single,
        );
        let want = ws.output(n);
        assert_eq!(
            bits(got.as_slice().unwrap()),
            bits(want),
            "infinite={infinite}"
        );
        assert_eq!(got.iter().any(|v| v.is_nan()), infinite);
    }
}
