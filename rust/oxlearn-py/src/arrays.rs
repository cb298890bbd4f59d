//! Borrowing NumPy arrays for the kernels: the one place that checks an argument's dtype,
//! dimensions, contiguity and borrow state, and says in a Python exception what to fix.
//!
//! rust-numpy's own extraction panics (a `PanicException` that `except Exception` misses)
//! when an array is already borrowed for writing, as the weights an MLP fit trains on
//! another thread with the GIL released; these helpers raise `ValueError` then.

use ndarray::{Dimension, Ix1, Ix2};
use numpy::{
    Element, PyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1,
    PyReadonlyArray2, PyReadwriteArray, PyReadwriteArray1, PyReadwriteArray2,
    PyUntypedArrayMethods,
};
use oxlearn_core::Real;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A read-only array argument of any shape and element type (the neighbour kernels take
/// their arguments as these).
pub struct ReadOnly<'py, T: Element, D: Dimension>(PyReadonlyArray<'py, T, D>);

impl<'a, 'py, T: Element + 'a, D: Dimension + 'a> FromPyObject<'a, 'py> for ReadOnly<'py, T, D> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let array = obj.cast::<PyArray<T, D>>()?;
        array.try_readonly().map(ReadOnly).map_err(|e| {
            PyValueError::new_err(format!(
                "an input array is being written by another call ({e}); pass a copy"
            ))
        })
    }
}

impl<'py, T: Element, D: Dimension> std::ops::Deref for ReadOnly<'py, T, D> {
    type Target = PyReadonlyArray<'py, T, D>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// `obj` borrowed as a read-only 2-D array of `T`: `None` when it is not one, an error when
/// it cannot be borrowed (see [`ReadOnly`]).
pub fn matrix_if<'py, T: Element>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<ReadOnly<'py, T, Ix2>>> {
    if obj.cast::<PyArray2<T>>().is_err() {
        return Ok(None);
    }
    obj.extract().map(Some)
}

/// The training dtype of a call.
#[derive(Clone, Copy)]
pub enum Dtype {
    F32,
    F64,
}

pub fn dtype_of(x: &Bound<'_, PyAny>, name: &str) -> PyResult<Dtype> {
    if x.cast::<PyArray2<f64>>().is_ok() {
        Ok(Dtype::F64)
    } else if x.cast::<PyArray2<f32>>().is_ok() {
        Ok(Dtype::F32)
    } else {
        Err(PyTypeError::new_err(format!(
            "{name} must be a 2-D float32 or float64 numpy array"
        )))
    }
}

fn type_name<T: Real>() -> &'static str {
    if std::mem::size_of::<T>() == 4 {
        "float32"
    } else {
        "float64"
    }
}

/// The error for an array this call cannot borrow: one it also writes (the same array, or
/// memory shared with it, passed twice) or a read-only one it must write. rust-numpy's
/// `extract` would panic there (a `PanicException` that `except Exception` misses).
fn borrow_error(name: &str, e: &numpy::BorrowError) -> PyErr {
    PyValueError::new_err(format!(
        "{name} cannot be borrowed ({e}): pass arrays that share no memory with the arrays \
         this call writes, and writeable ones where it writes"
    ))
}

/// Borrows an array of the training dtype and of dimension `D`, C-contiguous.
fn read<'py, T: Real + Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    let arr = obj.cast::<PyArray<T, D>>().map_err(|_| {
        let dims = D::NDIM.map_or_else(|| "an".to_owned(), |n| format!("a {n}-D"));
        PyTypeError::new_err(format!(
            "{name} must be {dims} {} numpy array (the training dtype)",
            type_name::<T>()
        ))
    })?;
    let arr = arr.try_readonly().map_err(|e| borrow_error(name, &e))?;
    if !arr.is_c_contiguous() {
        return Err(PyTypeError::new_err(format!("{name} must be C-contiguous")));
    }
    Ok(arr)
}

/// Borrows a 2-D array of the training dtype, C-contiguous.
pub fn read_matrix<'py, T: Real + Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    read(obj, name)
}

/// Borrows a 1-D array of the training dtype, C-contiguous.
pub fn read_vector<'py, T: Real + Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    read(obj, name)
}

pub fn read_matrices<'py, T: Real + Element>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
) -> PyResult<Vec<PyReadonlyArray2<'py, T>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| read_matrix::<T>(o, &format!("{name}[{i}]")))
        .collect()
}

pub fn read_vectors<'py, T: Real + Element>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
) -> PyResult<Vec<PyReadonlyArray1<'py, T>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| read_vector::<T>(o, &format!("{name}[{i}]")))
        .collect()
}

/// Borrows a list of arrays of the training dtype for writing, C-contiguous, and returns
/// them with their flat slices.
fn write_list<'py, T: Real + Element, A>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
    extract: impl Fn(&Bound<'py, PyAny>) -> PyResult<A>,
) -> PyResult<Vec<A>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| {
            extract(o).map_err(|e| {
                PyTypeError::new_err(format!(
                    "{name}[{i}] must be a writeable C-contiguous {} array of the right \
                     dimension, not shared with another argument ({e})",
                    type_name::<T>()
                ))
            })
        })
        .collect()
}

/// Borrows an array of dimension `D` for writing, C-contiguous (the error says why not;
/// [`write_list`] names the argument).
fn write<'py, T: Real + Element, D: Dimension>(
    o: &Bound<'py, PyAny>,
) -> PyResult<PyReadwriteArray<'py, T, D>> {
    let a = o
        .cast::<PyArray<T, D>>()?
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    if a.is_c_contiguous() {
        Ok(a)
    } else {
        Err(PyTypeError::new_err("not C-contiguous"))
    }
}

/// Borrows `coefs` (2-D) and `intercepts` (1-D) style lists: the first `n2` arrays are 2-D,
/// the rest 1-D (scikit-learn's `_pack` order), and returns their flat slices.
pub struct WritableParams<'py, T: Real + Element> {
    two: Vec<PyReadwriteArray2<'py, T>>,
    one: Vec<PyReadwriteArray1<'py, T>>,
}

impl<'py, T: Real + Element> WritableParams<'py, T> {
    pub fn borrow(
        two: &[Bound<'py, PyAny>],
        one: &[Bound<'py, PyAny>],
        name2: &str,
        name1: &str,
    ) -> PyResult<Self> {
        Ok(Self {
            two: write_list::<T, _>(two, name2, write::<T, Ix2>)?,
            one: write_list::<T, _>(one, name1, write::<T, Ix1>)?,
        })
    }

    /// Mixed lists (`opt_first`/`opt_second`): 2-D arrays first, then 1-D, split by ndim.
    pub fn borrow_packed(objs: &[Bound<'py, PyAny>], name: &str) -> PyResult<Self> {
        let split = objs
            .iter()
            .position(|o| o.cast::<PyArray1<T>>().is_ok())
            .unwrap_or(objs.len());
        Ok(Self {
            two: write_list::<T, _>(&objs[..split], name, write::<T, Ix2>)?,
            one: write_list::<T, _>(&objs[split..], name, write::<T, Ix1>)?,
        })
    }

    pub fn slices(&mut self) -> PyResult<Vec<&mut [T]>> {
        let mut out = Vec::with_capacity(self.two.len() + self.one.len());
        for a in &mut self.two {
            out.push(
                a.as_slice_mut()
                    .map_err(|e| PyTypeError::new_err(e.to_string()))?,
            );
        }
        for a in &mut self.one {
            out.push(
                a.as_slice_mut()
                    .map_err(|e| PyTypeError::new_err(e.to_string()))?,
            );
        }
        Ok(out)
    }
}

pub fn matrix_slice<'a, T: Real + Element>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyTypeError::new_err(e.to_string()))
}

pub fn vector_slice<'a, T: Real + Element>(a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyTypeError::new_err(e.to_string()))
}
