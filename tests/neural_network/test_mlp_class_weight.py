"""class_weight for MLPClassifier: scikit-learn's compute_sample_weight rule, bit for bit."""

import numpy as np
import pytest
from oxlearn import to_sklearn
from oxlearn.neural_network import MLPClassifier
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import recall_score
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X_DIG, Y_DIG = load_digits(return_X_y=True)
X_DIG, Y_DIG = X_DIG[:400] / 16, Y_DIG[:400]
PARAMS = {"hidden_layer_sizes": (16,), "max_iter": 15, "random_state": 0}


def _same_weights(a, b):
    for x, y in zip([*a.coefs_, *a.intercepts_], [*b.coefs_, *b.intercepts_], strict=True):
        assert x.tobytes() == y.tobytes()
    assert a.loss_ == b.loss_


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize(
    "class_weight", ["balanced", {0: 3.0, 1: 0.5, 7: 2.0}], ids=["balanced", "dict"]
)
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_equals_the_explicit_sample_weight_fit_bit_for_bit(
    solver, class_weight, with_sample_weight
):
    sw = np.linspace(0.5, 1.5, len(Y_DIG)) if with_sample_weight else None
    weighted = MLPClassifier(solver=solver, class_weight=class_weight, **PARAMS)
    weighted.fit(X_DIG, Y_DIG, sample_weight=sw)
    explicit_sw = compute_sample_weight(class_weight, Y_DIG)
    if sw is not None:
        explicit_sw = sw * explicit_sw
    explicit = MLPClassifier(solver=solver, **PARAMS).fit(X_DIG, Y_DIG, sample_weight=explicit_sw)
    _same_weights(weighted, explicit)


def test_default_none_changes_nothing():
    assert MLPClassifier().get_params()["class_weight"] is None
    a = MLPClassifier(**PARAMS).fit(X_DIG, Y_DIG)
    b = MLPClassifier(class_weight=None, **PARAMS).fit(X_DIG, Y_DIG)
    _same_weights(a, b)
    assert clone(MLPClassifier(class_weight="balanced")).class_weight == "balanced"


def _rows_weights(class_weight, classes, y):
    """Each row's weight, ``compute_class_weight`` over all the classes (SGDClassifier's rule)."""
    return compute_class_weight(class_weight, classes=classes, y=y)[np.searchsorted(classes, y)]


@pytest.mark.parametrize(
    "class_weight",
    [{0: 3.0, 1: 0.5, 7: 2.0}, {1: 3.0, 9: 0.25}],
    ids=["dict", "dict-leaving-out-classes"],
)
def test_partial_fit_reads_a_dict_against_all_the_classes(class_weight):
    classes = np.unique(Y_DIG)
    a = MLPClassifier(class_weight=class_weight, **PARAMS)
    b = MLPClassifier(**PARAMS)
    for batch in np.array_split(np.arange(len(Y_DIG)), 4):
        a.partial_fit(X_DIG[batch], Y_DIG[batch], classes=classes)
        sw = _rows_weights(class_weight, classes, Y_DIG[batch])
        b.partial_fit(X_DIG[batch], Y_DIG[batch], classes=classes, sample_weight=sw)
    _same_weights(a, b)


def test_partial_fit_dict_may_leave_out_a_class_of_the_call_as_sgd_does():
    # A dict naming only some classes: the others weigh 1, whichever classes a call holds.
    labels = np.array(["setosa", "versicolor", "virginica"])
    y = labels[np.repeat([0, 1, 2], 20)]
    X = np.random.default_rng(0).random((60, 4))
    weights = {"versicolor": 3.0, "virginica": 0.5}
    a = MLPClassifier(class_weight=weights, **PARAMS).partial_fit(X[:30], y[:30], classes=labels)
    sw = np.where(y[:30] == "versicolor", 3.0, 1.0)
    b = MLPClassifier(**PARAMS).partial_fit(X[:30], y[:30], classes=labels, sample_weight=sw)
    _same_weights(a, b)


def test_partial_fit_balanced_weighs_each_call_over_all_the_classes():
    classes = np.unique(Y_DIG)
    # One call with every class: the weights of compute_sample_weight, as fit uses.
    a = MLPClassifier(class_weight="balanced", **PARAMS)
    a.partial_fit(X_DIG, Y_DIG, classes=classes)
    sw = compute_sample_weight("balanced", Y_DIG)
    b = MLPClassifier(**PARAMS).partial_fit(X_DIG, Y_DIG, classes=classes, sample_weight=sw)
    _same_weights(a, b)
    # Calls holding some classes only: n_rows / (n_classes * count) with that call's counts.
    c = MLPClassifier(class_weight="balanced", **PARAMS)
    d = MLPClassifier(**PARAMS)
    for part in (Y_DIG < 4, Y_DIG >= 4):
        Xp, yp = X_DIG[part], Y_DIG[part]
        c.partial_fit(Xp, yp, classes=classes)
        counts = np.bincount(yp, minlength=len(classes)).astype(np.float64)
        sw = np.array([len(yp) / (len(classes) * counts[label]) for label in yp])
        d.partial_fit(Xp, yp, classes=classes, sample_weight=sw)
    _same_weights(c, d)


def test_partial_fit_multilabel_takes_each_outputs_zero_and_one_as_its_classes():
    Y = np.column_stack([Y_DIG % 2, Y_DIG < 3])
    half = slice(0, len(Y) // 2)
    a = MLPClassifier(class_weight="balanced", **PARAMS).partial_fit(
        X_DIG[half], Y[half], classes=[0, 1]
    )
    counts = [np.bincount(col.astype(int), minlength=2) for col in Y[half].T]
    sw = np.prod(
        [
            len(col) / (2 * c.astype(np.float64))[col.astype(int)]
            for col, c in zip(Y[half].T, counts, strict=True)
        ],
        axis=0,
    )
    b = MLPClassifier(**PARAMS).partial_fit(X_DIG[half], Y[half], classes=[0, 1], sample_weight=sw)
    _same_weights(a, b)


def test_partial_fit_without_classes_gives_scikit_learns_error():
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier(class_weight={0: 2.0}).partial_fit(X_DIG, Y_DIG)


def test_a_wrong_sample_weight_length_gets_scikit_learns_message():
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(10,\), expected \(400,\)"):
        MLPClassifier(class_weight="balanced").fit(X_DIG, Y_DIG, sample_weight=np.ones(10))


def test_multilabel_follows_scikit_learns_multi_output_rule():
    Y = np.column_stack([Y_DIG % 2, Y_DIG < 3])
    a = MLPClassifier(class_weight="balanced", **PARAMS).fit(X_DIG, Y)
    b = MLPClassifier(**PARAMS).fit(X_DIG, Y, sample_weight=compute_sample_weight("balanced", Y))
    _same_weights(a, b)
    per_output = [{0: 1.0, 1: 2.0}, {False: 1.0, True: 4.0}]
    c = MLPClassifier(class_weight=per_output, **PARAMS).fit(X_DIG, Y)
    d = MLPClassifier(**PARAMS).fit(X_DIG, Y, sample_weight=compute_sample_weight(per_output, Y))
    _same_weights(c, d)
    with pytest.raises(ValueError, match="list of dicts"):
        MLPClassifier(class_weight={0: 1.0, 1: 2.0}, **PARAMS).fit(X_DIG, Y)


def test_bad_class_weight_is_a_parameter_error():
    with pytest.raises(InvalidParameterError, match="class_weight"):
        MLPClassifier(class_weight="even").fit(X_DIG, Y_DIG)


def test_balanced_weights_raise_the_minority_recall():
    X, y = make_classification(
        n_samples=2000, weights=[0.9, 0.1], class_sep=0.6, flip_y=0.02, random_state=0
    )
    train, test = slice(0, 1500), slice(1500, None)
    params = {"hidden_layer_sizes": (16,), "max_iter": 300, "random_state": 0}
    plain = MLPClassifier(**params).fit(X[train], y[train])
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X[train], y[train])
    recall_plain = recall_score(y[test], plain.predict(X[test]))
    recall_balanced = recall_score(y[test], balanced.predict(X[test]))
    assert recall_balanced > recall_plain + 0.05, (recall_plain, recall_balanced)


def test_to_sklearn_drops_only_class_weight_and_says_so():
    est = MLPClassifier(class_weight="balanced", **PARAMS).fit(X_DIG, Y_DIG)
    with pytest.warns(UserWarning, match="refitting it trains without class_weight"):
        theirs = to_sklearn(est)
    assert "class_weight" not in theirs.get_params()
    assert "class_weight" not in vars(theirs)
    np.testing.assert_array_equal(theirs.predict(X_DIG), est.predict(X_DIG))
