//! Multi-layer perceptrons (filled in by the MLP work).
