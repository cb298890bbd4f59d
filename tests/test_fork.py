"""Thread pools are cached per thread count; a forked child must rebuild, not hang on them."""

import multiprocessing as mp
import warnings

from oxlearn.neighbors import KNeighborsClassifier
from oxlearn.neural_network import MLPClassifier
from sklearn.datasets import load_digits


def _child_work(queue):  # runs in the forked child
    X, y = load_digits(return_X_y=True)
    pred = KNeighborsClassifier(n_jobs=2).fit(X[:1000], y[:1000]).predict(X[1000:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5 epochs do not converge
        MLPClassifier((32,), max_iter=5, random_state=0).fit(X[:500], y[:500])
    queue.put(pred.tolist())


def test_search_and_training_work_in_a_forked_child(monkeypatch):
    monkeypatch.setenv("OXLEARN_NUM_THREADS", "2")
    X, y = load_digits(return_X_y=True)
    # Build the parent's pools first, so the child inherits cache entries without threads.
    parent_pred = KNeighborsClassifier(n_jobs=2).fit(X[:1000], y[:1000]).predict(X[1000:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier((32,), max_iter=2, random_state=0).fit(X[:500], y[:500])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_work, args=(queue,))
    proc.start()
    child_pred = queue.get(timeout=120)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert child_pred == parent_pred.tolist()
