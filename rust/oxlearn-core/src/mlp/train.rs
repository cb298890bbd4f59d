//! scikit-learn's `_fit_stochastic` loop, whole: per-epoch shuffle, mini-batches, the
//! optimizer, epoch loss, `_update_no_improvement_count`, the stopping rules and early
//! stopping scoring. One call trains; an epoch-end hook lets the caller report progress and
//! ask for a stop (Ctrl-C) without this crate knowing about Python.

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64;

use super::buf::Buf;
use super::optim::Optimizer;
use super::optim::PAR_MIN;
use super::partition::{chunk_len, max_chunk_rows};
use super::score::ScoreKind;
use super::tiled::{self, try_nonzero_masks};
use super::workspace::Workspace;
use super::{NetSpec, OutActivation};
use crate::error::{CoreError, Result, try_collect, try_filled, try_vec};
use crate::exec::Threads;
use crate::exec::{Exec, with_team};
use crate::real::Real;

/// What the epoch-end hook asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochControl {
    /// Keep training.
    Continue,
    /// Stop after this epoch because the caller asked to (a callback returned True): a
    /// normal end, `StopReason::Requested`.
    Stop,
    /// Stop after this epoch (Ctrl-C, or the callback failed): `StopReason::Interrupted`.
    Interrupt,
}

/// What the epoch-end hook is told about the epoch that just ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochEnd {
    /// Epochs run by this call so far (1 after the first).
    pub n_iter: usize,
    /// The epoch's mean training loss.
    pub loss: f64,
    /// The validation score (early stopping only).
    pub validation_score: Option<f64>,
    /// This call ends after this epoch whatever the hook answers: `max_iter` epochs ran,
    /// `partial_fit`'s one epoch ran, or the stopping rule fires with an optimizer that
    /// stops on it. A caller that opens a task per epoch opens no next one then.
    pub last: bool,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The `tol`/`n_iter_no_change` rule fired and the optimizer agreed to stop.
    Converged,
    /// `max_iter` epochs ran.
    MaxIter,
    /// One epoch of `partial_fit`.
    Incremental,
    /// The hook asked to stop (`EpochControl::Stop`).
    Requested,
    /// The hook interrupted training (`EpochControl::Interrupt`).
    Interrupted,
}

impl StopReason {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::MaxIter => "max_iter",
            Self::Incremental => "incremental",
            Self::Requested => "requested",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Hyper-parameters of one `_fit_stochastic` call.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The network.
    pub spec: NetSpec,
    /// L2 penalty.
    pub alpha: f64,
    /// Mini-batch size (clipped to `[1, n]`).
    pub batch_size: usize,
    /// Maximum number of epochs (`max_iter`).
    pub max_iter: usize,
    /// Shuffle the sample order every epoch.
    pub shuffle: bool,
    /// Seed of the PCG generator drawing the permutations.
    pub seed: u64,
    /// `tol`.
    pub tol: f64,
    /// `n_iter_no_change`.
    pub n_iter_no_change: usize,
    /// One epoch only (`partial_fit`).
    pub incremental: bool,
    /// The validation score when early stopping is on.
    pub score_kind: Option<ScoreKind>,
    /// Copy the current weights into the caller's arrays before each epoch-end hook, so
    /// the hook can read them (a callback that evaluates the model each epoch). Off, they
    /// are written once, when the call ends.
    pub publish_weights: bool,
}

/// State carried between calls (scikit-learn keeps it on the estimator and the optimizer).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// The optimizer, with its learning rate and Adam step count.
    pub optimizer: Optimizer,
    /// `t_`: samples seen.
    pub t: u64,
    /// `best_loss_` (`inf` at the start; unused with early stopping).
    pub best_loss: f64,
    /// `best_validation_score_` (`-inf` at the start; early stopping only).
    pub best_validation_score: f64,
    /// `_no_improvement_count`.
    pub no_improvement_count: usize,
}

/// What one call did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Epochs run by this call.
    pub n_iter: usize,
    /// Epoch losses of this call.
    pub loss_curve: Vec<f64>,
    /// Validation scores of this call (early stopping).
    pub validation_scores: Vec<f64>,
    /// Why the loop ended.
    pub stop_reason: StopReason,
    /// scikit-learn's stopping text with the optimizer's suffix, or empty.
    pub stop_message: String,
}

/// The data of one call: training rows and the optional validation set.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a, T> {
    /// Training inputs `(n, units[0])`, row-major contiguous.
    pub x: &'a [T],
    /// Training targets `(n, units[-1])`, row-major contiguous.
    pub y: &'a [T],
    /// Per-row weights.
    pub sw: Option<&'a [T]>,
    /// Validation inputs, targets and weights (early stopping).
    pub val: Option<ValSet<'a, T>>,
}

/// Validation inputs, targets and optional weights.
pub type ValSet<'a, T> = (&'a [T], &'a [T], Option<&'a [T]>);

/// Read-only coef views and intercept slices of parameters stored as `_pack`-ordered slices.
fn param_views<'p, T>(
    params: &'p [&mut [T]],
    units: &[usize],
) -> (Vec<ArrayView2<'p, T>>, Vec<&'p [T]>) {
    let layers = units.len() - 1;
    let (coef_sl, int_sl) = params.split_at(layers);
    let coefs = coef_sl
        .iter()
        .zip(units.windows(2))
        .map(|(p, w)| {
            ArrayView2::from_shape((w[0], w[1]), &p[..])
                .expect("coef slice sized units[i] * units[i + 1]")
        })
        .collect();
    let ints = int_sl.iter().map(|p| &p[..]).collect();
    (coefs, ints)
}

/// Parameter-shaped lists of flat slices, in `_pack` order (coefs, then intercepts).
pub type SliceList<'s, 'a, T> = &'s mut [&'a mut [T]];

fn check_list<T>(name: &str, list: &[&mut [T]], sizes: &[usize]) -> Result<()> {
    if list.len() != sizes.len() {
        return Err(CoreError::shape(
            format!("number of {name} arrays"),
            sizes.len(),
            list.len(),
        ));
    }
    for (i, (a, &s)) in list.iter().zip(sizes).enumerate() {
        if a.len() != s {
            return Err(CoreError::shape(format!("{name}[{i}] size"), s, a.len()));
        }
    }
    Ok(())
}

fn check_rows<T>(name: &str, data: &[T], width: usize) -> Result<usize> {
    if width == 0 || !data.len().is_multiple_of(width) {
        return Err(CoreError::invalid(
            name,
            format!(
                "length {} is not a multiple of the width {width}",
                data.len()
            ),
        ));
    }
    Ok(data.len() / width)
}

/// Runs scikit-learn's `_fit_stochastic` (without the train/validation split, which the
/// caller does). Trains `params` in place, with `first`/`second` the optimizer state lists
/// and `best` receiving the parameters at each new best validation score.
///
/// `hook` runs after each epoch's bookkeeping (after `_update_no_improvement_count` and
/// `iteration_ends`, before the stopping rule), at most once per epoch; see [`EpochEnd`]
/// for what it is told and [`EpochControl`] for what it may answer.
///
/// A non-finite loss or non-finite weights never raise or stop the loop: scikit-learn's loop
/// keeps going (a NaN loss never counts as "no improvement", so a diverged fit runs to
/// `max_iter` and gets its ConvergenceWarning), and the caller raises its "non-finite
/// parameter weights" error afterwards when early stopping did not restore finite weights.
///
/// The whole loop runs inside one [`Threads::install`], its parallel sections on one
/// [`crate::exec::Team`] whose workers live for this call only; results are bit-identical
/// for any thread count.
pub fn fit_stochastic<T: Real>(
    data: TrainData<'_, T>,
    params: SliceList<'_, '_, T>,
    first: SliceList<'_, '_, T>,
    second: SliceList<'_, '_, T>,
    best: SliceList<'_, '_, T>,
    cfg: &TrainConfig,
    state: &mut TrainState,
    threads: Threads,
    hook: &mut (dyn FnMut(&EpochEnd) -> EpochControl + Send),
) -> Result<TrainSummary> {
    let spec = &cfg.spec;
    let units = &spec.units;
    let layers = spec.n_weight_layers();
    let d = units[0];
    let k = units[layers];
    let sizes: Vec<usize> = units
        .windows(2)
        .map(|w| w[0] * w[1])
        .chain(units[1..].iter().copied())
        .collect();
    check_list("params", params, &sizes)?;
    check_list("opt_first", first, &sizes)?;
    if state.optimizer.uses_second_moment() {
        check_list("opt_second", second, &sizes)?;
    } else if !second.is_empty() {
        return Err(CoreError::invalid("opt_second", "must be empty for sgd"));
    }
    let n = check_rows("X", data.x, d)?;
    if n == 0 {
        return Err(CoreError::EmptyInput("X".to_owned()));
    }
    let ny = check_rows("Y", data.y, k)?;
    if ny != n {
        return Err(CoreError::shape("Y rows (X rows)", n, ny));
    }
    if let Some(w) = data.sw
        && w.len() != n
    {
        return Err(CoreError::shape(
            "sample_weight length (X rows)",
            n,
            w.len(),
        ));
    }
    let val = match (data.val, cfg.score_kind) {
        (Some((xv, yv, swv)), Some(kind)) => {
            let nv = check_rows("X_val", xv, d)?;
            if nv == 0 {
                return Err(CoreError::EmptyInput("X_val".to_owned()));
            }
            let nyv = check_rows("Y_val", yv, k)?;
            if nyv != nv {
                return Err(CoreError::shape("Y_val rows (X_val rows)", nv, nyv));
            }
            if let Some(w) = swv
                && w.len() != nv
            {
                return Err(CoreError::shape("sample_weight_val length", nv, w.len()));
            }
            if kind == ScoreKind::Accuracy
                && !matches!(
                    spec.out_activation,
                    OutActivation::Softmax | OutActivation::Logistic
                )
            {
                return Err(CoreError::invalid(
                    "score_kind",
                    "accuracy needs a softmax or logistic output",
                ));
            }
            check_list("best", best, &sizes)?;
            Some((xv, yv, swv, nv, kind))
        }
        (None, None) => None,
        _ => {
            return Err(CoreError::invalid(
                "X_val",
                "the validation set and score_kind go together (early stopping)",
            ));
        }
    };
    if cfg.batch_size == 0 {
        return Err(CoreError::invalid("batch_size", "must be at least 1"));
    }
    let batch = cfg.batch_size.min(n);

    // A team only pays where a step has a parallel section: a batch of several chunks or an
    // update big enough to split. A small net runs on one thread, and workers would only spin.
    let sections = chunk_len(batch, max_chunk_rows(units)) < batch || spec.n_params() >= PAR_MIN;
    let team_threads = if sections { threads } else { Threads::Single };
    // The parameters and Adam's moments are read and written by the register tiles and the
    // update on every batch; the caller's arrays (NumPy's) may start anywhere in a cache
    // line, so the loop runs on aligned copies, written back however it ends.
    //
    // With inputs that are zero often enough (see [`Sparse`]), the loop trains on a copy of
    // the inputs whose features are reordered, and the first layer's weights (and moments)
    // have their rows in that order: the same network, whose products skip more zeros.
    let sparse = if tiled::applies(units) && tiled::skips_zeros::<T>(units[1]) {
        Sparse::of(data.x, d)?
    } else {
        None
    };
    let width = units[1];
    let [own_p, own_f, own_s] = [&*params, &*first, &*second].map(|list| {
        list.iter()
            .enumerate()
            .map(|(i, a)| {
                let mut b = Buf::try_filled(a.len(), T::zero(), "the MLP's working parameters")?;
                match &sparse {
                    Some(sp) if i == 0 => sp.rows_in(a, &mut b, width),
                    _ => b.copy_from_slice(a),
                }
                Ok(b)
            })
            .collect::<Result<Vec<_>>>()
    });
    let mut own = [own_p?, own_f?, own_s?];
    let x_train = sparse.as_ref().map_or(data.x, |sp| &sp.x[..]);
    let x_val = match (&sparse, val) {
        (Some(sp), Some((xv, ..))) => Some(sp.reorder(xv)?),
        _ => None,
    };
    let (out_params, out_first, out_second) = (params, first, second);
    let [own_params, own_first, own_second] = &mut own;
    let mut lists = [own_params, own_first, own_second]
        .map(|l| l.iter_mut().map(|b| &mut b[..]).collect::<Vec<&mut [T]>>());
    let [params, first, second] = &mut lists;
    let result = threads.install(|| {
        with_team(team_threads, |team| {
            let exec = team.map_or(Exec::Rayon(threads), Exec::Team);
            let mut ws = Workspace::<T>::new(units, batch)?;
            let mut val_ws = val
                .map(|(_, _, _, nv, _)| Workspace::<T>::forward_only(units, nv))
                .transpose()?;
            let mut idx: Vec<usize> = try_collect(n, 0..n, "the MLP's shuffled sample order")?;
            // The coefficients' sum of squares after the last update (the L2 penalty of the
            // next batch), when the update computed it.
            let mut penalty = None;
            let mut rng = Pcg64::seed_from_u64(cfg.seed);
            let mut summary = TrainSummary {
                n_iter: 0,
                loss_curve: Vec::new(),
                validation_scores: Vec::new(),
                stop_reason: StopReason::MaxIter,
                stop_message: String::new(),
            };
            for _ in 0..cfg.max_iter {
                if cfg.shuffle {
                    idx.shuffle(&mut rng);
                }
                let mut accumulated = 0.0_f64;
                let mut start = 0;
                while start < n {
                    let end = (start + batch).min(n);
                    let rows = end - start;
                    let batch_loss = {
                        let (coefs, ints) = param_views(params, units);
                        // Each chunk gathers its own rows: the copy runs in parallel too.
                        let rows_idx = &idx[start..end];
                        ws.backprop_deferred_on(
                            x_train,
                            data.y,
                            data.sw,
                            rows_idx,
                            &coefs,
                            &ints,
                            spec,
                            cfg.alpha,
                            exec,
                            penalty,
                            sparse.as_ref().map(|sp| &sp.masks[..]),
                        )
                    };
                    accumulated += batch_loss * rows as f64;
                    penalty =
                        ws.update_params_on(&mut state.optimizer, params, first, second, exec);
                    start = end;
                }
                summary.n_iter += 1;
                let loss = accumulated / n as f64;
                state.t += n as u64;
                summary.loss_curve.push(loss);

                let mut val_score = None;
                if let (Some((xv, yv, swv, nv, kind)), Some(vws)) = (val, val_ws.as_mut()) {
                    let score = {
                        let (coefs, ints) = param_views(params, units);
                        let xv = x_val.as_deref().unwrap_or(xv);
                        let xval = ArrayView2::from_shape((nv, d), xv)
                            .expect("validation inputs hold n_val * n_features values");
                        vws.forward_on(xval, &coefs, &ints, spec, exec);
                        kind.score(
                            vws.output(nv),
                            yv,
                            k,
                            swv,
                            spec.out_activation == OutActivation::Softmax,
                        )
                    };
                    summary.validation_scores.push(score);
                    val_score = Some(score);
                    if score < state.best_validation_score + cfg.tol {
                        state.no_improvement_count += 1;
                    } else {
                        state.no_improvement_count = 0;
                    }
                    if score > state.best_validation_score {
                        state.best_validation_score = score;
                        write_back(best, params, sparse.as_ref(), width);
                    }
                } else {
                    if loss > state.best_loss - cfg.tol {
                        state.no_improvement_count += 1;
                    } else {
                        state.no_improvement_count = 0;
                    }
                    if loss < state.best_loss {
                        state.best_loss = loss;
                    }
                }

                state.optimizer.iteration_ends(state.t);

                if cfg.publish_weights {
                    write_back(out_params, params, sparse.as_ref(), width);
                }
                let converging = state.no_improvement_count > cfg.n_iter_no_change
                    && state.optimizer.stops_when_triggered();
                let end = EpochEnd {
                    n_iter: summary.n_iter,
                    loss,
                    validation_score: val_score,
                    last: summary.n_iter == cfg.max_iter || cfg.incremental || converging,
                };
                match hook(&end) {
                    EpochControl::Continue => {}
                    EpochControl::Stop => {
                        summary.stop_reason = StopReason::Requested;
                        return Ok(summary);
                    }
                    EpochControl::Interrupt => {
                        summary.stop_reason = StopReason::Interrupted;
                        return Ok(summary);
                    }
                }
                if state.no_improvement_count > cfg.n_iter_no_change {
                    let msg = if val.is_some() {
                        format!(
                            "Validation score did not improve more than tol={:.6} for {} \
                         consecutive epochs.",
                            cfg.tol, cfg.n_iter_no_change
                        )
                    } else {
                        format!(
                            "Training loss did not improve more than tol={:.6} for {} \
                         consecutive epochs.",
                            cfg.tol, cfg.n_iter_no_change
                        )
                    };
                    let (stop, text) = state.optimizer.trigger_stopping(&msg);
                    if stop {
                        summary.stop_message = text;
                        summary.stop_reason = StopReason::Converged;
                        return Ok(summary);
                    }
                    state.no_improvement_count = 0;
                }
                if cfg.incremental {
                    summary.stop_reason = StopReason::Incremental;
                    return Ok(summary);
                }
            }
            summary.stop_reason = StopReason::MaxIter;
            Ok(summary)
        })
    });
    let [own_params, own_first, own_second] = &own;
    write_back(out_params, own_params, sparse.as_ref(), width);
    write_back(out_first, own_first, sparse.as_ref(), width);
    write_back(out_second, own_second, sparse.as_ref(), width);
    result?
}

/// Copies the loop's arrays into the caller's (the first layer's weights in the caller's
/// feature order): at the end, and into `best` at each new best validation score.
fn write_back<T: Real, S: std::ops::Deref<Target = [T]>>(
    dst: &mut [&mut [T]],
    src: &[S],
    sparse: Option<&Sparse<T>>,
    width: usize,
) {
    for (i, (d, s)) in dst.iter_mut().zip(src).enumerate() {
        match sparse {
            Some(sp) if i == 0 => sp.rows_out(s, d, width),
            _ => d.copy_from_slice(s),
        }
    }
}

/// Training inputs with many zeros, prepared so that the first layer's register tiles skip
/// them (see [`super::tiled::Mat::nonzero`]).
///
/// The features are reordered by how often they are zero, most often first, so that the
/// rows of a tile of the weight gradient `X.T @ delta` (a few consecutive features) tend to
/// be zero in the same samples, and the tile skips those samples. On the digits, whose
/// border pixels are mostly blank, a 6-feature tile skips 27% of the samples in this order
/// and 1% in the pixels' own; the forward product's tiles (6 or 12 samples) skip a feature
/// wherever all their samples have a zero there (22-26%). The reordering changes the order
/// of the sums over the features in the forward product and of the L2 penalty's sum, hence
/// their last bits, never the model's meaning; `coefs_` come out in the caller's order.
#[derive(Debug)]
struct Sparse<T> {
    /// `order[q]`: the caller's feature at position `q`.
    order: Vec<usize>,
    /// The inputs with their features in that order.
    x: Vec<T>,
    /// [`tiled::nonzero_masks`] of `x`.
    masks: Vec<u64>,
}

impl<T: Real> Sparse<T> {
    /// The prepared inputs when at least a quarter of `x`'s values are zero (and there are
    /// two features or more); `None` otherwise, and the loop runs on `x` as it is.
    fn of(x: &[T], d: usize) -> Result<Option<Self>> {
        if d < 2 {
            return Ok(None);
        }
        let mut zeros = try_filled(d, 0_usize, "the MLP's per-feature zero counts")?;
        for row in x.chunks_exact(d) {
            for (z, &v) in zeros.iter_mut().zip(row) {
                *z += usize::from(v == T::zero());
            }
        }
        if !tiled::mostly_zero(zeros.iter().sum(), x.len()) {
            return Ok(None);
        }
        let mut order: Vec<usize> = try_collect(d, 0..d, "the MLP's feature order")?;
        // Stable: features zero equally often keep their order.
        order.sort_by_key(|&f| std::cmp::Reverse(zeros[f]));
        let mut sp = Self {
            order,
            x: Vec::new(),
            masks: Vec::new(),
        };
        sp.x = sp.reorder(x)?;
        sp.masks = try_nonzero_masks(&sp.x, d)?;
        Ok(Some(sp))
    }

    /// Rows of `x` (`order.len()` values wide) with their values in feature order.
    fn reorder(&self, x: &[T]) -> Result<Vec<T>> {
        let d = self.order.len();
        let mut out = try_vec(x.len(), "the MLP's reordered inputs")?;
        for row in x.chunks_exact(d) {
            out.extend(self.order.iter().map(|&f| row[f]));
        }
        Ok(out)
    }

    /// `dst` row `q` = `src` row `order[q]` (`width` values each): first-layer weights into
    /// the loop's order.
    fn rows_in(&self, src: &[T], dst: &mut [T], width: usize) {
        for (q, &f) in self.order.iter().enumerate() {
            dst[q * width..(q + 1) * width].copy_from_slice(&src[f * width..(f + 1) * width]);
        }
    }

    /// `dst` row `order[q]` = `src` row `q`: first-layer weights back into the caller's
    /// order.
    fn rows_out(&self, src: &[T], dst: &mut [T], width: usize) {
        for (q, &f) in self.order.iter().enumerate() {
            dst[f * width..(f + 1) * width].copy_from_slice(&src[q * width..(q + 1) * width]);
        }
    }
}
