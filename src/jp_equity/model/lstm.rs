//! The temporal block's LSTM (MODEL.md block 3): one layer over each stock's `t` steps,
//! zero initial state, every step's hidden state returned.
//!
//! For step τ of stock s, with `x_τ` its input row (`din`) and `h_{τ−1}`, `c_{τ−1}` the
//! previous hidden and cell states (`h`, zero at τ = 0):
//!
//! ```text
//! z_τ = x_τ·w_x + h_{τ−1}·w_h + b                 (4h: gate blocks i, f, g, o in that order)
//! i = σ(z_τ[0..h])   f = σ(z_τ[h..2h])   g = tanh(z_τ[2h..3h])   o = σ(z_τ[3h..4h])
//! c_τ = f ⊙ c_{τ−1} + i ⊙ g
//! h_τ = o ⊙ tanh(c_τ)
//! ```
//!
//! Batching: the input projection `x·w_x + b` of all `n·t` rows is one matmul; each step's
//! recurrent product is one `[n×h]·[h×4h]` matmul over a contiguous buffer of that step's
//! rows (the cache holds states time-major, `[t×n×·]`, for this reason). The element-wise
//! gate maths runs in parallel over stocks, each stock writing only its own rows, so the
//! result is bit-identical at any thread count.
//!
//! Precision: the CPU reference keeps every value, the cell state included, in `T`. The
//! CUDA kernels store activations in fp16 but keep the cell state `c` (and its gradient
//! through time) in fp32, as MODEL.md requires; gate pre-activations accumulate in fp32.

use super::layers::sigmoid;
use super::linalg;
use super::params::{Carve, CarveMut, fill, glorot};
use super::real::Real;
use rayon::prelude::*;

/// Stocks per rayon task in the element-wise gate loops. Fixed; the results do not depend
/// on it (each stock's values are computed by the same scalar code in the same order).
const STOCKS_PER_TASK: usize = 16;

/// Shape of the LSTM: `din` input channels, `h` hidden units.
///
/// Parameter pieces, in order:
/// 1. `w_x`: `din × 4h` (input-major), gate columns `i, f, g, o`, each `h` wide;
/// 2. `w_h`: `h × 4h`, same column order;
/// 3. `b`: `4h`, same column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmShape {
    /// Input channels per step.
    pub din: usize,
    /// Hidden units (and the width of the cell state).
    pub h: usize,
}

impl LstmShape {
    /// Number of parameters: `din·4h + h·4h + 4h`.
    pub fn n_params(&self) -> usize {
        (self.din + self.h + 1) * 4 * self.h
    }

    /// Initialises the pieces (order as on [`LstmShape`]): `w_x` Glorot-uniform with
    /// fan-in `din` and fan-out `4h`; `w_h` Glorot-uniform with fan-in `h` and fan-out
    /// `4h`; `b` zero except the forget gate's block `b[h..2h]`, which is 1.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        assert_eq!(
            p.len(),
            self.n_params(),
            "lstm init: params are not {} values",
            self.n_params()
        );
        let h4 = 4 * self.h;
        let mut c = CarveMut::new(p);
        glorot(c.take(self.din * h4), self.din, h4, rng);
        glorot(c.take(self.h * h4), self.h, h4, rng);
        let b = c.take(h4);
        fill(b, 0.0);
        fill(&mut b[self.h..2 * self.h], 1.0);
        c.done();
    }
}

/// What [`lstm_backward`] needs from [`lstm_forward`].
#[derive(Debug, Clone, Default)]
pub struct LstmCache<T> {
    /// Stocks in the batch.
    pub n: usize,
    /// Steps per stock.
    pub t: usize,
    /// The input, `[n×t×din]` (stock-major).
    pub x: Vec<T>,
    /// Activated gates `i, f, g, o` per step, `[t×n×4h]` (time-major).
    pub gates: Vec<T>,
    /// Cell states `c_τ`, `[t×n×h]` (time-major).
    pub c: Vec<T>,
    /// Hidden states `h_τ`, `[t×n×h]` (time-major).
    pub hs: Vec<T>,
}

/// Splits the flat parameters into `(w_x, w_h, b)`.
fn carve<'a, T: Real>(s: &LstmShape, p: &'a [T]) -> (&'a [T], &'a [T], &'a [T]) {
    assert_eq!(
        p.len(),
        s.n_params(),
        "lstm: params are not {} values",
        s.n_params()
    );
    let h4 = 4 * s.h;
    let mut c = Carve::new(p);
    let w_x = c.take(s.din * h4);
    let w_h = c.take(s.h * h4);
    let b = c.take(h4);
    c.done();
    (w_x, w_h, b)
}

/// LSTM forward: `x` is `[n×t×din]`; returns the hidden states `h_τ` of every step,
/// `[n×t×h]` (stock-major), and the cache. Zero initial `h` and `c`; one layer. The maths
/// is in the module documentation.
pub fn lstm_forward<T: Real>(
    s: &LstmShape,
    p: &[T],
    x: &[T],
    n: usize,
    t: usize,
) -> (Vec<T>, LstmCache<T>) {
    let (din, h) = (s.din, s.h);
    let h4 = 4 * h;
    let (w_x, w_h, b) = carve(s, p);
    assert_eq!(x.len(), n * t * din, "lstm: x is not {n}×{t}×{din}");

    // Input projection of every (stock, step) row at once: [n×t×4h], stock-major.
    let xp = linalg::linear(x, w_x, b, n * t, din, h4);

    let nh = n * h;
    let mut gates = vec![T::zero(); t * n * h4];
    let mut cs = vec![T::zero(); t * nh];
    let mut hs = vec![T::zero(); t * nh];
    for tau in 0..t {
        let z = &mut gates[tau * n * h4..(tau + 1) * n * h4];
        for st in 0..n {
            let row = (st * t + tau) * h4;
            z[st * h4..(st + 1) * h4].copy_from_slice(&xp[row..row + h4]);
        }
        let (h_done, h_rest) = hs.split_at_mut(tau * nh);
        let (c_done, c_rest) = cs.split_at_mut(tau * nh);
        let h_now = &mut h_rest[..nh];
        let c_now = &mut c_rest[..nh];
        let c_prev: Option<&[T]> = if tau > 0 {
            let hp = &h_done[(tau - 1) * nh..];
            linalg::matmul_acc(hp, w_h, n, h, h4, z);
            Some(&c_done[(tau - 1) * nh..])
        } else {
            None
        };
        z.par_chunks_mut(h4)
            .zip(c_now.par_chunks_mut(h))
            .zip(h_now.par_chunks_mut(h))
            .enumerate()
            .with_min_len(STOCKS_PER_TASK)
            .for_each(|(st, ((zr, cr), hr))| {
                for j in 0..h {
                    let i = sigmoid(zr[j]);
                    let f = sigmoid(zr[h + j]);
                    let g = zr[2 * h + j].tanh();
                    let o = sigmoid(zr[3 * h + j]);
                    zr[j] = i;
                    zr[h + j] = f;
                    zr[2 * h + j] = g;
                    zr[3 * h + j] = o;
                    let cp = c_prev.map_or(T::zero(), |c| c[st * h + j]);
                    let c = f * cp + i * g;
                    cr[j] = c;
                    hr[j] = o * c.tanh();
                }
            });
    }

    // Hidden states back to stock-major.
    let mut y = vec![T::zero(); n * t * h];
    for tau in 0..t {
        for st in 0..n {
            let src = tau * nh + st * h;
            let dst = (st * t + tau) * h;
            y[dst..dst + h].copy_from_slice(&hs[src..src + h]);
        }
    }
    let cache = LstmCache {
        n,
        t,
        x: x.to_vec(),
        gates,
        c: cs,
        hs,
    };
    (y, cache)
}

/// LSTM backward (through time): `dy` is the gradient on every step's hidden state,
/// `[n×t×h]`. Adds the parameter gradients into `g` (layout of [`LstmShape`]) and returns
/// `dx`, `[n×t×din]`.
///
/// Going back from τ = t−1 with `dh_{t}` = `dc_{t}` = 0 carried in from the future:
///
/// ```text
/// dh  = dy_τ + dh_carry              dc = dc_carry + dh ⊙ o ⊙ (1 − tanh²(c_τ))
/// dz_o = dh ⊙ tanh(c_τ) ⊙ o(1−o)     dz_i = dc ⊙ g ⊙ i(1−i)
/// dz_f = dc ⊙ c_{τ−1} ⊙ f(1−f)       dz_g = dc ⊙ i ⊙ (1−g²)
/// dc_carry ← dc ⊙ f                  dh_carry ← dz_τ·w_hᵀ
/// ```
///
/// then `dw_h += Σ_τ≥1 h_{τ−1}ᵀ·dz_τ` (one matmul over the `(t−1)·n` time-major rows),
/// `dw_x += xᵀ·dz`, `db += Σ dz`, `dx = dz·w_xᵀ` (over all `n·t` rows). Weight gradients go
/// through [`linalg::matmul_at_acc`], so they are deterministic.
pub fn lstm_backward<T: Real>(
    s: &LstmShape,
    p: &[T],
    cache: &LstmCache<T>,
    dy: &[T],
    g: &mut [T],
) -> Vec<T> {
    let (din, h) = (s.din, s.h);
    let h4 = 4 * h;
    let (n, t) = (cache.n, cache.t);
    let nh = n * h;
    let (w_x, w_h, _) = carve(s, p);
    assert_eq!(dy.len(), n * t * h, "lstm backward: dy is not {n}×{t}×{h}");
    assert_eq!(
        g.len(),
        s.n_params(),
        "lstm backward: grads are not {} values",
        s.n_params()
    );
    assert_eq!(
        cache.x.len(),
        n * t * din,
        "lstm backward: cache does not match the shape"
    );
    assert_eq!(
        cache.gates.len(),
        t * n * h4,
        "lstm backward: cache does not match the shape"
    );
    let mut gc = CarveMut::new(g);
    let gw_x = gc.take(din * h4);
    let gw_h = gc.take(h * h4);
    let gb = gc.take(h4);
    gc.done();

    // Pre-activation gradients, time-major (for w_h) and stock-major (for w_x, b, dx).
    let mut dz_tm = vec![T::zero(); t * n * h4];
    let mut dz_sm = vec![T::zero(); n * t * h4];
    let mut dh_carry = vec![T::zero(); nh];
    let mut dc_carry = vec![T::zero(); nh];
    for tau in (0..t).rev() {
        let gates = &cache.gates[tau * n * h4..(tau + 1) * n * h4];
        let c_now = &cache.c[tau * nh..(tau + 1) * nh];
        let c_prev: Option<&[T]> = (tau > 0).then(|| &cache.c[(tau - 1) * nh..tau * nh]);
        let dz = &mut dz_tm[tau * n * h4..(tau + 1) * n * h4];
        let dh_in = &dh_carry;
        dz.par_chunks_mut(h4)
            .zip(dc_carry.par_chunks_mut(h))
            .enumerate()
            .with_min_len(STOCKS_PER_TASK)
            .for_each(|(st, (dzr, dcr))| {
                let gr = &gates[st * h4..(st + 1) * h4];
                for j in 0..h {
                    let (i, f, gg, o) = (gr[j], gr[h + j], gr[2 * h + j], gr[3 * h + j]);
                    let tc = c_now[st * h + j].tanh();
                    let cp = c_prev.map_or(T::zero(), |c| c[st * h + j]);
                    let dh = dy[(st * t + tau) * h + j] + dh_in[st * h + j];
                    let dc = dcr[j] + dh * o * (T::one() - tc * tc);
                    dzr[j] = dc * gg * i * (T::one() - i);
                    dzr[h + j] = dc * cp * f * (T::one() - f);
                    dzr[2 * h + j] = dc * i * (T::one() - gg * gg);
                    dzr[3 * h + j] = dh * tc * o * (T::one() - o);
                    dcr[j] = dc * f;
                }
            });
        if tau > 0 {
            dh_carry.fill(T::zero());
            linalg::matmul_bt_acc(dz, w_h, n, h, h4, &mut dh_carry);
        }
        for st in 0..n {
            let dst = (st * t + tau) * h4;
            dz_sm[dst..dst + h4].copy_from_slice(&dz[st * h4..(st + 1) * h4]);
        }
    }

    if t > 1 {
        let m = (t - 1) * n;
        linalg::matmul_at_acc(&cache.hs[..m * h], &dz_tm[n * h4..], m, h, h4, gw_h);
    }
    let mut dx = vec![T::zero(); n * t * din];
    linalg::linear_backward(
        &cache.x,
        w_x,
        &dz_sm,
        n * t,
        din,
        h4,
        gw_x,
        Some(gb),
        Some(&mut dx),
    );
    dx
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{
        assert_close_grads, numeric_grad, on_threads, rand_f32, rand_vec,
    };
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn lstm_gradients() {
        let s = LstmShape { din: 3, h: 4 };
        let (n, t) = (2, 4);
        let p = rand_vec(s.n_params(), 11, 0.8);
        let x = rand_vec(n * t * s.din, 12, 1.0);
        let r = rand_vec(n * t * s.h, 13, 1.0);
        let (_, cache) = lstm_forward(&s, &p, &x, n, t);
        // Start the gradient at 1 to check that backward adds rather than overwrites.
        let mut g = vec![1.0; s.n_params()];
        let dx = lstm_backward(&s, &p, &cache, &r, &mut g);
        for v in g.iter_mut() {
            *v -= 1.0;
        }
        let ng = numeric_grad(&p, |p| dot(&lstm_forward(&s, p, &x, n, t).0, &r));
        let h4 = 4 * s.h;
        let mut a = Carve::new(&g[..]);
        let mut b = Carve::new(&ng[..]);
        for (name, len) in [("w_x", s.din * h4), ("w_h", s.h * h4), ("b", h4)] {
            assert_close_grads(name, a.take(len), b.take(len));
        }
        a.done();
        b.done();
        let nx = numeric_grad(&x, |x| dot(&lstm_forward(&s, &p, x, n, t).0, &r));
        assert_close_grads("x", &dx, &nx);
    }

    #[test]
    fn lstm_matches_a_scalar_recurrence() {
        // One stock, one unit, one input: the equations written out by hand.
        let s = LstmShape { din: 1, h: 1 };
        let p = [
            0.3, -0.2, 0.5, 0.7, 0.4, 0.1, -0.6, 0.2, 0.05, 1.0, -0.1, 0.2,
        ];
        let x = [0.9, -0.4, 0.3];
        let (y, _) = lstm_forward(&s, &p, &x, 1, 3);
        let sg = |v: f64| 1.0 / (1.0 + (-v).exp());
        let (mut hp, mut cp) = (0.0, 0.0);
        for (tau, xv) in x.iter().enumerate() {
            let z: Vec<f64> = (0..4)
                .map(|k| xv * p[k] + hp * p[4 + k] + p[8 + k])
                .collect();
            let c = sg(z[1]) * cp + sg(z[0]) * z[2].tanh();
            let hv = sg(z[3]) * c.tanh();
            assert!(
                (y[tau] - hv).abs() < 1e-12,
                "step {tau}: {} vs {hv}",
                y[tau]
            );
            (hp, cp) = (hv, c);
        }
    }

    #[test]
    fn init_sets_the_forget_bias() {
        let s = LstmShape { din: 3, h: 4 };
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(1));
        let b = &p[(s.din + s.h) * 4 * s.h..];
        for (k, v) in b.iter().enumerate() {
            let want = if (s.h..2 * s.h).contains(&k) {
                1.0
            } else {
                0.0
            };
            assert_eq!(*v, want, "b[{k}]");
        }
        let a = (6.0f32 / (s.h + 4 * s.h) as f32).sqrt();
        let w_h = &p[s.din * 4 * s.h..(s.din + s.h) * 4 * s.h];
        assert!(w_h.iter().all(|v| v.abs() <= a) && w_h.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn lstm_is_causal() {
        let s = LstmShape { din: 3, h: 5 };
        let (n, t) = (3, 6);
        let p = rand_vec(s.n_params(), 21, 0.8);
        let x = rand_vec(n * t * s.din, 22, 1.0);
        let (y0, _) = lstm_forward(&s, &p, &x, n, t);
        for tau in 0..t {
            let mut x1 = x.clone();
            for st in 0..n {
                for c in 0..s.din {
                    x1[(st * t + tau) * s.din + c] += 0.5;
                }
            }
            let (y1, _) = lstm_forward(&s, &p, &x1, n, t);
            for st in 0..n {
                for u in 0..t {
                    let a = &y0[(st * t + u) * s.h..(st * t + u + 1) * s.h];
                    let b = &y1[(st * t + u) * s.h..(st * t + u + 1) * s.h];
                    if u < tau {
                        assert_eq!(a, b, "stock {st} step {u} changed when step {tau} moved");
                    } else if u == tau {
                        assert_ne!(a, b, "stock {st} step {u} ignored its own input");
                    }
                }
            }
        }
    }

    #[test]
    fn lstm_is_identical_at_any_thread_count() {
        let s = LstmShape { din: 48, h: 64 };
        let (n, t) = (300, 20);
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(5));
        let x: Vec<f32> = rand_f32(n * t * s.din, 6, 1.0);
        let dy: Vec<f32> = rand_f32(n * t * s.h, 7, 1.0);
        let run = |threads| {
            on_threads(threads, || {
                let (y, cache) = lstm_forward(&s, &p, &x, n, t);
                let mut g = vec![0f32; s.n_params()];
                let dx = lstm_backward(&s, &p, &cache, &dy, &mut g);
                (y, g, dx)
            })
        };
        let one = run(1);
        assert!(one.1.iter().any(|v| *v != 0.0));
        assert_eq!(one, run(2));
    }
}
