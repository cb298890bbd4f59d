"""scikit-learn's callback API (:mod:`sklearn.callback`) on the MLP's training loops.

A ``fit``/``partial_fit`` is the root task; each epoch of 'sgd'/'adam' (one call of the Rust
loop's epoch-end hook) and each L-BFGS iteration (scipy's ``callback``) is a subtask. Each
subtask is begun before its epoch runs and ended after it; ``on_fit_task_end`` returning True
stops training after that epoch, as a normal stop. ``fitted_estimator`` is a shallow copy of
the estimator with copies of the weights of that moment (built by scikit-learn only for
callbacks whose hooks take it; the Rust loop then writes its weights back every epoch).

Nothing here runs when no callback is set and no meta-estimator propagates a task: the
training loop then never hands control back to Python.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from oxlearn._sklearn_compat import CallbackContext, callbacks_of, has_callback_tasks

__all__ = ["EpochTasks", "IterationTasks", "open_fit_task"]

_HOOKS = ("on_fit_task_begin", "on_fit_task_end")


def open_fit_task(
    est: Any, X: Any, y: Callable[[], Any], sample_weight: Any, max_subtasks: int
) -> tuple[CallbackContext, dict[str, Any] | None] | None:
    """Begin the fit's root task; None when nothing listens (no callback, no parent task).

    ``y`` is called only if a callback takes it (the classifier's kernels see a one-hot
    target, the callbacks the labels). Returns the root context and the metadata to pass
    with every task.
    """
    if not has_callback_tasks(est):
        return None
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    ctx: CallbackContext = est._init_callback_context(max_subtasks=max_subtasks)
    ctx.call_on_fit_task_begin(estimator=est, X=X, y=y, metadata=metadata)
    return ctx, metadata


def close_fit_task(
    est: Any, task: tuple[CallbackContext, dict[str, Any] | None] | None, X: Any, y: Any
) -> None:
    """End the root task: ``fitted_estimator`` is the estimator as fitted."""
    if task is not None:
        ctx, metadata = task
        ctx.call_on_fit_task_end(
            estimator=est, X=X, y=y, metadata=metadata, reconstruction_attributes={}
        )


def _takes_fitted_estimator(est: Any) -> bool:
    """Tell whether a callback of ``est`` reads ``fitted_estimator``.

    scikit-learn passes each hook only the keyword arguments its signature names.
    """
    return any(
        "fitted_estimator" in inspect.signature(getattr(cb, hook)).parameters
        for cb in callbacks_of(est)
        for hook in _HOOKS
    )


class _Subtasks:
    """The subtasks of one root task, one at a time: begin, end, begin the next..."""

    def __init__(
        self,
        est: Any,
        root: tuple[CallbackContext, dict[str, Any] | None],
        X: Any,
        y: Any,
        task_name: str,
    ) -> None:
        self._est = est
        self._root, self._metadata = root
        self._X, self._y = X, y
        self._task_name = task_name
        self._current: CallbackContext | None = None

    def _begin(self, attributes: Callable[[], dict[str, Any]]) -> None:
        self._current = self._root.subcontext(task_name=self._task_name)
        self._current.call_on_fit_task_begin(
            estimator=self._est,
            X=self._X,
            y=self._y,
            metadata=self._metadata,
            reconstruction_attributes=attributes,
        )

    def _end(self, attributes: Callable[[], dict[str, Any]]) -> bool:
        """End the current subtask; whether a callback asked to stop."""
        assert self._current is not None
        task, self._current = self._current, None
        return bool(
            task.call_on_fit_task_end(
                estimator=self._est,
                X=self._X,
                y=self._y,
                metadata=self._metadata,
                reconstruction_attributes=attributes,
            )
        )

    def close(self) -> None:
        """End a subtask that was begun but never ran (training stopped before it).

        It ends as an empty task, so every begin has its end (scikit-learn's L-BFGS bridge
        does the same).
        """
        if self._current is not None:
            task, self._current = self._current, None
            task.call_on_fit_task_end(estimator=self._est)


class EpochTasks(_Subtasks):
    """One subtask per epoch of 'sgd'/'adam', fed by the Rust loop's epoch-end hook.

    Called as ``tasks(n_iter, loss, validation_score, last)`` after each epoch, with the
    weights written back into ``est.coefs_``/``est.intercepts_`` when a callback reads
    ``fitted_estimator`` (``publish_weights``). Returns True to stop.
    """

    def __init__(
        self,
        est: Any,
        root: tuple[CallbackContext, dict[str, Any] | None],
        X: Any,
        y: Any,
        print_progress: Callable[[int, float, float | None], None] | None,
    ) -> None:
        super().__init__(est, root, X, y, "epoch")
        self.publish_weights = _takes_fitted_estimator(est)
        self._print = print_progress
        self._n_iter0 = int(getattr(est, "n_iter_", 0) or 0)
        self._curve0 = list(getattr(est, "loss_curve_", []) or [])
        self._losses: list[np.float64] = []
        self._begin(self._snapshot)

    def _snapshot(self) -> dict[str, Any]:
        """Return the attributes of a predict-ready copy, as of now."""
        est = self._est
        curve = [*self._curve0, *self._losses]
        attrs: dict[str, Any] = {
            "coefs_": [np.array(c, copy=True) for c in est.coefs_],
            "intercepts_": [np.array(b, copy=True) for b in est.intercepts_],
            "n_iter_": self._n_iter0 + len(self._losses),
            "loss_curve_": curve,
        }
        if curve:
            attrs["loss_"] = curve[-1]
        return attrs

    def __call__(
        self, n_iter: int, loss: float, validation_score: float | None, last: bool
    ) -> bool:
        if self._print is not None:
            self._print(n_iter, loss, validation_score)
        self._losses.append(np.float64(loss))
        stop = self._end(self._snapshot)
        if not stop and not last:
            self._begin(self._snapshot)
        return stop


class IterationTasks(_Subtasks):
    """One subtask per L-BFGS iteration, driven by scipy's ``callback``.

    As scikit-learn's ``LogisticRegression`` bridges it: the first subtask begins at the
    initial weights; scipy's callback ends one and begins the next; ``close`` ends the
    last, never run.

    A callback asking to stop raises ``StopIteration``, which scipy's L-BFGS-B takes as a
    stop after that iteration; ``stopped`` then says so.
    """

    def __init__(
        self,
        est: Any,
        root: tuple[CallbackContext, dict[str, Any] | None],
        X: Any,
        y: Any,
        unpack: Callable[[npt.NDArray[Any]], dict[str, Any]],
        x0: npt.NDArray[Any],
    ) -> None:
        super().__init__(est, root, X, y, "lbfgs-iter")
        self._unpack = unpack
        self.stopped = False
        self._begin(lambda: self._unpack(x0))

    def __call__(self, intermediate_result: Any) -> None:
        x = np.array(intermediate_result.x, copy=True)
        if self._end(lambda: self._unpack(x)):
            self.stopped = True
            raise StopIteration
        self._begin(lambda: self._unpack(x))
