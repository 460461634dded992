//! Parameters live in one flat buffer per model; each block owns a contiguous range and
//! carves it into named pieces in a fixed order (documented with each block's shape).
//! Gradients use the same layout, so a block's backward adds into the matching range.

use super::real::Real;
use rand::Rng;

/// Takes consecutive named pieces out of a parameter slice.
pub struct Carve<'a, T> {
    rest: &'a [T],
}

impl<'a, T> Carve<'a, T> {
    pub fn new(p: &'a [T]) -> Self {
        Carve { rest: p }
    }
    pub fn take(&mut self, len: usize) -> &'a [T] {
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        head
    }
    /// Panics if the layout did not use the whole slice: a layout bug, never user input.
    pub fn done(self) {
        assert!(
            self.rest.is_empty(),
            "parameter layout left {} values unused",
            self.rest.len()
        );
    }
}

/// [`Carve`] over a mutable slice (gradients, initialisation).
pub struct CarveMut<'a, T> {
    rest: &'a mut [T],
}

impl<'a, T> CarveMut<'a, T> {
    pub fn new(p: &'a mut [T]) -> Self {
        CarveMut { rest: p }
    }
    pub fn take(&mut self, len: usize) -> &'a mut [T] {
        let rest = std::mem::take(&mut self.rest);
        let (head, tail) = rest.split_at_mut(len);
        self.rest = tail;
        head
    }
    pub fn done(self) {
        assert!(
            self.rest.is_empty(),
            "parameter layout left {} values unused",
            self.rest.len()
        );
    }
}

/// Glorot-uniform initialisation of a `fan_in × fan_out` weight.
pub fn glorot<T: Real>(w: &mut [T], fan_in: usize, fan_out: usize, rng: &mut impl Rng) {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    for v in w.iter_mut() {
        *v = T::c(rng.random_range(-a..a));
    }
}

pub fn fill<T: Real>(w: &mut [T], value: f64) {
    for v in w.iter_mut() {
        *v = T::c(value);
    }
}
