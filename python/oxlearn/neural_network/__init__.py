"""Multi-layer perceptrons: scikit-learn's MLPClassifier and MLPRegressor, trained in Rust."""

from oxlearn.neural_network._multilayer_perceptron import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
