"""Multi-layer perceptrons whose training and inference run in Rust.

``MLPClassifier`` and ``MLPRegressor`` subclass scikit-learn's (same parameters, validation,
initialisation, fitted attributes, warnings and errors; ``isinstance`` checks against
scikit-learn's classes hold) and override the hooks where the numerical work happens; it
goes to the compiled module in three calls: ``mlp_forward`` (prediction), ``mlp_loss_grad``
(the loss and gradient that scipy's L-BFGS-B drives) and ``mlp_fit_stochastic`` (the whole
SGD/Adam training loop, one call per ``fit``/``partial_fit``).
"""

# Parts of this module (the validation and bookkeeping logic) follow scikit-learn's
# implementation: Copyright (c) the scikit-learn developers, BSD-3-Clause.

from __future__ import annotations

import functools
import itertools
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import validate_data

from oxlearn import _oxlearn
from oxlearn._plain_inputs import fitted_label_binarizer, plain_float_matrix, plain_int_labels
from oxlearn._sklearn_compat import (
    CallbackSupportMixin,
    SklearnMLPClassifier,
    SklearnMLPRegressor,
    StrOptions,
    _check_optimize_result,
    _check_sample_weight,
    available_if,
)
from oxlearn._threads import default_threads
from oxlearn.neural_network._callbacks import (
    EpochTasks,
    IterationTasks,
    close_fit_task,
    open_fit_task,
)

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ["sgd", "adam"]

# ``n_iter_no_change=np.inf`` never stops; the kernel takes an integer, and no count of
# epochs reaches this one.
_NEVER = 2**62

FloatArray = npt.NDArray[np.floating[Any]]


def _pack(coefs: Sequence[FloatArray], intercepts: Sequence[FloatArray]) -> FloatArray:
    """Pack the parameters into a single vector (scikit-learn's ``_pack``)."""
    return np.hstack([layer.ravel() for layer in [*coefs, *intercepts]])


def _packed_layout(
    layer_units: Sequence[int],
) -> tuple[list[tuple[int, int, tuple[int, int]]], list[tuple[int, int]]]:
    """Where each layer's coefficients and intercepts sit in the packed parameter vector.

    Returns ``(coef_indptr, intercept_indptr)`` as scikit-learn's ``_fit_lbfgs`` stores them:
    ``(start, end, (fan_in, fan_out))`` per coefficient matrix, then ``(start, end)`` per
    intercept vector, all coefficients first.
    """
    coef_indptr: list[tuple[int, int, tuple[int, int]]] = []
    intercept_indptr: list[tuple[int, int]] = []
    start = 0
    for fan_in, fan_out in itertools.pairwise(layer_units):
        coef_indptr.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for fan_out in layer_units[1:]:
        intercept_indptr.append((start, start + fan_out))
        start += fan_out
    return coef_indptr, intercept_indptr


def _as_float(a: Any, dtype: np.dtype[Any]) -> FloatArray:
    """C-contiguous array of ``dtype``; no copy when ``a`` already is one."""
    return np.ascontiguousarray(a, dtype=dtype)


def _densify(X: Any) -> Any:
    """Sparse input is densified: the kernels run dense GEMMs."""
    if sp.issparse(X):
        return X.toarray()
    return X


class _StochasticOptimizer:
    """State of scikit-learn's ``SGDOptimizer``/``AdamOptimizer``, updated by Rust.

    Kept on the estimator as ``_optimizer`` between ``partial_fit`` calls and recreated
    by ``fit``, as scikit-learn does. ``first`` holds SGD's velocities or Adam's first
    moments and ``second`` Adam's second moments (empty for SGD), both in ``_pack``
    order (every coef, then every intercept). ``learning_rate`` is the current rate
    (invscaling/adaptive schedules for SGD, the bias-corrected step for Adam).
    """

    def __init__(
        self,
        solver: str,
        params: Sequence[FloatArray],
        learning_rate_init: float,
        lr_schedule: str,
        momentum: float,
        nesterov: bool,
        power_t: float,
        beta_1: float,
        beta_2: float,
        epsilon: float,
    ) -> None:
        self.solver = solver
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.power_t = float(power_t)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.t = 0
        self.first: list[FloatArray] = [np.zeros_like(p, order="C") for p in params]
        self.second: list[FloatArray] = (
            [np.zeros_like(p, order="C") for p in params] if solver == "adam" else []
        )

    # scikit-learn's attribute names, for code that inspects ``_optimizer``.
    @property
    def velocities(self) -> list[FloatArray]:
        return self.first

    @property
    def ms(self) -> list[FloatArray]:
        return self.first

    @property
    def vs(self) -> list[FloatArray]:
        return self.second

    def matches(self, params: Sequence[FloatArray]) -> bool:
        """Whether the stored state has the shapes of ``params``."""
        n_second = len(params) if self.solver == "adam" else 0
        return (
            len(self.first) == len(params)
            and len(self.second) == n_second
            and all(f.shape == p.shape for f, p in zip(self.first, params, strict=True))
            and all(s.shape == p.shape for s, p in zip(self.second, params, strict=False))
        )

    def cast(self, dtype: np.dtype[Any]) -> None:
        """Store the state in the training dtype, C-contiguous."""
        self.first = [_as_float(a, dtype) for a in self.first]
        self.second = [_as_float(a, dtype) for a in self.second]


# One lock per estimator object, for its fit/partial_fit calls (see `_serialised`). Kept
# outside the instance (no `__dict__` entry), so `get_params`, `clone`, pickling and
# `copy.deepcopy` never see it, and a copy gets a lock of its own.
_FIT_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_FIT_LOCKS_GUARD = threading.Lock()
_SHARED_FIT_LOCK = threading.RLock()

_Method = TypeVar("_Method", bound=Any)


def _serialised(method: _Method) -> _Method:
    """Run ``method`` under the estimator's own lock.

    ``fit``/``partial_fit`` train the weight arrays in place with the GIL released; two
    such calls on one estimator from several threads would train the same arrays at once
    (which the compiled module refuses). scikit-learn's pure-Python loop tolerates this
    (its results are then a race); here the calls run one after the other. Re-entrant: a
    method may call another one (``fit`` from a subclass's ``partial_fit``).
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _FIT_LOCKS_GUARD:
            try:
                lock = _FIT_LOCKS.get(self)
                if lock is None:
                    lock = _FIT_LOCKS[self] = threading.RLock()
            except TypeError:
                # A subclass made instances unhashable (``__eq__`` without ``__hash__``):
                # its fits share one lock.
                lock = _SHARED_FIT_LOCK
        with lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unshared(
    arrays: Sequence[FloatArray], others: Sequence[FloatArray | None]
) -> list[FloatArray]:
    """Copy each of ``arrays`` that may share memory with another one or with ``others``.

    Read-only arrays are copied too; an array is kept as it is otherwise.
    The compiled kernel borrows every array it writes exclusively and refuses two borrows
    of one memory (say ``coefs_[1] = coefs_[0]`` set by hand, which scikit-learn's
    in-place updates accept). Each such array is trained as a copy of its own instead, and
    the estimator keeps the copies.
    """
    out: list[FloatArray] = []
    for a in arrays:
        if not a.flags.writeable or any(
            b is not None and np.may_share_memory(a, b) for b in (*out, *others)
        ):
            a = a.copy()
        out.append(a)
    return out


def _print_progress(n_iter: int, loss: float, validation_score: float | None) -> None:
    """Verbose per-epoch report, in scikit-learn's words."""
    print("Iteration %d, loss = %.8f" % (n_iter, loss))  # noqa: UP031 - sklearn's format
    if validation_score is not None:
        print("Validation score: %f" % validation_score)  # noqa: UP031


def _verbose_epoch(
    printer: Callable[[int, float, float | None], None],
    n_iter: int,
    loss: float,
    validation_score: float | None,
    last: bool,
) -> None:
    """Print an epoch's progress: the epoch hook of a verbose fit without callbacks."""
    printer(n_iter, loss, validation_score)


def _plain_inputs(X: Any, y: Any) -> tuple[FloatArray, npt.NDArray[Any]] | None:
    """``(X, y)`` when both are plain (see :mod:`oxlearn._plain_inputs`), else None.

    A C-contiguous float matrix (``validate_data`` leaves it as it is, not even reordered)
    and a 1-D integer target of as many rows: the classifier's validation of them costs
    about 0.6 ms (``validate_data`` and ``LabelBinarizer.fit``), a few percent of a small
    net's fit.
    """
    if not (isinstance(X, np.ndarray) and X.flags.c_contiguous):
        return None
    matrix = plain_float_matrix(X)
    if matrix is None or not plain_int_labels(y, matrix.shape[0]):
        return None
    return matrix, y


def _binarize(binarizer: LabelBinarizer, y: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``binarizer.transform(y).astype(bool)``, the one-hot array built directly.

    For 1-D binary or multiclass targets whose labels are all among ``classes_`` (always the
    case here: ``fit`` takes the classes from ``y`` and ``partial_fit`` has rejected unknown
    ones) the result is the same array; building it is about 50 times quicker than
    ``label_binarize``'s sparse round trip, which cost about 0.7 ms per fit on a digits
    fold. Anything else goes through ``transform``.
    """
    classes = binarizer.classes_
    if y.ndim != 1 or len(classes) < 2 or binarizer.y_type_ not in ("binary", "multiclass"):
        binary: npt.NDArray[np.bool_] = binarizer.transform(y).astype(bool)
        return binary
    if len(classes) == 2:
        return np.asarray(y == classes[1]).reshape(-1, 1)
    out = np.zeros((len(y), len(classes)), dtype=bool)
    out[np.arange(len(y)), np.searchsorted(classes, y)] = True
    return out


def _check_hidden_layer_sizes(hidden_layer_sizes: Any) -> None:
    """Say which entry of ``hidden_layer_sizes`` is not an integer.

    scikit-learn fails on these later (a TypeError from NumPy when it draws the weights);
    this runs where its ``_fit`` validates the data, after its check of the sizes' signs.
    """
    if not hasattr(hidden_layer_sizes, "__iter__"):
        hidden_layer_sizes = [hidden_layer_sizes]
    hidden_layer_sizes = list(hidden_layer_sizes)
    for h in hidden_layer_sizes:
        if isinstance(h, bool) or not isinstance(h, Integral):
            raise TypeError(
                f"hidden_layer_sizes must hold integers, got {hidden_layer_sizes}: "
                f"{h!r} is of type {type(h).__name__}."
            )


def _doc_from(source: Any) -> Callable[[_Method], _Method]:
    """Give the decorated method the docstring of scikit-learn's ``source``."""

    def decorate(method: _Method) -> _Method:
        method.__doc__ = source.__doc__
        return method

    return decorate


def _stochastic_only(est: Any) -> bool:
    # ``partial_fit`` is available for 'sgd' and 'adam' only (AttributeError otherwise).
    return bool(est._check_solver())


class _OxlearnMLPMixin(CallbackSupportMixin):  # type: ignore[misc]
    """The hooks of scikit-learn's ``BaseMultilayerPerceptron`` that run in Rust.

    scikit-learn's ``fit``/``partial_fit`` run its ``_fit``, which validates the input
    (``_validate_input``, overridden for speed), initialises the weights as scikit-learn
    does (its ``_initialize``, inherited) and calls ``_fit_stochastic`` or ``_fit_lbfgs``
    (overridden: one Rust call per fit, or scipy's L-BFGS-B on a Rust loss and gradient);
    prediction goes through ``_forward_pass_fast`` (overridden: one Rust call).
    """

    if TYPE_CHECKING:
        # The estimator's parameters and other attributes live on scikit-learn's class;
        # these are the fitted attributes this mixin sets.
        coefs_: list[FloatArray]
        intercepts_: list[FloatArray]
        t_: int
        n_iter_: int
        loss_: Any
        loss_curve_: list[Any]
        validation_scores_: list[float] | None
        best_validation_score_: float | None
        best_loss_: Any
        classes_: Any
        n_features_in_: int
        _label_binarizer: LabelBinarizer
        _optimizer: _StochasticOptimizer
        _no_improvement_count: int
        _best_coefs: list[FloatArray]
        _best_intercepts: list[FloatArray]
        _coef_indptr: list[tuple[int, int, tuple[int, int]]]
        _intercept_indptr: list[tuple[int, int]]

        def __getattr__(self, name: str) -> Any: ...

    def _callback_targets(self, y: npt.NDArray[Any]) -> Callable[[], Any]:
        """Return a function giving the targets callbacks see (called only if one takes them).

        The labels (the kernels see the classifier's one-hot target), 1-D for a single output,
        as ``fit`` got them.
        """

        def targets() -> Any:
            if hasattr(self, "_label_binarizer"):
                return self._label_binarizer.inverse_transform(y)
            return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y

        return targets

    def _loss_name(self) -> str:
        """Name the loss the kernels compute (scikit-learn's choice in ``_backprop``)."""
        if self.loss == "log_loss" and self.out_activation_ == "logistic":
            return "binary_log_loss"
        return str(self.loss)

    def _unpack(self, packed_parameters: FloatArray) -> None:
        """Extract the coefficients and intercepts from packed_parameters.

        As scikit-learn's, but each layer is a copy of its own rather than a view of the
        packed vector.
        """
        layers = self._unpacked_copy(packed_parameters)
        for i, (coef, intercept) in enumerate(
            zip(layers["coefs_"], layers["intercepts_"], strict=True)
        ):
            self.coefs_[i] = coef
            self.intercepts_[i] = intercept

    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> FloatArray:
        """Output-layer activations for ``X`` (computed in Rust).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        check_input : bool, default=True
            Perform input data validation or not.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_outputs)
            The output-layer activations. Their dtype is the one NumPy would give
            ``X @ coefs_[0]`` (float32 for float32 input and float32 weights).
        """
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        X = _densify(X)
        dtype = np.result_type(np.asarray(X).dtype, *(np.asarray(c).dtype for c in self.coefs_))
        if dtype not in (np.float32, np.float64):
            dtype = np.dtype(np.float64)
        coefs = [_as_float(c, dtype) for c in self.coefs_]
        intercepts = [_as_float(b, dtype) for b in self.intercepts_]
        return _oxlearn.mlp_forward(
            _as_float(X, dtype),
            coefs,
            intercepts,
            self.activation,
            self.out_activation_,
            default_threads(),
        )

    def _fit_lbfgs(
        self,
        X: FloatArray,
        y: npt.NDArray[Any],
        sample_weight: FloatArray | None,
        activations: list[Any],
        deltas: list[Any],
        coef_grads: list[Any],
        intercept_grads: list[Any],
        layer_units: list[int],
    ) -> None:
        # activations, deltas and the gradient lists (scikit-learn's work buffers) are
        # unused: the kernel keeps its own.
        layer_units = [int(u) for u in layer_units]
        # As in scikit-learn: the initial point is packed in X's dtype, so scipy (whose
        # ScalarFunction keeps x0's floating dtype) evaluates the loss and gradient in that
        # dtype, while L-BFGS-B itself iterates in float64 and the returned weights are
        # float64 whatever X's dtype.
        dtype = X.dtype
        X = _as_float(X, dtype)
        Y = _as_float(y, dtype)
        sw = None if sample_weight is None else _as_float(sample_weight, dtype)

        # Store meta information for the parameters (for faster unpacking)
        self._coef_indptr, self._intercept_indptr = _packed_layout(layer_units)
        start = self._intercept_indptr[-1][1]

        packed_coef_inter = _as_float(_pack(self.coefs_, self.intercepts_), dtype)
        if packed_coef_inter.shape[0] != start:
            raise ValueError(
                f"The network has {packed_coef_inter.shape[0]} parameters but "
                f"layer sizes {layer_units} need {start}; the weights do not match "
                "hidden_layer_sizes and the data."
            )

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        options: dict[str, Any] = {
            "maxfun": self.max_fun,
            "maxiter": self.max_iter,
            "gtol": self.tol,
        }
        # scipy < 1.15 still takes iprint (scikit-learn's _get_additional_lbfgs_options_dict).
        if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15):
            options["iprint"] = iprint

        loss_name = self._loss_name()
        n_threads = default_threads()
        activation = str(self.activation)
        out_activation = self.out_activation_
        alpha = float(self.alpha)

        def loss_grad(packed: FloatArray) -> tuple[float, FloatArray]:
            return _oxlearn.mlp_loss_grad(
                _as_float(packed, dtype),
                X,
                Y,
                sw,
                layer_units,
                activation,
                out_activation,
                loss_name,
                alpha,
                n_threads,
            )

        # scipy's callback ends one iteration's task and begins the next: the root task holds
        # at most max_iter iterations and the one begun after the last (never run).
        targets = self._callback_targets(y)
        root = open_fit_task(self, X, targets, sample_weight, max(self.max_iter, 1) + 1)
        tasks = None
        if root is not None:
            tasks = IterationTasks(self, root, X, targets, self._unpacked_copy, packed_coef_inter)
        opt_res = scipy.optimize.minimize(
            loss_grad,
            packed_coef_inter,
            method="L-BFGS-B",
            jac=True,
            options=options,
            callback=tasks,
        )
        if tasks is not None:
            tasks.close()
        if tasks is not None and tasks.stopped:
            # A callback asked to stop: a normal end, not a failure to converge.
            self.n_iter_ = int(opt_res.nit)
        else:
            self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        # scikit-learn's loss is a NumPy float64 scalar; so is ours.
        self.loss_ = np.float64(opt_res.fun)
        self._unpack(opt_res.x)
        close_fit_task(self, root, X, targets)

    def _unpacked_copy(self, packed: FloatArray) -> dict[str, Any]:
        """Return ``coefs_``/``intercepts_`` of a packed vector, as copies.

        A callback's ``fitted_estimator`` gets them; the estimator stays as it is.
        """
        coefs = []
        intercepts = []
        for (c0, c1, shape), (i0, i1) in zip(
            self._coef_indptr, self._intercept_indptr, strict=True
        ):
            coefs.append(np.reshape(packed[c0:c1], shape).copy())
            intercepts.append(packed[i0:i1].copy())
        return {"coefs_": coefs, "intercepts_": intercepts}

    def _loss_grad_lbfgs(
        self,
        packed_coef_inter: FloatArray,
        X: Any,
        y: Any,
        sample_weight: Any,
        activations: list[Any],
        deltas: list[Any],
        coef_grads: list[Any],
        intercept_grads: list[Any],
    ) -> tuple[float, FloatArray]:
        """Loss and packed gradient at ``packed_coef_inter`` (scikit-learn's private method).

        The function L-BFGS minimises, with scikit-learn's signature: it sets ``coefs_``
        and ``intercepts_`` from the packed vector, stores the gradients in ``coef_grads``
        and ``intercept_grads`` (as scikit-learn's ``_backprop`` does) and returns the loss
        with its L2 term and the packed gradient, both computed by the Rust kernel that
        ``fit`` uses. ``activations`` and ``deltas`` are accepted for compatibility and
        left as given: the kernel keeps its own buffers.
        """
        layer_units = [c.shape[0] for c in self.coefs_] + [self.coefs_[-1].shape[1]]
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        X = _as_float(X, dtype)
        Y = _as_float(y, dtype)
        if Y.ndim == 1:
            Y = Y.reshape((-1, 1))
        sw = None if sample_weight is None else _as_float(sample_weight, dtype)
        packed = _as_float(packed_coef_inter, dtype)
        loss, grad = _oxlearn.mlp_loss_grad(
            packed,
            X,
            Y,
            sw,
            layer_units,
            str(self.activation),
            self.out_activation_,
            self._loss_name(),
            float(self.alpha),
            default_threads(),
        )
        # scikit-learn's _loss_grad_lbfgs sets the weights through _unpack too.
        self._coef_indptr, self._intercept_indptr = _packed_layout(layer_units)
        self._unpack(packed)
        for i, ((c0, c1, shape), (i0, i1)) in enumerate(
            zip(self._coef_indptr, self._intercept_indptr, strict=True)
        ):
            coef_grads[i] = grad[c0:c1].reshape(shape)
            intercept_grads[i] = grad[i0:i1]
        return float(loss), grad

    def _fit_stochastic(
        self,
        X: FloatArray,
        y: npt.NDArray[Any],
        sample_weight: FloatArray | None,
        activations: list[Any],
        deltas: list[Any],
        coef_grads: list[Any],
        intercept_grads: list[Any],
        layer_units: list[int],
        incremental: bool,
    ) -> None:
        # scikit-learn's work buffers (activations ... layer_units) are unused: the kernel
        # keeps its own.
        dtype = X.dtype
        # The kernel trains the weights in place: one C-contiguous array per layer in
        # the training dtype (a no-op unless the weights were set by hand or by a fit
        # on data of another dtype).
        self.coefs_ = [_as_float(c, dtype) for c in self.coefs_]
        self.intercepts_ = [_as_float(b, dtype) for b in self.intercepts_]
        params = [*self.coefs_, *self.intercepts_]
        optimizer: _StochasticOptimizer | None = getattr(self, "_optimizer", None)
        if (
            not incremental
            or optimizer is None
            or optimizer.solver != self.solver
            or not optimizer.matches(params)
        ):
            optimizer = _StochasticOptimizer(
                self.solver,
                params,
                self.learning_rate_init,
                self.learning_rate,
                self.momentum,
                self.nesterovs_momentum,
                self.power_t,
                self.beta_1,
                self.beta_2,
                self.epsilon,
            )
            self._optimizer = optimizer
        optimizer.cast(dtype)

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = bool(self.early_stopping)
        X_val: FloatArray | None
        Y_val: npt.NDArray[Any] | None
        sample_weight_val: FloatArray | None
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, Y_val = train_test_split(
                    X,
                    y,
                    random_state=self._random_state,
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
                sample_weight_train = sample_weight_val = None
            else:
                (
                    X_train,
                    X_val,
                    y_train,
                    Y_val,
                    sample_weight_train,
                    sample_weight_val,
                ) = train_test_split(
                    X,
                    y,
                    sample_weight,
                    random_state=self._random_state,
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
            assert X_val is not None
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = Y_val = sample_weight_val = None

        n_samples = X_train.shape[0]

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if int(self.batch_size) > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped",
                    stacklevel=3,
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        # The per-epoch shuffles are drawn in Rust from a generator seeded here, after
        # the weight initialisation and the validation split have used the random state.
        seed = int(self._random_state.randint(0, np.iinfo(np.int64).max))

        def arr(a: Any) -> FloatArray | None:
            return None if a is None else _as_float(a, dtype)

        # The kernel writes the best weights into these (early stopping); they must not
        # share memory with the weights being trained.
        best_coefs = [
            np.array(c, dtype=dtype, order="C", copy=True)
            for c in getattr(self, "_best_coefs", self.coefs_)
        ]
        best_intercepts = [
            np.array(b, dtype=dtype, order="C", copy=True)
            for b in getattr(self, "_best_intercepts", self.intercepts_)
        ]
        if [b.shape for b in best_coefs] != [c.shape for c in self.coefs_] or [
            b.shape for b in best_intercepts
        ] != [b.shape for b in self.intercepts_]:
            best_coefs = [c.copy() for c in self.coefs_]
            best_intercepts = [b.copy() for b in self.intercepts_]

        n_iter_no_change = _NEVER if np.isinf(self.n_iter_no_change) else int(self.n_iter_no_change)
        prev_best_loss = getattr(self, "best_loss_", None)
        best_loss = np.inf if prev_best_loss is None else float(prev_best_loss)
        prev_best_score = getattr(self, "best_validation_score_", None)
        best_validation_score = -np.inf if prev_best_score is None else float(prev_best_score)
        if not hasattr(self, "loss_curve_"):
            self.loss_curve_ = []
        if early_stopping and getattr(self, "validation_scores_", None) is None:
            self.validation_scores_ = []

        # Arrays the kernel writes must share no memory with each other or with the
        # inputs it reads (see `_unshared`).
        X_train, y_train = _as_float(X_train, dtype), _as_float(y_train, dtype)
        validation: tuple[FloatArray, FloatArray, FloatArray | None] | None = None
        if X_val is not None and Y_val is not None:
            validation = (_as_float(X_val, dtype), _as_float(Y_val, dtype), arr(sample_weight_val))
        sw_train = arr(sample_weight_train)
        inputs = [X_train, y_train, sw_train, *(validation or ())]
        n_coefs = len(self.coefs_)
        written = _unshared(
            [*self.coefs_, *self.intercepts_, *optimizer.first, *optimizer.second],
            inputs,
        )
        params = written[: 2 * n_coefs]
        self.coefs_, self.intercepts_ = params[:n_coefs], params[n_coefs:]
        optimizer.first = written[2 * n_coefs : 2 * n_coefs + len(optimizer.first)]
        optimizer.second = written[2 * n_coefs + len(optimizer.first) :]
        # The best weights are fresh copies (above): nothing else shares their memory.

        targets = self._callback_targets(y)
        root = open_fit_task(self, X, targets, sample_weight, 1 if incremental else self.max_iter)
        printer = _print_progress if self.verbose else None
        on_epoch: Callable[[int, float, float | None, bool], Any] | None = None
        tasks = None
        if root is not None:
            on_epoch = tasks = EpochTasks(self, root, X, targets, printer)
        elif printer is not None:
            on_epoch = functools.partial(_verbose_epoch, printer)

        config = _oxlearn.StochasticConfig(
            layer_units=[self.coefs_[0].shape[0], *(c.shape[1] for c in self.coefs_)],
            activation=str(self.activation),
            out_activation=self.out_activation_,
            loss=self._loss_name(),
            solver=optimizer.solver,
            alpha=float(self.alpha),
            batch_size=batch_size,
            learning_rate=optimizer.lr_schedule,
            learning_rate_init=optimizer.learning_rate_init,
            power_t=optimizer.power_t,
            momentum=optimizer.momentum,
            nesterovs_momentum=optimizer.nesterov,
            beta_1=optimizer.beta_1,
            beta_2=optimizer.beta_2,
            epsilon=optimizer.epsilon,
            max_iter=int(self.max_iter),
            shuffle=bool(self.shuffle),
            seed=seed,
            tol=float(self.tol),
            n_iter_no_change=n_iter_no_change,
            incremental=incremental,
            score_kind=self._score_kind() if early_stopping else None,
            n_threads=default_threads(),
            publish_weights=tasks is not None and tasks.publish_weights,
        )
        state = _oxlearn.TrainingState(
            t=int(self.t_),
            adam_t=int(optimizer.t),
            learning_rate=optimizer.learning_rate,
            best_loss=best_loss,
            best_validation_score=best_validation_score,
            no_improvement_count=int(getattr(self, "_no_improvement_count", 0)),
        )
        interrupted = False
        result: _oxlearn.StochasticResult | None
        try:
            result = _oxlearn.mlp_fit_stochastic(
                X_train,
                y_train,
                sw_train,
                (self.coefs_, self.intercepts_),
                (optimizer.first, optimizer.second),
                (best_coefs, best_intercepts),
                validation,
                config,
                state,
                on_epoch,
            )
        except KeyboardInterrupt:
            # Only reachable if the interrupt lands outside the kernel's own epoch-end
            # check (e.g. while the verbose callback prints): the weights trained so far
            # are kept, the per-epoch bookkeeping of this call is lost.
            interrupted = True
            result = None
        finally:
            if tasks is not None:
                tasks.close()

        if result is not None:
            new_state = result.state
            self.n_iter_ = int(result.n_iter)
            # NumPy float64 scalars, as scikit-learn's losses are.
            curve = [np.float64(v) for v in result.loss_curve]
            self.loss_curve_.extend(curve)
            if curve:
                self.loss_ = curve[-1]
            self.t_ = int(new_state.t)
            optimizer.t = int(new_state.adam_t)
            optimizer.learning_rate = float(new_state.learning_rate)
            self._no_improvement_count = int(new_state.no_improvement_count)
            if early_stopping:
                assert self.validation_scores_ is not None
                self.validation_scores_.extend(float(v) for v in result.validation_scores)
                self.best_validation_score_ = float(new_state.best_validation_score)
            else:
                self.best_loss_ = np.float64(new_state.best_loss)
            if self.verbose and result.stop_message:
                print(result.stop_message)
            stop_reason = result.stop_reason
            if stop_reason == "interrupted":
                interrupted = True
            elif stop_reason == "max_iter":
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) "  # noqa: UP031
                    "reached and the optimization hasn't converged yet." % self.max_iter,
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if interrupted:
            warnings.warn("Training interrupted by user.", stacklevel=3)

        self._best_coefs = best_coefs
        self._best_intercepts = best_intercepts
        if early_stopping:
            # restore best weights (copies: the kernel's buffers stay separate)
            self.coefs_ = [c.copy() for c in best_coefs]
            self.intercepts_ = [b.copy() for b in best_intercepts]
        close_fit_task(self, root, X, targets)


_NOTES = """
    A drop-in replacement for :class:`sklearn.neural_network.{name}` (a subclass of it,
    with the same parameters, attributes and methods; see its documentation) whose
    training and inference run in Rust.

    The weights are initialised exactly as scikit-learn initialises them (same
    ``random_state``, same initial ``coefs_``). The stochastic solvers shuffle each
    epoch with a Rust generator seeded from ``random_state``, so their training path
    differs from scikit-learn's in the order of the mini-batches, not in the
    optimiser. Training and prediction use every CPU the process may run on, or
    ``OXLEARN_NUM_THREADS`` when that environment variable is set (else
    ``OMP_NUM_THREADS``, which joblib's process workers set); results are
    bit-identical at any thread count. float32 input trains in float32 with the
    stochastic solvers; 'lbfgs' works in float64 (as scikit-learn's does, since scipy's
    L-BFGS-B iterates in float64). Sparse input is accepted and densified. Ctrl-C
    during ``fit`` stops training at the end of the current epoch and warns.
    Concurrent ``fit``/``partial_fit`` calls on one estimator run one after the other.
"""


def _class_weights_of_rows(class_weight: Any, classes: Any, y: Any) -> Any:
    """Return each row's weight for one output.

    ``class_weight`` is a dict, or ``"balanced"`` with this call's counts, over ``classes``
    (sorted, holding every label of ``y``).
    """
    at = np.searchsorted(classes, y)
    if isinstance(class_weight, str):
        counts = np.bincount(at, minlength=len(classes))
        # compute_class_weight's expression, so one call with every class gives its bits
        # (a class this call lacks weighs no row, and is left out of the division).
        denominator = len(classes) * counts.astype(np.float64)
        recip_freq = np.divide(
            len(y), denominator, out=np.zeros_like(denominator), where=counts > 0
        )
        return recip_freq[at]
    return compute_class_weight(class_weight, classes=classes, y=y)[at]


class MLPClassifier(_OxlearnMLPMixin, SklearnMLPClassifier):  # type: ignore[misc]
    __doc__ = (
        """Multi-layer Perceptron classifier, trained in Rust.
"""
        + _NOTES.format(name="MLPClassifier")
        + """
    One parameter goes beyond scikit-learn's MLPClassifier:

    class_weight : dict, list of dict, "balanced" or None, default=None
        Weights of the classes, as in scikit-learn's other classifiers: each sample's
        weight is multiplied by its class's (``compute_sample_weight``), and by
        ``sample_weight`` when given. ``"balanced"`` weights classes by
        ``n_samples / (n_classes * np.bincount(y))``; for multi-label targets give one
        dict per output or ``"balanced"``, and the per-output weights multiply. With
        ``partial_fit`` a dict is read against all the classes (those given by
        ``classes``), as ``SGDClassifier.partial_fit`` reads it, and ``"balanced"``
        weighs each call's rows by their class frequencies in that call, over all the
        classes: ``n_rows / (n_classes * count)`` (scikit-learn's ``SGDClassifier``
        refuses it; one call on the whole training set gives ``fit``'s weights). None
        trains as scikit-learn does.
"""
        + """
    Examples
    --------
    >>> from oxlearn.neural_network import MLPClassifier
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 2)
    """
    )

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **SklearnMLPClassifier._parameter_constraints,
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        class_weight: Any = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.class_weight = class_weight

    def _score_kind(self) -> str:
        return "accuracy"

    def _class_weighted(self, y: Any, sample_weight: Any, classes: Any = None) -> Any:
        """Return ``sample_weight`` times the weights ``class_weight`` gives ``y``.

        ``fit``: scikit-learn's ``compute_sample_weight``, the rule of its other classifiers
        (for multi-label targets one dict per output, or ``"balanced"``, and the per-output
        weights multiply). ``partial_fit`` (``classes`` given, or the fitted ``classes_``):
        :meth:`_partial_fit_class_weights`.
        """
        if self.class_weight is None:
            return sample_weight
        self._validate_params()
        if classes is None:
            weights = compute_sample_weight(self.class_weight, y)
        else:
            weights = self._partial_fit_class_weights(y, classes)
            if weights is None:
                return sample_weight
        if sample_weight is None:
            return weights
        # Checked as scikit-learn's fit checks it, so a wrong length gets its message.
        return _check_sample_weight(sample_weight, weights, dtype=np.float64) * weights

    def _partial_fit_class_weights(self, y: Any, classes: Any) -> Any:
        """Return the weights ``class_weight`` gives the rows of one ``partial_fit`` call.

        Read against all the classes, not only this call's: a dict as
        ``compute_class_weight`` reads it with ``classes`` (``SGDClassifier.partial_fit``'s
        rule, so a dict may leave out a class this call has), ``"balanced"`` as
        ``n_rows / (n_classes * count)`` with this call's counts (each output's classes
        being 0 and 1 for a multi-label target). None when ``y`` has a label outside the
        classes: scikit-learn's own check then raises.
        """
        cw = self.class_weight
        y_arr = np.asarray(y)
        if type_of_target(y_arr) == "multilabel-indicator":
            per_output = [cw] * y_arr.shape[1] if isinstance(cw, str) else cw
            if isinstance(per_output, dict) or len(per_output) != y_arr.shape[1]:
                # compute_sample_weight's own error for a bad multi-output class_weight.
                return compute_sample_weight(cw, y_arr)
            weights = np.ones(y_arr.shape[0], dtype=np.float64)
            for column, weight in zip(y_arr.T, per_output, strict=True):
                weights *= _class_weights_of_rows(weight, np.array([0, 1]), column)
            return weights
        all_classes = np.unique(np.asarray(classes))
        if not np.isin(y_arr, all_classes).all():
            return None
        return _class_weights_of_rows(cw, all_classes, y_arr)

    @_serialised
    @_doc_from(SklearnMLPClassifier.fit)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        sample_weight = self._class_weighted(y, sample_weight)
        result: MLPClassifier = SklearnMLPClassifier.fit(self, X, y, sample_weight=sample_weight)
        return result

    @available_if(_stochastic_only)
    @_serialised
    @_doc_from(SklearnMLPClassifier.partial_fit)
    def partial_fit(
        self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None
    ) -> MLPClassifier:
        known = classes if classes is not None else getattr(self, "classes_", None)
        if known is not None:
            sample_weight = self._class_weighted(y, sample_weight, classes=known)
        result: MLPClassifier = super().partial_fit(
            X, y, sample_weight=sample_weight, classes=classes
        )
        return result

    def _validate_input(
        self, X: Any, y: Any, incremental: bool, reset: bool
    ) -> tuple[Any, npt.NDArray[Any]]:
        _check_hidden_layer_sizes(self.hidden_layer_sizes)
        plain = _plain_inputs(X, y) if reset else None
        if plain is not None:
            # What `validate_data` would return (both unchanged) and set.
            X, y = plain
            if hasattr(self, "feature_names_in_"):
                delattr(self, "feature_names_in_")
            self.n_features_in_ = X.shape[1]
        else:
            X, y = validate_data(
                self,
                X,
                y,
                accept_sparse=["csr", "csc"],
                multi_output=True,
                dtype=(np.float64, np.float32),
                reset=reset,
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # incremental warm_start classes_ def  action
        #    0            0         0        define classes_
        #    0            1         0        define classes_
        #    0            0         1        redefine classes_
        #
        #    0            1         1        check compat warm_start
        #    1            1         1        check compat warm_start
        #
        #    1            0         1        check compat last fit
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            if plain is not None:
                self._label_binarizer = fitted_label_binarizer(y)
            else:
                self._label_binarizer = LabelBinarizer()
                self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )

        # This downcast to bool is to prevent upcasting when working with float32 data
        y = _binarize(self._label_binarizer, y)
        # Sparse input is densified: the kernels run dense GEMMs.
        return _densify(X), y


class MLPRegressor(_OxlearnMLPMixin, SklearnMLPRegressor):  # type: ignore[misc]
    __doc__ = (
        """Multi-layer Perceptron regressor, trained in Rust.
"""
        + _NOTES.format(name="MLPRegressor")
        + """
    Unlike scikit-learn 1.9 (whose ``MLPRegressor.partial_fit`` runs a full L-BFGS fit
    when ``solver='lbfgs'``), ``partial_fit`` is unavailable for 'lbfgs' here, as in
    both libraries' ``MLPClassifier``.

    Examples
    --------
    >>> from oxlearn.neural_network import MLPRegressor
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=200, n_features=20, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1).fit(X, y)
    >>> regr.predict(X[:2]).shape
    (2,)
    """
    )

    def _score_kind(self) -> str:
        return "r2"

    fit = _serialised(SklearnMLPRegressor.fit)

    def _validate_input(
        self, X: Any, y: Any, incremental: bool, reset: bool
    ) -> tuple[Any, npt.NDArray[Any]]:
        _check_hidden_layer_sizes(self.hidden_layer_sizes)
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.dtype.kind in "US":
            # scikit-learn's `y_numeric` converts object arrays only; string arrays reach its
            # loss, whose subtraction raises a TypeError (numpy's UFuncTypeError). Our kernel
            # would parse "1.5" as a number instead, so raise the same type up front.
            raise TypeError(
                f"{type(self).__name__} needs numeric targets, but y holds strings (dtype "
                f"{y.dtype}); convert them, e.g. with y.astype(float)."
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # Sparse input is densified: the kernels run dense GEMMs.
        return _densify(X), y

    @available_if(_stochastic_only)
    @_serialised
    @_doc_from(SklearnMLPRegressor.partial_fit)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        result: MLPRegressor = super().partial_fit(X, y, sample_weight=sample_weight)
        return result
