"""oxlearn: scikit-learn-compatible estimators whose hot paths run in Rust.

Drop-in replacements for scikit-learn's nearest-neighbour and multi-layer perceptron
estimators: same parameters, defaults, fitted attributes, warnings and errors, with the
distance search and the network training compiled to native code.
"""

from oxlearn import neighbors, neural_network
from oxlearn._convert import from_sklearn, to_sklearn
from oxlearn._oxlearn import __version__, build_info
from oxlearn._patch import patch_sklearn, sklearn_is_patched, unpatch_sklearn

__all__ = [
    "__version__",
    "build_info",
    "from_sklearn",
    "neighbors",
    "neural_network",
    "patch_sklearn",
    "sklearn_is_patched",
    "to_sklearn",
    "unpatch_sklearn",
]
