"""oxlearn: scikit-learn-compatible estimators whose hot paths run in Rust.

Drop-in replacements for scikit-learn's nearest-neighbour and multi-layer perceptron
estimators: same parameters, defaults, fitted attributes, warnings and errors, with the
distance search and the network training compiled to native code.
"""

from oxlearn import neural_network
from oxlearn._oxlearn import __version__, build_info

__all__ = ["__version__", "build_info", "neural_network"]
