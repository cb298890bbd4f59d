//! Nearest-neighbour search (filled in by the neighbours work).
