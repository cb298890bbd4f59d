//! Working buffers whose first value starts a cache line.
//!
//! The training step's register tiles load and store whole AVX-512 vectors (64 bytes) along
//! the rows of the activation, delta and gradient buffers. `Vec` gives only the alignment of
//! the element type (and the allocator 16 bytes), so a buffer could start anywhere in a cache
//! line, and then every vector access straddles two lines. Which buffers did depended on the
//! allocator, so a chunk's speed varied from run to run, and since the chunks of a batch run
//! side by side the slowest set the pace. A [`Buf`] over-allocates by a line and starts at
//! the first boundary inside it, without `unsafe`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::error::{Result, try_filled, try_vec};

/// Bytes of alignment of a [`Buf`]'s first value: a cache line, an AVX-512 vector.
pub const ALIGN: usize = 64;

/// A growable buffer whose first value (if any) is [`ALIGN`]-byte aligned (see the
/// module docs). It dereferences to its values; moving it keeps the alignment, and a clone is
/// aligned again.
pub struct Buf<T> {
    raw: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Clone> Buf<T> {
    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        let extra = ALIGN / size_of::<T>().max(1);
        let raw = vec![value; len + extra];
        // `align_offset` may in principle decline (usize::MAX); the buffer then stays valid,
        // only unaligned.
        let off = raw.as_ptr().align_offset(ALIGN).min(extra);
        Self { raw, off, len }
    }

    /// [`Buf::filled`], or [`crate::CoreError::OutOfMemory`] naming `what` when the
    /// allocation fails.
    pub fn try_filled(len: usize, value: T, what: &str) -> Result<Self> {
        let extra = ALIGN / size_of::<T>().max(1);
        let raw = try_filled(len.saturating_add(extra), value, what)?;
        let off = raw.as_ptr().align_offset(ALIGN).min(extra);
        Ok(Self { raw, off, len })
    }

    /// An empty buffer with room for `room` values, allocated up front but not written
    /// (pages the buffer never uses are never touched): a later [`Buf::resize`] within the
    /// room does not allocate, so a loop that grows the buffer on demand cannot fail there.
    pub fn try_with_room(room: usize, value: T, what: &str) -> Result<Self> {
        let extra = ALIGN / size_of::<T>().max(1);
        let mut raw: Vec<T> = try_vec(room.saturating_add(extra), what)?;
        let off = raw.as_ptr().align_offset(ALIGN).min(extra);
        raw.resize(off, value);
        Ok(Self { raw, off, len: 0 })
    }

    /// Sets the length to `len`, as `Vec::resize`: values kept up to the old length, new ones
    /// set to `value`. Reallocates (aligned again) only when the room is too small.
    pub fn resize(&mut self, len: usize, value: T) {
        if self.off + len <= self.raw.capacity() {
            if self.raw.len() < self.off + len {
                self.raw.resize(self.off + len, value.clone());
            }
            if len > self.len {
                self.raw[self.off + self.len..self.off + len].fill(value);
            }
            self.len = len;
        } else {
            let mut grown = Self::filled(len, value);
            grown[..self.len].clone_from_slice(self);
            *self = grown;
        }
    }

    /// Sets the length to zero (the room is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<T> Default for Buf<T> {
    fn default() -> Self {
        Self {
            raw: Vec::new(),
            off: 0,
            len: 0,
        }
    }
}

impl<T> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.raw[self.off..self.off + self.len]
    }
}

impl<T> DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

impl<T: Clone> Clone for Buf<T> {
    fn clone(&self) -> Self {
        match self.first() {
            Some(v) => {
                let mut c = Self::filled(self.len, v.clone());
                c.clone_from_slice(self);
                c
            }
            None => Self::default(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{ALIGN, Buf};

    /// Whether the first value starts a line (an empty buffer has none).
    fn aligned<T>(b: &Buf<T>) -> bool {
        b.is_empty() || (b.as_ptr() as usize).is_multiple_of(ALIGN)
    }

    #[test]
    fn buffers_start_on_a_line_and_keep_their_values() {
        for len in [0_usize, 1, 3, 15, 16, 17, 100, 1000] {
            let mut b = Buf::filled(len, 1.5_f32);
            assert!(aligned(&b) && b.len() == len && b.iter().all(|&v| v == 1.5));
            let c = b.clone();
            assert!(aligned(&c) && c[..] == b[..]);
            let moved = std::mem::take(&mut b);
            assert!(aligned(&moved) && moved.len() == len && b.is_empty());

            let mut g = Buf::filled(len, 2.0_f64);
            g.iter_mut().enumerate().for_each(|(i, v)| *v = i as f64);
            g.resize(len / 2, 9.0);
            assert!(g.iter().enumerate().all(|(i, &v)| v == i as f64));
            g.resize(len + 40, 7.0);
            assert!(aligned(&g) && g.len() == len + 40);
            assert!(g[..len / 2].iter().enumerate().all(|(i, &v)| v == i as f64));
            assert!(g[len / 2..].iter().all(|&v| v == 7.0));
            g.clear();
            assert!(g.is_empty());
            let mut r = Buf::try_with_room(len, 0.5_f64, "test").unwrap();
            let at = r.raw.as_ptr();
            assert!(aligned(&r) && r.is_empty());
            r.resize(len, 3.0);
            assert!(aligned(&r) && r.len() == len && r.iter().all(|&v| v == 3.0));
            assert_eq!(
                r.raw.as_ptr(),
                at,
                "a resize within the room does not reallocate"
            );
            let t = Buf::try_filled(len, 2.5_f32, "test").unwrap();
            assert!(aligned(&t) && t.len() == len && t.iter().all(|&v| v == 2.5));
            g.resize(3, 4.0);
            assert!(aligned(&g) && g[..] == [4.0, 4.0, 4.0]);
        }
    }
}
