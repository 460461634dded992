//! The temporal block's self-attention (MODEL.md block 3): causal multi-head attention over
//! each stock's `t` steps, with a residual connection and LayerNorm.
//!
//! For each stock, with `x` its `[t×h]` rows, `heads` heads of `d = h/heads` channels
//! (head `a` owns channels `a·d..(a+1)·d`) and `scale = 1/√d`:
//!
//! ```text
//! Q = x·wq + bq    K = x·wk + bk    V = x·wv + bv                      ([t×h] each)
//! S_a[τ,κ] = scale · Q[τ, a]·K[κ, a]      for κ ≤ τ (causal: later steps are masked out)
//! P_a[τ,·] = softmax_κ≤τ(S_a[τ,·])        (P_a[τ,κ] = 0 for κ > τ)
//! C[τ, a]  = Σ_κ≤τ P_a[τ,κ] · V[κ, a]     (head outputs concatenated in head order)
//! y = LayerNorm(x + C·wo + bo; ln_g, ln_b)                            (per row, ε = 1e-5)
//! ```
//!
//! Batching: the Q, K, V and output projections of all `n·t` rows are single matmuls; the
//! per-stock scores, softmax and weighted sums run in parallel over stocks with rayon, each
//! stock writing only its own rows, so results are bit-identical at any thread count.

use super::layers::{LayerNormCache, layer_norm, layer_norm_backward, softmax};
use super::linalg;
use super::params::{Carve, CarveMut, fill, glorot};
use super::real::Real;
use rayon::prelude::*;

/// Shape of the attention block: `h` channels (input = output width), `heads` heads of
/// `h/heads` channels each (`h` must be a multiple of `heads`).
///
/// Parameter pieces, in order: `wq` `h×h`, `bq` `h`, `wk` `h×h`, `bk` `h`, `wv` `h×h`,
/// `bv` `h`, `wo` `h×h`, `bo` `h`, `ln_g` `h`, `ln_b` `h` (weights input-major).
///
/// `bk` adds `Q[τ]·bk` to every score of query row τ, which the softmax cancels: its
/// gradient is identically zero (up to rounding). It is kept so the layout is the usual
/// one; its computed gradient is the exact formula, not a hard-coded zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Channels of the input and output (the model's H).
    pub h: usize,
    /// Number of heads; each covers `h/heads` consecutive channels.
    pub heads: usize,
}

impl AttnShape {
    /// Number of parameters: `4·(h·h + h) + 2h`.
    pub fn n_params(&self) -> usize {
        4 * (self.h * self.h + self.h) + 2 * self.h
    }

    /// Channels per head, `h/heads`. Panics if `heads` is 0 or does not divide `h`.
    pub fn head_dim(&self) -> usize {
        assert!(
            self.heads > 0 && self.h.is_multiple_of(self.heads),
            "attention: h = {} is not a multiple of heads = {}",
            self.h,
            self.heads
        );
        self.h / self.heads
    }

    /// Initialises the pieces (order as on [`AttnShape`]): `wq`, `wk`, `wv`, `wo`
    /// Glorot-uniform (fan-in = fan-out = `h`); `bq`, `bk`, `bv`, `bo` zero; `ln_g` one;
    /// `ln_b` zero.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        assert_eq!(
            p.len(),
            self.n_params(),
            "attention init: params are not {} values",
            self.n_params()
        );
        let h = self.h;
        let mut c = CarveMut::new(p);
        for _ in 0..4 {
            glorot(c.take(h * h), h, h, rng);
            fill(c.take(h), 0.0);
        }
        fill(c.take(h), 1.0);
        fill(c.take(h), 0.0);
        c.done();
    }
}

/// What [`attention_backward`] needs from [`attention_forward`].
#[derive(Debug, Clone, Default)]
pub struct AttnCache<T> {
    /// Stocks in the batch.
    pub n: usize,
    /// Steps per stock.
    pub t: usize,
    /// The input, `[n×t×h]`.
    pub x: Vec<T>,
    /// Projections `Q`, `K`, `V`, `[n×t×h]` each.
    pub q: Vec<T>,
    pub k: Vec<T>,
    pub v: Vec<T>,
    /// Attention weights, `[n×heads×t×t]` (query step, then key step; zero above the
    /// diagonal).
    pub probs: Vec<T>,
    /// Concatenated head outputs `C`, `[n×t×h]`.
    pub ctx: Vec<T>,
    /// LayerNorm's cache for `x + C·wo + bo`.
    pub ln: LayerNormCache<T>,
}

/// The parameter pieces, borrowed.
struct Pieces<'a, T> {
    wq: &'a [T],
    bq: &'a [T],
    wk: &'a [T],
    bk: &'a [T],
    wv: &'a [T],
    bv: &'a [T],
    wo: &'a [T],
    bo: &'a [T],
    ln_g: &'a [T],
    ln_b: &'a [T],
}

fn carve<'a, T: Real>(s: &AttnShape, p: &'a [T]) -> Pieces<'a, T> {
    assert_eq!(
        p.len(),
        s.n_params(),
        "attention: params are not {} values",
        s.n_params()
    );
    let h = s.h;
    let mut c = Carve::new(p);
    let pieces = Pieces {
        wq: c.take(h * h),
        bq: c.take(h),
        wk: c.take(h * h),
        bk: c.take(h),
        wv: c.take(h * h),
        bv: c.take(h),
        wo: c.take(h * h),
        bo: c.take(h),
        ln_g: c.take(h),
        ln_b: c.take(h),
    };
    c.done();
    pieces
}

fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::zero();
    for (x, y) in a.iter().zip(b) {
        s += *x * *y;
    }
    s
}

/// Attention forward: `x` is `[n×t×h]`; returns `y = LayerNorm(x + MHA(x))`, `[n×t×h]`, and
/// the cache. Causal: step τ attends to steps κ ≤ τ only. The maths is in the module
/// documentation.
pub fn attention_forward<T: Real>(
    s: &AttnShape,
    p: &[T],
    x: &[T],
    n: usize,
    t: usize,
) -> (Vec<T>, AttnCache<T>) {
    let h = s.h;
    let (heads, d) = (s.heads, s.head_dim());
    let pc = carve(s, p);
    assert_eq!(x.len(), n * t * h, "attention: x is not {n}×{t}×{h}");
    let m = n * t;
    let q = linalg::linear(x, pc.wq, pc.bq, m, h, h);
    let k = linalg::linear(x, pc.wk, pc.bk, m, h, h);
    let v = linalg::linear(x, pc.wv, pc.bv, m, h, h);
    let scale = T::one() / T::c(d as f64).sqrt();

    let (th, tt) = (t * h, t * t);
    let mut ctx = vec![T::zero(); m * h];
    let mut probs = vec![T::zero(); n * heads * tt];
    if th > 0 && tt > 0 {
        ctx.par_chunks_mut(th)
            .zip(probs.par_chunks_mut(heads * tt))
            .enumerate()
            .for_each(|(st, (cx, pr))| {
                let qs = &q[st * th..(st + 1) * th];
                let ks = &k[st * th..(st + 1) * th];
                let vs = &v[st * th..(st + 1) * th];
                for a in 0..heads {
                    let off = a * d;
                    let pa = &mut pr[a * tt..(a + 1) * tt];
                    for tau in 0..t {
                        let row = &mut pa[tau * t..tau * t + tau + 1];
                        let qr = &qs[tau * h + off..tau * h + off + d];
                        for (kappa, sc) in row.iter_mut().enumerate() {
                            *sc = dot(qr, &ks[kappa * h + off..kappa * h + off + d]) * scale;
                        }
                        softmax(row);
                        let out = &mut cx[tau * h + off..tau * h + off + d];
                        for (kappa, w) in row.iter().enumerate() {
                            let vr = &vs[kappa * h + off..kappa * h + off + d];
                            for (o, vv) in out.iter_mut().zip(vr) {
                                *o += *w * *vv;
                            }
                        }
                    }
                }
            });
    }

    let mut r = linalg::linear(&ctx, pc.wo, pc.bo, m, h, h);
    for (rv, xv) in r.iter_mut().zip(x) {
        *rv += *xv;
    }
    let (y, ln) = layer_norm(&r, pc.ln_g, pc.ln_b, h);
    let cache = AttnCache {
        n,
        t,
        x: x.to_vec(),
        q,
        k,
        v,
        probs,
        ctx,
        ln,
    };
    (y, cache)
}

/// Attention backward: `dy` is `[n×t×h]`. Adds every parameter's gradient into `g` (layout
/// of [`AttnShape`]) and returns `dx`, `[n×t×h]`.
///
/// With `dr` the gradient through LayerNorm onto `r = x + C·wo + bo`:
/// `dwo += Cᵀ·dr`, `dbo += Σ dr`, `dC = dr·woᵀ`; per stock and head,
/// `dP[τ,κ] = dC[τ]·V[κ]`, `dV[κ] += Σ_τ≥κ P[τ,κ]·dC[τ]`,
/// `dS[τ,κ] = scale · P[τ,κ]·(dP[τ,κ] − Σ_κ' P[τ,κ']·dP[τ,κ'])`,
/// `dQ[τ] += Σ_κ dS[τ,κ]·K[κ]`, `dK[κ] += Σ_τ dS[τ,κ]·Q[τ]`; then the Q/K/V projections'
/// gradients over all rows, and `dx = dr + dQ·wqᵀ + dK·wkᵀ + dV·wvᵀ`.
pub fn attention_backward<T: Real>(
    s: &AttnShape,
    p: &[T],
    cache: &AttnCache<T>,
    dy: &[T],
    g: &mut [T],
) -> Vec<T> {
    let h = s.h;
    let (heads, d) = (s.heads, s.head_dim());
    let (n, t) = (cache.n, cache.t);
    let m = n * t;
    let pc = carve(s, p);
    assert_eq!(dy.len(), m * h, "attention backward: dy is not {n}×{t}×{h}");
    assert_eq!(
        g.len(),
        s.n_params(),
        "attention backward: grads are not {} values",
        s.n_params()
    );
    assert_eq!(
        cache.probs.len(),
        n * heads * t * t,
        "attention backward: cache does not match the shape"
    );
    let mut gc = CarveMut::new(g);
    let gwq = gc.take(h * h);
    let gbq = gc.take(h);
    let gwk = gc.take(h * h);
    let gbk = gc.take(h);
    let gwv = gc.take(h * h);
    let gbv = gc.take(h);
    let gwo = gc.take(h * h);
    let gbo = gc.take(h);
    let gln_g = gc.take(h);
    let gln_b = gc.take(h);
    gc.done();

    let dr = layer_norm_backward(dy, &cache.ln, pc.ln_g, gln_g, gln_b);
    let mut dctx = vec![T::zero(); m * h];
    linalg::linear_backward(
        &cache.ctx,
        pc.wo,
        &dr,
        m,
        h,
        h,
        gwo,
        Some(gbo),
        Some(&mut dctx),
    );

    let scale = T::one() / T::c(d as f64).sqrt();
    let (th, tt) = (t * h, t * t);
    let mut dq = vec![T::zero(); m * h];
    let mut dk = vec![T::zero(); m * h];
    let mut dv = vec![T::zero(); m * h];
    if th > 0 && tt > 0 {
        let (q, k, v, probs) = (&cache.q, &cache.k, &cache.v, &cache.probs);
        dq.par_chunks_mut(th)
            .zip(dk.par_chunks_mut(th))
            .zip(dv.par_chunks_mut(th))
            .enumerate()
            .for_each(|(st, ((dqs, dks), dvs))| {
                let qs = &q[st * th..(st + 1) * th];
                let ks = &k[st * th..(st + 1) * th];
                let vs = &v[st * th..(st + 1) * th];
                let dcs = &dctx[st * th..(st + 1) * th];
                let mut dp = vec![T::zero(); t];
                for a in 0..heads {
                    let off = a * d;
                    let pa = &probs[(st * heads + a) * tt..(st * heads + a + 1) * tt];
                    for tau in 0..t {
                        let prow = &pa[tau * t..tau * t + tau + 1];
                        let dout = &dcs[tau * h + off..tau * h + off + d];
                        let mut pdp = T::zero();
                        for (kappa, pw) in prow.iter().enumerate() {
                            let kr = kappa * h + off;
                            let dpk = dot(dout, &vs[kr..kr + d]);
                            dp[kappa] = dpk;
                            pdp += *pw * dpk;
                            for (dvv, o) in dvs[kr..kr + d].iter_mut().zip(dout) {
                                *dvv += *pw * *o;
                            }
                        }
                        let qr = tau * h + off;
                        for (kappa, pw) in prow.iter().enumerate() {
                            let ds = *pw * (dp[kappa] - pdp) * scale;
                            let kr = kappa * h + off;
                            for j in 0..d {
                                dqs[qr + j] += ds * ks[kr + j];
                                dks[kr + j] += ds * qs[qr + j];
                            }
                        }
                    }
                }
            });
    }

    let mut dx = dr;
    linalg::linear_backward(&cache.x, pc.wq, &dq, m, h, h, gwq, Some(gbq), Some(&mut dx));
    linalg::linear_backward(&cache.x, pc.wk, &dk, m, h, h, gwk, Some(gbk), Some(&mut dx));
    linalg::linear_backward(&cache.x, pc.wv, &dv, m, h, h, gwv, Some(gbv), Some(&mut dx));
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

    fn dotf(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn attention_gradients() {
        let s = AttnShape { h: 4, heads: 2 };
        let (n, t) = (2, 4);
        let mut p = rand_vec(s.n_params(), 31, 0.8);
        // LayerNorm gain near 1 so every path carries gradient.
        let ln_at = 4 * (s.h * s.h + s.h);
        for (j, v) in p[ln_at..ln_at + s.h].iter_mut().enumerate() {
            *v += 1.0 + 0.1 * j as f64;
        }
        let x = rand_vec(n * t * s.h, 32, 1.0);
        let r = rand_vec(n * t * s.h, 33, 1.0);
        let (_, cache) = attention_forward(&s, &p, &x, n, t);
        // Start the gradient at 1 to check that backward adds rather than overwrites.
        let mut g = vec![1.0; s.n_params()];
        let dx = attention_backward(&s, &p, &cache, &r, &mut g);
        for v in g.iter_mut() {
            *v -= 1.0;
        }
        let ng = numeric_grad(&p, |p| dotf(&attention_forward(&s, p, &x, n, t).0, &r));
        let (hh, h) = (s.h * s.h, s.h);
        let pieces = [
            ("wq", hh),
            ("bq", h),
            ("wk", hh),
            ("bk", h),
            ("wv", hh),
            ("bv", h),
            ("wo", hh),
            ("bo", h),
            ("ln_g", h),
            ("ln_b", h),
        ];
        let mut a = Carve::new(&g[..]);
        let mut b = Carve::new(&ng[..]);
        for (name, len) in pieces {
            let (ga, gn) = (a.take(len), b.take(len));
            if name == "bk" {
                // Softmax is shift-invariant per query row, so bk has no effect at all.
                for (i, (u, w)) in ga.iter().zip(gn).enumerate() {
                    assert!(u.abs() < 1e-9 && w.abs() < 1e-7, "bk[{i}]: {u:e} / {w:e}");
                }
            } else {
                assert_close_grads(name, ga, gn);
            }
        }
        a.done();
        b.done();
        let nx = numeric_grad(&x, |x| dotf(&attention_forward(&s, &p, x, n, t).0, &r));
        assert_close_grads("x", &dx, &nx);
    }

    #[test]
    fn attention_matches_a_direct_computation() {
        // One stock, written out without any of the batching.
        let s = AttnShape { h: 4, heads: 2 };
        let t = 3;
        let (h, d) = (4, 2);
        let p = rand_vec(s.n_params(), 41, 0.8);
        let x = rand_vec(t * h, 42, 1.0);
        let (y, _) = attention_forward(&s, &p, &x, 1, t);
        let w = |i: usize| &p[i * (h * h + h)..i * (h * h + h) + h * h];
        let bias = |i: usize| &p[i * (h * h + h) + h * h..(i + 1) * (h * h + h)];
        let proj = |i: usize, row: &[f64]| -> Vec<f64> {
            (0..h)
                .map(|c| bias(i)[c] + (0..h).map(|j| row[j] * w(i)[j * h + c]).sum::<f64>())
                .collect()
        };
        let rows: Vec<&[f64]> = x.chunks(h).collect();
        let q: Vec<Vec<f64>> = rows.iter().map(|r| proj(0, r)).collect();
        let k: Vec<Vec<f64>> = rows.iter().map(|r| proj(1, r)).collect();
        let v: Vec<Vec<f64>> = rows.iter().map(|r| proj(2, r)).collect();
        let (ln_g, ln_b) = (
            &p[4 * (h * h + h)..4 * (h * h + h) + h],
            &p[4 * (h * h + h) + h..],
        );
        for tau in 0..t {
            let mut c = vec![0.0; h];
            for a in 0..2 {
                let sc: Vec<f64> = (0..=tau)
                    .map(|kk| {
                        (0..d)
                            .map(|j| q[tau][a * d + j] * k[kk][a * d + j])
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = sc.iter().map(|v| (v - mx).exp()).sum();
                for (kk, sv) in sc.iter().enumerate() {
                    for j in 0..d {
                        c[a * d + j] += (sv - mx).exp() / z * v[kk][a * d + j];
                    }
                }
            }
            let o = proj(3, &c);
            let r: Vec<f64> = (0..h).map(|j| x[tau * h + j] + o[j]).collect();
            let mean = r.iter().sum::<f64>() / h as f64;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
            for j in 0..h {
                let want = (r[j] - mean) / (var + 1e-5).sqrt() * ln_g[j] + ln_b[j];
                assert!(
                    (y[tau * h + j] - want).abs() < 1e-10,
                    "step {tau} ch {j}: {} vs {want}",
                    y[tau * h + j]
                );
            }
        }
    }

    #[test]
    fn init_is_identity_layer_norm() {
        let s = AttnShape { h: 8, heads: 4 };
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(2));
        let base = 4 * (s.h * s.h + s.h);
        assert!(p[base..base + s.h].iter().all(|v| *v == 1.0));
        assert!(p[base + s.h..].iter().all(|v| *v == 0.0));
        assert!(
            p[s.h * s.h..s.h * s.h + s.h].iter().all(|v| *v == 0.0),
            "bq"
        );
        assert!(p[..s.h * s.h].iter().any(|v| *v != 0.0), "wq");
    }

    #[test]
    fn attention_is_causal() {
        let s = AttnShape { h: 8, heads: 2 };
        let (n, t) = (3, 6);
        let p = rand_vec(s.n_params(), 51, 0.8);
        let x = rand_vec(n * t * s.h, 52, 1.0);
        let (y0, _) = attention_forward(&s, &p, &x, n, t);
        for tau in 0..t {
            let mut x1 = x.clone();
            for st in 0..n {
                for c in 0..s.h {
                    x1[(st * t + tau) * s.h + c] += 0.5 * (c as f64 - 3.0);
                }
            }
            let (y1, _) = attention_forward(&s, &p, &x1, n, t);
            for st in 0..n {
                for u in 0..t {
                    let a = &y0[(st * t + u) * s.h..(st * t + u + 1) * s.h];
                    let b = &y1[(st * t + u) * s.h..(st * t + u + 1) * s.h];
                    if u < tau {
                        assert_eq!(a, b, "stock {st} step {u} changed when step {tau} moved");
                    } else {
                        // Later steps see step τ through the keys and values.
                        assert_ne!(a, b, "stock {st} step {u} did not see step {tau}");
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "not a multiple of heads")]
    fn heads_must_divide_h() {
        let s = AttnShape { h: 6, heads: 4 };
        let p = vec![0.0; s.n_params()];
        let _ = attention_forward(&s, &p, &[0.0; 12], 1, 2);
    }

    #[test]
    fn attention_is_identical_at_any_thread_count() {
        let s = AttnShape { h: 64, heads: 4 };
        let (n, t) = (300, 20);
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(8));
        let x: Vec<f32> = rand_f32(n * t * s.h, 9, 1.0);
        let dy: Vec<f32> = rand_f32(n * t * s.h, 10, 1.0);
        let run = |threads| {
            on_threads(threads, || {
                let (y, cache) = attention_forward(&s, &p, &x, n, t);
                let mut g = vec![0f32; s.n_params()];
                let dx = attention_backward(&s, &p, &cache, &dy, &mut g);
                (y, g, dx)
            })
        };
        let one = run(1);
        assert!(one.1.iter().any(|v| *v != 0.0));
        assert_eq!(one, run(2));
    }
}
