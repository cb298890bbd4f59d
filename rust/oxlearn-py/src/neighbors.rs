//! Bindings of the neighbour kernels (filled in by the neighbours work).

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
