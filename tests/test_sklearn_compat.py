"""The private scikit-learn names we depend on still resolve and behave as we use them."""

from numbers import Integral

import pytest
from oxlearn import _sklearn_compat as compat


def test_private_names_resolve() -> None:
    for name in compat.__all__:
        assert getattr(compat, name) is not None, name


def test_invalid_parameter_error_is_value_and_type_error() -> None:
    assert issubclass(compat.InvalidParameterError, ValueError)
    assert issubclass(compat.InvalidParameterError, TypeError)


def test_interval_and_str_options_validate() -> None:
    interval = compat.Interval(Integral, 1, None, closed="left")
    assert interval.is_satisfied_by(3)
    assert not interval.is_satisfied_by(0)
    options = compat.StrOptions({"uniform", "distance"})
    assert options.is_satisfied_by("uniform")
    assert not options.is_satisfied_by("nearest")


def test_fit_context_is_a_decorator_factory() -> None:
    decorator = compat._fit_context(prefer_skip_nested_validation=True)
    assert callable(decorator)
    with pytest.raises(TypeError):
        compat._fit_context()  # type: ignore[call-arg]
