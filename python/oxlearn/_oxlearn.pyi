# Hand-written stubs for the compiled module oxlearn._oxlearn (checked by mypy.stubtest in CI).
from collections.abc import Callable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str

def build_info() -> dict[str, Any]: ...

# --- neighbours (rust/oxlearn-py/src/neighbors.rs) -------------------------------------------
# Contract between the Rust kernels and python/oxlearn/neighbors. `query` and `train` are 2-D
# C-contiguous arrays of ONE float dtype (both float32 or both float64; TypeError otherwise).
# `metric` is an effective_metric_ name ("euclidean", "l2", "sqeuclidean", "manhattan",
# "cityblock", "l1", "chebyshev", "minkowski", "cosine", "precomputed"); `p` (>= 1) and the
# optional float64 weights `w` are used by "minkowski". `n_jobs` follows scikit-learn (None or
# -1: every core). Results never depend on `n_jobs`. Errors raise ValueError; an allocation
# that fails (results, working memory) raises MemoryError, as in every function here.

def kneighbors(
    query: npt.NDArray[Any],
    train: npt.NDArray[Any],
    ks: list[int],
    metric: str,
    p: float,
    w: npt.NDArray[np.float64] | None,
    n_jobs: int | None,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]]:
    """For each k of ``ks``: (distances (n_queries, k) float64, indices (n_queries, k)).

    Neighbours and their order, ties included, are scikit-learn's brute-force ``ArgKmin``
    (one thread) for that k alone, all from one pass over ``train``.
    """

def radius_neighbors(
    query: npt.NDArray[Any],
    train: npt.NDArray[Any],
    radius: float,
    metric: str,
    p: float,
    w: npt.NDArray[np.float64] | None,
    sort_results: bool,
    n_jobs: int | None,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Training rows within ``radius`` (inclusive), as CSR (indptr, indices, distances)."""

def knn_classify(
    neigh_ind: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    n_classes: list[int],
    weights: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.int64]:
    """Voted class indices (n_queries, n_outputs) from encoded labels y (n_train, n_outputs)."""

def knn_classify_proba(
    neigh_ind: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    n_classes: list[int],
    weights: npt.NDArray[np.float64] | None,
) -> list[npt.NDArray[np.float64]]:
    """Class probabilities, one (n_queries, n_classes[o]) array per output."""

def knn_regress(
    neigh_ind: npt.NDArray[np.int64],
    y: npt.NDArray[Any],
    weights: npt.NDArray[np.float64] | None,
) -> npt.NDArray[Any]:
    """Mean (or weighted mean) of the neighbours' targets, (n_queries, n_outputs), y's dtype."""

# --- end neighbours ---------------------------------------------------------------------------

# --- MLP (rust/oxlearn-py/src/mlp.rs) ---------------------------------------------------------
# Contract between the Rust kernels and python/oxlearn/neural_network. All arrays are
# C-contiguous and of ONE float dtype per call (float32 or float64, the training dtype); a
# TypeError is raised otherwise. Shapes: X (n, d); Y (n, n_outputs) (binarized labels or
# targets); sample_weight (n,) or None; coefs[i] (units[i], units[i+1]); intercepts[i]
# (units[i+1],). activation in {"identity","logistic","tanh","relu"}; out_activation in
# {"identity","logistic","softmax","exp"}; loss in
# {"squared_error","log_loss","binary_log_loss","poisson"} (scikit-learn's LOSS_FUNCTIONS,
# with its eps clipping, plus the L2 term 0.5*alpha*sum(w**2)/sum(sample_weight)).
# Arrays a call writes must share no memory with any other array argument and be writeable
# (ValueError or TypeError otherwise, never a panic); the estimators copy any that do.
# n_threads >= 1 is an exact thread count. Results are bit-identical for any n_threads.

def mlp_forward(
    X: npt.NDArray[Any],
    coefs: list[npt.NDArray[Any]],
    intercepts: list[npt.NDArray[Any]],
    activation: str,
    out_activation: str,
    n_threads: int,
) -> npt.NDArray[Any]:
    """Output-layer activations, shape (n, n_outputs), in X's dtype (_forward_pass_fast)."""

def mlp_loss_grad(
    packed: npt.NDArray[Any],
    X: npt.NDArray[Any],
    Y: npt.NDArray[Any],
    sample_weight: npt.NDArray[Any] | None,
    layer_units: list[int],
    activation: str,
    out_activation: str,
    loss: str,
    alpha: float,
    n_threads: int,
) -> tuple[float, npt.NDArray[Any]]:
    """Loss and packed gradient for L-BFGS (scikit-learn's _loss_grad_lbfgs).

    ``packed`` is scikit-learn's _pack layout: every coef raveled (C order), then every
    intercept. The gradient has the same layout and dtype as ``packed``.
    """

@final
class StochasticConfig:
    """The hyper-parameters of one ``mlp_fit_stochastic`` call, checked when built, frozen.

    ``layer_units`` is the network (inputs, hidden layers, outputs); ``activation``,
    ``out_activation`` and ``loss`` name scikit-learn's functions ("binary_log_loss" for a
    logistic output with log loss); ``solver`` is "sgd" or "adam" with its settings
    (``learning_rate`` is the SGD schedule: "constant", "invscaling" or "adaptive").
    ``batch_size`` is already clipped to [1, n]. Each epoch draws its permutation from a PCG
    generator seeded with ``seed`` (when ``shuffle``). ``incremental`` runs one epoch
    (partial_fit). ``score_kind`` is given iff early stopping is on ("accuracy": exact match
    of the binarized prediction, argmax for softmax, > 0.5 for logistic, as LabelBinarizer
    does; "r2": r2_score with uniform_average over outputs). ``n_iter_no_change`` may be as
    large as 2**62 (np.inf). ``publish_weights`` writes the weights into ``params`` before
    each ``on_epoch`` call (for callbacks that evaluate the model), not only at the end.
    """

    def __new__(
        cls,
        *,
        layer_units: list[int],
        activation: str,
        out_activation: str,
        loss: str,
        solver: str,
        alpha: float,
        batch_size: int,
        learning_rate: str,
        learning_rate_init: float,
        power_t: float,
        momentum: float,
        nesterovs_momentum: bool,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        max_iter: int,
        shuffle: bool,
        seed: int,
        tol: float,
        n_iter_no_change: int,
        incremental: bool,
        score_kind: str | None,
        n_threads: int,
        publish_weights: bool,
    ) -> StochasticConfig: ...

@final
class TrainingState:
    """What one ``mlp_fit_stochastic`` call carries over to the next, frozen."""

    t: int
    adam_t: int
    learning_rate: float
    best_loss: float
    best_validation_score: float
    no_improvement_count: int

    def __new__(
        cls,
        *,
        t: int,
        adam_t: int,
        learning_rate: float,
        best_loss: float,
        best_validation_score: float,
        no_improvement_count: int,
    ) -> TrainingState: ...

@final
class StochasticResult:
    """What one ``mlp_fit_stochastic`` call did, frozen.

    ``stop_reason`` is one of "converged", "max_iter", "incremental", "requested" (``on_epoch``
    returned True) or "interrupted" (Ctrl-C); ``stop_message`` is scikit-learn's "... did not
    improve more than tol=..." text with the optimizer's suffix, or "".
    """

    n_iter: int
    loss_curve: list[float]
    validation_scores: list[float]
    stop_reason: str
    stop_message: str
    state: TrainingState

def mlp_fit_stochastic(
    X: npt.NDArray[Any],
    Y: npt.NDArray[Any],
    sample_weight: npt.NDArray[Any] | None,
    params: tuple[list[npt.NDArray[Any]], list[npt.NDArray[Any]]],
    moments: tuple[list[npt.NDArray[Any]], list[npt.NDArray[Any]]],
    best: tuple[list[npt.NDArray[Any]], list[npt.NDArray[Any]]],
    validation: tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any] | None] | None,
    config: StochasticConfig,
    state: TrainingState,
    on_epoch: Callable[[int, float, float | None, bool], Any] | None = None,
) -> StochasticResult:
    """scikit-learn's _fit_stochastic loop, whole, with the GIL released.

    Trains in place: ``params`` = (coefs, intercepts), ``moments`` = the optimizer state in
    _pack order, coefs then intercepts (SGD velocities and an empty second list; Adam first
    and second moments), ``best`` = (coefs, intercepts) copied into whenever the validation
    score improves (early stopping only). ``validation`` = (X_val, Y_val, sample_weight_val)
    is given iff ``config.score_kind`` is. The epoch loss is sum(batch_loss * batch_len) / n
    as scikit-learn computes it. After each epoch pending signals are seen (Ctrl-C stops
    training after that epoch) and, when given, ``on_epoch(n_iter, loss,
    validation_score_or_None, last)`` is called from the training thread with the GIL taken
    for that call (``last``: the call ends after this epoch anyway); a truthy return stops
    training after that epoch ("requested").
    A non-finite loss or non-finite weights do NOT raise: scikit-learn's loop keeps going
    (NaN comparisons reset no_improvement_count), and with early stopping the finite best
    weights are restored afterwards (sklearn's test_mlp_diverging_loss expects
    validation_scores_[-1] to be NaN and no error). A diverged fit therefore runs to
    max_iter (stop_reason "max_iter", so the ConvergenceWarning comes as in scikit-learn);
    Python then raises scikit-learn's "Solver produced non-finite parameter weights..."
    unless early stopping restored finite weights.
    If ``on_epoch`` raises, the exception propagates after the weights of the finished
    epochs have been written back (a KeyboardInterrupt there is reported as interrupted).
    """

# --- end MLP ----------------------------------------------------------------------------------
