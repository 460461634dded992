//! Block 5 of MODEL.md, the quantile heads: per horizon, an MLP `H → H/2 (ReLU) → 5`
//! giving the quantiles [`QUANTILES`] of that horizon's target; the point prediction is
//! the median, index [`MEDIAN`].
//!
//! For horizon `k` and the fused representation `z` (`n × H`):
//!
//! ```text
//! a_k = z·W1_k + b1_k                  (n × H/2, pre-activation)
//! r_k = ReLU(a_k) ⊙ M_k                (M_k the dropout mask, all ones in evaluation)
//! q_k = r_k·W2_k + b2_k                (n × 5)
//! ```
//!
//! and the output interleaves horizons per stock: `q[i, k, j]` at `(i·horizons + k)·5 + j`.

use super::layers::{apply_mask, relu, relu_grad};
use super::linalg;
use super::params::{Carve, CarveMut, fill, glorot};
use super::real::Real;

/// The quantile levels each head predicts, in output order.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];
/// Index of the median (0.5 quantile), the point prediction, in [`QUANTILES`].
pub const MEDIAN: usize = 2;
/// Number of quantiles per head.
pub const NQ: usize = QUANTILES.len();

/// Standard-normal quantiles of [`QUANTILES`]: the initial output biases, because the
/// targets are z-scored across stocks per day (MODEL.md, Sample and batch).
const NORMAL_QUANTILES: [f64; 5] = [
    -1.644_853_626_951_472,
    -0.674_489_750_196_081_7,
    0.0,
    0.674_489_750_196_081_7,
    1.644_853_626_951_472,
];

/// Shape of the heads: input width `h` (H), hidden width `h/2`, `horizons` heads of
/// 5 outputs each.
///
/// Parameters, per horizon `k = 0..horizons` in order, each head contiguous:
/// `w1[h × h/2]`, `b1[h/2]`, `w2[h/2 × 5]`, `b2[5]` (input-major weights, `y = x·W + b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadsShape {
    /// Input width H (the fused representation `z`); the hidden width is `h/2`.
    pub h: usize,
    /// Number of horizons (4 by default: 1, 5, 10, 20 days).
    pub horizons: usize,
}

impl HeadsShape {
    /// Hidden width `h/2` (integer division).
    pub fn hidden(&self) -> usize {
        self.h / 2
    }

    /// Parameters of one head: `h·h/2 + h/2 + h/2·5 + 5`.
    pub fn per_head(&self) -> usize {
        let m = self.hidden();
        self.h * m + m + m * NQ + NQ
    }

    /// Total parameter count: `horizons · per_head()`.
    pub fn n_params(&self) -> usize {
        self.horizons * self.per_head()
    }

    /// Head `k`'s parameters, relative to the heads' block.
    pub fn head_range(&self, k: usize) -> std::ops::Range<usize> {
        k * self.per_head()..(k + 1) * self.per_head()
    }

    /// Head `k`'s output layer, `w2` then `b2`, relative to the heads' block.
    pub fn output_range(&self, k: usize) -> std::ops::Range<usize> {
        self.w2_range(k).start..self.head_range(k).end
    }

    /// Head `k`'s output weights `w2`, relative to the heads' block.
    pub fn w2_range(&self, k: usize) -> std::ops::Range<usize> {
        let m = self.hidden();
        let start = k * self.per_head() + self.h * m + m;
        start..start + m * NQ
    }

    /// Initialises every head: `w1` and `w2` Glorot-uniform, `b1 = 0`, and `b2` set to the
    /// standard-normal quantiles of [`QUANTILES`] (≈ −1.645, −0.674, 0, 0.674, 1.645), so
    /// the untrained heads already predict ordered quantiles of a z-scored target.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        assert_eq!(
            p.len(),
            self.n_params(),
            "heads: parameter slice has the wrong length"
        );
        let (h, m) = (self.h, self.hidden());
        let mut c = CarveMut::new(p);
        for _ in 0..self.horizons {
            glorot(c.take(h * m), h, m, rng);
            fill(c.take(m), 0.0);
            glorot(c.take(m * NQ), m, NQ, rng);
            for (b, v) in c.take(NQ).iter_mut().zip(NORMAL_QUANTILES) {
                *b = T::c(v);
            }
        }
        c.done();
    }
}

/// What [`heads_backward`] needs. Hidden tensors are stored horizon-major
/// (`[horizons × n × h/2]`), unlike the caller's dropout mask (`[n × horizons × h/2]`).
#[derive(Debug, Clone, Default)]
pub struct HeadsCache<T> {
    /// Number of stocks.
    pub n: usize,
    /// The input `z`, `n × h`.
    pub z: Vec<T>,
    /// Pre-activations `a_k`, `[horizons × n × h/2]`.
    pub pre: Vec<T>,
    /// Hidden outputs after ReLU and dropout `r_k`, `[horizons × n × h/2]`.
    pub hidden: Vec<T>,
    /// The dropout mask transposed to `[horizons × n × h/2]`, if any.
    pub mask: Option<Vec<T>>,
}

fn head_params<'a, T>(
    s: &HeadsShape,
    p: &'a [T],
    k: usize,
) -> (&'a [T], &'a [T], &'a [T], &'a [T]) {
    let (h, m) = (s.h, s.hidden());
    let mut c = Carve::new(&p[k * s.per_head()..(k + 1) * s.per_head()]);
    let w1 = c.take(h * m);
    let b1 = c.take(m);
    let w2 = c.take(m * NQ);
    let b2 = c.take(NQ);
    c.done();
    (w1, b1, w2, b2)
}

/// Forward pass of all heads. `z` is `n × h`; `dropout` is an optional mask
/// `[n × horizons × h/2]` (entries 0 or 1/(1−p)) multiplied into the ReLU output.
/// Returns `q`, `[n × horizons × 5]`: `q[i,k,·] = (ReLU(z_i·W1_k + b1_k) ⊙ M[i,k,·])·W2_k + b2_k`.
pub fn heads_forward<T: Real>(
    s: &HeadsShape,
    p: &[T],
    z: &[T],
    n: usize,
    dropout: Option<&[T]>,
) -> (Vec<T>, HeadsCache<T>) {
    let (h, m, hz) = (s.h, s.hidden(), s.horizons);
    assert!(m > 0, "heads: h = {h} gives an empty hidden layer");
    assert_eq!(
        p.len(),
        s.n_params(),
        "heads: parameter slice has the wrong length"
    );
    assert_eq!(z.len(), n * h, "heads: z is not {n}×{h}");
    // Transpose the mask to horizon-major once; the same layout serves the backward pass.
    let mask = dropout.map(|d| {
        assert_eq!(
            d.len(),
            n * hz * m,
            "heads: dropout mask is not {n}×{hz}×{m}"
        );
        let mut t = vec![T::zero(); n * hz * m];
        for i in 0..n {
            for k in 0..hz {
                let src = &d[(i * hz + k) * m..(i * hz + k + 1) * m];
                t[(k * n + i) * m..(k * n + i + 1) * m].copy_from_slice(src);
            }
        }
        t
    });
    let mut pre = Vec::with_capacity(hz * n * m);
    let mut hidden = Vec::with_capacity(hz * n * m);
    let mut q = vec![T::zero(); n * hz * NQ];
    for k in 0..hz {
        let (w1, b1, w2, b2) = head_params(s, p, k);
        let a = linalg::linear(z, w1, b1, n, h, m);
        let mut r: Vec<T> = a.iter().map(|v| relu(*v)).collect();
        if let Some(mk) = &mask {
            apply_mask(&mut r, Some(&mk[k * n * m..(k + 1) * n * m]));
        }
        let qk = linalg::linear(&r, w2, b2, n, m, NQ);
        for i in 0..n {
            q[(i * hz + k) * NQ..(i * hz + k + 1) * NQ].copy_from_slice(&qk[i * NQ..(i + 1) * NQ]);
        }
        pre.extend_from_slice(&a);
        hidden.extend_from_slice(&r);
    }
    (
        q,
        HeadsCache {
            n,
            z: z.to_vec(),
            pre,
            hidden,
            mask,
        },
    )
}

/// Backward pass of [`heads_forward`]: given `dq` (`[n × horizons × 5]`), adds
/// `dW2_k += r_kᵀ·dq_k`, `db2_k += Σ_i dq_k`, `dW1_k += zᵀ·da_k`, `db1_k += Σ_i da_k` into
/// `g` (same layout as the parameters), where `da_k = (dq_k·W2_kᵀ) ⊙ M_k ⊙ 1[a_k > 0]`,
/// and returns `dz = Σ_k da_k·W1_kᵀ` (`n × h`).
pub fn heads_backward<T: Real>(
    s: &HeadsShape,
    p: &[T],
    cache: &HeadsCache<T>,
    dq: &[T],
    g: &mut [T],
) -> Vec<T> {
    let (h, m, hz, n) = (s.h, s.hidden(), s.horizons, cache.n);
    assert_eq!(
        p.len(),
        s.n_params(),
        "heads: parameter slice has the wrong length"
    );
    assert_eq!(
        g.len(),
        s.n_params(),
        "heads: gradient slice has the wrong length"
    );
    assert_eq!(dq.len(), n * hz * NQ, "heads: dq is not {n}×{hz}×{NQ}");
    assert_eq!(
        cache.pre.len(),
        hz * n * m,
        "heads: cache does not match the shape"
    );
    let mut dz = vec![T::zero(); n * h];
    let mut dqk = vec![T::zero(); n * NQ];
    for k in 0..hz {
        let (w1, _, w2, _) = head_params(s, p, k);
        let mut gc = CarveMut::new(&mut g[k * s.per_head()..(k + 1) * s.per_head()]);
        let dw1 = gc.take(h * m);
        let db1 = gc.take(m);
        let dw2 = gc.take(m * NQ);
        let db2 = gc.take(NQ);
        gc.done();
        for i in 0..n {
            dqk[i * NQ..(i + 1) * NQ]
                .copy_from_slice(&dq[(i * hz + k) * NQ..(i * hz + k + 1) * NQ]);
        }
        let range = k * n * m..(k + 1) * n * m;
        let r = &cache.hidden[range.clone()];
        let mut da = vec![T::zero(); n * m];
        linalg::linear_backward(r, w2, &dqk, n, m, NQ, dw2, Some(db2), Some(&mut da));
        let a = &cache.pre[range.clone()];
        match &cache.mask {
            Some(mk) => {
                for ((d, av), mv) in da.iter_mut().zip(a).zip(&mk[range]) {
                    *d *= relu_grad(*av) * *mv;
                }
            }
            None => {
                for (d, av) in da.iter_mut().zip(a) {
                    *d *= relu_grad(*av);
                }
            }
        }
        linalg::linear_backward(&cache.z, w1, &da, n, h, m, dw1, Some(db1), Some(&mut dz));
    }
    dz
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{assert_close_grads, numeric_grad, rand_vec};
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(dropout: bool) {
        let s = HeadsShape { h: 6, horizons: 3 };
        let n = 4;
        let m = s.hidden();
        let mut p = vec![0.0; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(1));
        // Random biases too, so every piece (b1 included) is exercised away from init.
        for (v, r) in p.iter_mut().zip(rand_vec(s.n_params(), 2, 0.3)) {
            *v += r;
        }
        let z = rand_vec(n * s.h, 3, 1.0);
        let mask: Option<Vec<f64>> = dropout.then(|| {
            rand_vec(n * s.horizons * m, 4, 1.0)
                .iter()
                .map(|v| if *v < -0.5 { 0.0 } else { 1.0 / 0.75 })
                .collect()
        });
        let r = rand_vec(n * s.horizons * NQ, 5, 1.0);
        let loss = |p: &[f64], z: &[f64]| -> f64 {
            let (q, _) = heads_forward(&s, p, z, n, mask.as_deref());
            q.iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let (q, cache) = heads_forward(&s, &p, &z, n, mask.as_deref());
        assert_eq!(q.len(), n * s.horizons * NQ);
        let mut g = vec![0.0; s.n_params()];
        let dz = heads_backward(&s, &p, &cache, &r, &mut g);
        let tag = if dropout { "dropout" } else { "plain" };
        assert_close_grads(
            &format!("heads dz ({tag})"),
            &dz,
            &numeric_grad(&z, |z| loss(&p, z)),
        );
        let num = numeric_grad(&p, |p| loss(p, &z));
        // Every piece of every head, by name.
        let names = ["w1", "b1", "w2", "b2"];
        let lens = [s.h * m, m, m * NQ, NQ];
        let mut off = 0;
        for k in 0..s.horizons {
            for (name, len) in names.iter().zip(lens) {
                assert_close_grads(
                    &format!("heads {name}[{k}] ({tag})"),
                    &g[off..off + len],
                    &num[off..off + len],
                );
                off += len;
            }
        }
        assert_eq!(off, s.n_params());
    }

    #[test]
    fn heads_gradient_without_dropout() {
        check(false);
    }

    #[test]
    fn heads_gradient_with_dropout() {
        check(true);
    }

    #[test]
    fn heads_layout_and_backward_accumulates() {
        let s = HeadsShape { h: 4, horizons: 2 };
        let n = 3;
        let m = s.hidden();
        let p = rand_vec(s.n_params(), 7, 0.5);
        let z = rand_vec(n * s.h, 8, 1.0);
        let (q, cache) = heads_forward(&s, &p, &z, n, None);
        // Direct evaluation of one output: stock 2, horizon 1, quantile 3.
        let (i, k, j) = (2, 1, 3);
        let base = k * s.per_head();
        let (w1, b1) = (
            &p[base..base + s.h * m],
            &p[base + s.h * m..base + s.h * m + m],
        );
        let w2 = &p[base + s.h * m + m..base + s.h * m + m + m * NQ];
        let b2 = &p[base + s.h * m + m + m * NQ..base + s.per_head()];
        let mut want = b2[j];
        for u in 0..m {
            let a: f64 = b1[u]
                + (0..s.h)
                    .map(|c| z[i * s.h + c] * w1[c * m + u])
                    .sum::<f64>();
            want += a.max(0.0) * w2[u * NQ + j];
        }
        assert!((q[(i * s.horizons + k) * NQ + j] - want).abs() < 1e-12);
        // The backward pass adds into g.
        let dq = rand_vec(q.len(), 9, 1.0);
        let mut g1 = vec![0.0; s.n_params()];
        heads_backward(&s, &p, &cache, &dq, &mut g1);
        let mut g2 = g1.clone();
        heads_backward(&s, &p, &cache, &dq, &mut g2);
        for (a, b) in g1.iter().zip(&g2) {
            assert!((2.0 * a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn init_orders_the_quantiles() {
        let s = HeadsShape { h: 64, horizons: 4 };
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(3));
        let z = vec![0f32; 2 * s.h];
        let (q, _) = heads_forward(&s, &p, &z, 2, None);
        for row in q.chunks(NQ) {
            assert!(row.windows(2).all(|w| w[0] < w[1]), "{row:?}");
            assert_eq!(row[MEDIAN], 0.0);
        }
        assert_eq!(QUANTILES[MEDIAN], 0.5);
    }
}
