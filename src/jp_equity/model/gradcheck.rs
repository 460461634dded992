//! Gradient checks (tests only): central differences in f64 with ε = 1e-6, compared to
//! the hand-written backward pass with a relative tolerance of 1e-3 (MODEL.md).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const EPS: f64 = 1e-6;
pub const RTOL: f64 = 1e-3;
/// Absolute floor: central differences in f64 carry ~1e-10 of rounding at ε = 1e-6,
/// so gradients below this are compared absolutely.
pub const ATOL: f64 = 1e-7;

/// Uniform values in `[-scale, scale]`, deterministic from the seed.
pub fn rand_vec(len: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// `rand_vec` in f32, for the training-precision tests.
pub fn rand_f32(len: usize, seed: u64, scale: f64) -> Vec<f32> {
    rand_vec(len, seed, scale)
        .iter()
        .map(|v| *v as f32)
        .collect()
}

/// Runs `f` on a pool of `threads` threads: results must be bit-identical at any count.
pub fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
        .install(f)
}

/// Central-difference gradient of a scalar function at `x`.
pub fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let v = x[i];
            x[i] = v + EPS;
            let up = f(&x);
            x[i] = v - EPS;
            let down = f(&x);
            x[i] = v;
            (up - down) / (2.0 * EPS)
        })
        .collect()
}

/// Panics naming the first entry where the analytic and numeric gradients disagree.
pub fn assert_close_grads(what: &str, analytic: &[f64], numeric: &[f64]) {
    assert_eq!(
        analytic.len(),
        numeric.len(),
        "{what}: gradient lengths differ"
    );
    let mut any = false;
    for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
        let tol = RTOL * a.abs().max(n.abs()) + ATOL;
        assert!(
            (a - n).abs() <= tol,
            "{what}[{i}]: analytic {a:.9e} vs numeric {n:.9e}"
        );
        any |= n.abs() > 1e-6;
    }
    assert!(
        any || numeric.is_empty(),
        "{what}: every gradient is ~0, the check proves nothing"
    );
}
