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


def test_partial_fit_with_a_dict_and_balanced_refused():
    classes = np.unique(Y_DIG)
    balanced = compute_class_weight("balanced", classes=classes, y=Y_DIG)
    weights = dict(zip(classes, balanced, strict=True))
    a = MLPClassifier(class_weight=weights, **PARAMS)
    b = MLPClassifier(**PARAMS)
    for batch in np.array_split(np.arange(len(Y_DIG)), 4):
        a.partial_fit(X_DIG[batch], Y_DIG[batch], classes=classes)
        sw = compute_sample_weight(weights, Y_DIG[batch])
        b.partial_fit(X_DIG[batch], Y_DIG[batch], classes=classes, sample_weight=sw)
    _same_weights(a, b)
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported"):
        MLPClassifier(class_weight="balanced").partial_fit(X_DIG, Y_DIG, classes=classes)


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


def test_to_sklearn_drops_only_class_weight():
    est = MLPClassifier(class_weight="balanced", **PARAMS).fit(X_DIG, Y_DIG)
    theirs = to_sklearn(est)
    assert "class_weight" not in theirs.get_params()
    np.testing.assert_array_equal(theirs.predict(X_DIG), est.predict(X_DIG))
