//! The gated residual network (GRN) and the variable selection network built on it
//! (MODEL.md block 2), forward and backward.
//!
//! GRN, over `m` rows `a` of width `din`:
//! `GRN(a) = LayerNorm(a·W_skip + GLU(drop(ELU(a·W₁ + b₁))·W₂ + b₂))`, with
//! `GLU(u) = u₁ ⊙ σ(u₂)` where `u₁` is the first `dout` columns of `u` and `u₂` the last
//! `dout`, ELU with α = 1, and LayerNorm over the `dout` columns (ε = 1e-5, learned gain
//! and bias). `drop` multiplies by a caller-drawn mask (entries 0 or 1/(1−p)); without a
//! mask it is the identity.
//!
//! Variable selection, over `m` rows `x` of width `f`:
//! `w = softmax_f(GRN(x))` (a GRN with `din = dout = f`, hidden width `h`), then
//! `y = LayerNorm((w ⊙ x)·W_in + b_in)` over the `h` columns.

use super::layers::{self, LayerNormCache};
use super::linalg;
use super::params::{Carve, CarveMut, fill, glorot};
use super::real::Real;

/// Shape of a GRN: input width `din`, hidden width `dh`, output width `dout`.
///
/// Parameters, in order: `w1[din×dh]` (Glorot), `b1[dh]` (0), `w2[dh×2·dout]` (Glorot),
/// `b2[2·dout]` (0), `w_skip[din×dout]` (Glorot), `ln_g[dout]` (1), `ln_b[dout]` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrnShape {
    pub din: usize,
    pub dh: usize,
    pub dout: usize,
}

/// The GRN's parameter pieces, borrowed from a flat slice.
struct GrnParams<'a, T> {
    w1: &'a [T],
    b1: &'a [T],
    w2: &'a [T],
    b2: &'a [T],
    w_skip: &'a [T],
    ln_g: &'a [T],
    ln_b: &'a [T],
}

/// The GRN's gradient pieces, borrowed from a flat slice.
struct GrnGrads<'a, T> {
    w1: &'a mut [T],
    b1: &'a mut [T],
    w2: &'a mut [T],
    b2: &'a mut [T],
    w_skip: &'a mut [T],
    ln_g: &'a mut [T],
    ln_b: &'a mut [T],
}

impl GrnShape {
    /// `din·dh + dh + dh·2·dout + 2·dout + din·dout + 2·dout`.
    pub fn n_params(&self) -> usize {
        let (i, h, o) = (self.din, self.dh, self.dout);
        i * h + h + h * 2 * o + 2 * o + i * o + 2 * o
    }

    /// Parameters in order: `w1[din×dh]` Glorot, `b1[dh]` 0, `w2[dh×2·dout]` Glorot,
    /// `b2[2·dout]` 0, `w_skip[din×dout]` Glorot, `ln_g[dout]` 1, `ln_b[dout]` 0.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        let q = self.grads(p);
        glorot(q.w1, self.din, self.dh, rng);
        fill(q.b1, 0.0);
        glorot(q.w2, self.dh, 2 * self.dout, rng);
        fill(q.b2, 0.0);
        glorot(q.w_skip, self.din, self.dout, rng);
        fill(q.ln_g, 1.0);
        fill(q.ln_b, 0.0);
    }

    fn params<'a, T>(&self, p: &'a [T]) -> GrnParams<'a, T> {
        assert_eq!(
            p.len(),
            self.n_params(),
            "grn: parameter slice is not {} long",
            self.n_params()
        );
        let (i, h, o) = (self.din, self.dh, self.dout);
        let mut c = Carve::new(p);
        let q = GrnParams {
            w1: c.take(i * h),
            b1: c.take(h),
            w2: c.take(h * 2 * o),
            b2: c.take(2 * o),
            w_skip: c.take(i * o),
            ln_g: c.take(o),
            ln_b: c.take(o),
        };
        c.done();
        q
    }

    fn grads<'a, T>(&self, g: &'a mut [T]) -> GrnGrads<'a, T> {
        assert_eq!(
            g.len(),
            self.n_params(),
            "grn: gradient slice is not {} long",
            self.n_params()
        );
        let (i, h, o) = (self.din, self.dh, self.dout);
        let mut c = CarveMut::new(g);
        let q = GrnGrads {
            w1: c.take(i * h),
            b1: c.take(h),
            w2: c.take(h * 2 * o),
            b2: c.take(2 * o),
            w_skip: c.take(i * o),
            ln_g: c.take(o),
            ln_b: c.take(o),
        };
        c.done();
        q
    }
}

/// What [`grn_backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct GrnCache<T> {
    /// Rows.
    m: usize,
    /// The input `a`, `[m×din]`.
    a: Vec<T>,
    /// `a·W₁ + b₁`, `[m×dh]`.
    pre: Vec<T>,
    /// `drop(ELU(pre))`, `[m×dh]`.
    hid: Vec<T>,
    /// `hid·W₂ + b₂`, `[m×2·dout]`.
    u: Vec<T>,
    /// The dropout mask, `[m×dh]`, if one was used.
    mask: Option<Vec<T>>,
    ln: LayerNormCache<T>,
}

/// GRN forward pass over `m` rows: `a` is `[m×din]`, `dropout` an optional `[m×dh]` mask
/// on the ELU output. Returns `GRN(a)`, `[m×dout]` (see the module docs), and the cache.
pub fn grn_forward<T: Real>(
    s: &GrnShape,
    p: &[T],
    a: &[T],
    m: usize,
    dropout: Option<&[T]>,
) -> (Vec<T>, GrnCache<T>) {
    let (i, h, o) = (s.din, s.dh, s.dout);
    let q = s.params(p);
    assert_eq!(a.len(), m * i, "grn: input is not {m}×{i}");
    if let Some(mask) = dropout {
        assert_eq!(mask.len(), m * h, "grn: dropout mask is not {m}×{h}");
    }
    let pre = linalg::linear(a, q.w1, q.b1, m, i, h);
    let mut hid: Vec<T> = pre.iter().map(|v| layers::elu(*v)).collect();
    layers::apply_mask(&mut hid, dropout);
    let u = linalg::linear(&hid, q.w2, q.b2, m, h, 2 * o);
    let mut z = layers::glu(&u, o);
    linalg::matmul_acc(a, q.w_skip, m, i, o, &mut z);
    let (y, ln) = layers::layer_norm(&z, q.ln_g, q.ln_b, o);
    let cache = GrnCache {
        m,
        a: a.to_vec(),
        pre,
        hid,
        u,
        mask: dropout.map(<[T]>::to_vec),
        ln,
    };
    (y, cache)
}

/// GRN backward pass: `dy` is `[m×dout]`; adds every parameter's gradient into `g`
/// (layout of `p`) and returns `da`, `[m×din]`. The dropout mask of the forward pass is
/// applied to the hidden gradient.
pub fn grn_backward<T: Real>(
    s: &GrnShape,
    p: &[T],
    cache: &GrnCache<T>,
    dy: &[T],
    g: &mut [T],
) -> Vec<T> {
    let (i, h, o, m) = (s.din, s.dh, s.dout, cache.m);
    let q = s.params(p);
    let dq = s.grads(g);
    assert_eq!(dy.len(), m * o, "grn: dy is not {m}×{o}");
    assert_eq!(
        cache.a.len(),
        m * i,
        "grn: the cache does not match the shape"
    );
    // z = a·W_skip + GLU(u), y = LN(z).
    let dz = layers::layer_norm_backward(dy, &cache.ln, q.ln_g, dq.ln_g, dq.ln_b);
    let mut da = vec![T::zero(); m * i];
    linalg::linear_backward(
        &cache.a,
        q.w_skip,
        &dz,
        m,
        i,
        o,
        dq.w_skip,
        None,
        Some(&mut da),
    );
    let du = layers::glu_backward(&cache.u, &dz, o);
    // u = hid·W₂ + b₂.
    let mut dhid = vec![T::zero(); m * h];
    linalg::linear_backward(
        &cache.hid,
        q.w2,
        &du,
        m,
        h,
        2 * o,
        dq.w2,
        Some(dq.b2),
        Some(&mut dhid),
    );
    // hid = drop(ELU(pre)).
    layers::apply_mask(&mut dhid, cache.mask.as_deref());
    for (d, x) in dhid.iter_mut().zip(&cache.pre) {
        *d *= layers::elu_grad(*x);
    }
    // pre = a·W₁ + b₁.
    linalg::linear_backward(
        &cache.a,
        q.w1,
        &dhid,
        m,
        i,
        h,
        dq.w1,
        Some(dq.b1),
        Some(&mut da),
    );
    da
}

/// Shape of the variable selection network: `f` input features, hidden width `h`.
///
/// Parameters, in order: the selection GRN's (`GrnShape { din: f, dh: h, dout: f }`, see
/// [`GrnShape`]), then `w_in[f×h]` (Glorot), `b_in[h]` (0), `ln_g[h]` (1), `ln_b[h]` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsnShape {
    pub f: usize,
    pub h: usize,
}

impl VsnShape {
    /// The selection GRN: `din = dout = f`, `dh = h`.
    pub fn grn(&self) -> GrnShape {
        GrnShape {
            din: self.f,
            dh: self.h,
            dout: self.f,
        }
    }

    /// The GRN's count plus `f·h + 3·h`.
    pub fn n_params(&self) -> usize {
        self.grn().n_params() + self.f * self.h + 3 * self.h
    }

    /// Parameters in order: the GRN's ([`GrnShape::init`]), `w_in[f×h]` Glorot, `b_in[h]`
    /// 0, `ln_g[h]` 1, `ln_b[h]` 0.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        assert_eq!(
            p.len(),
            self.n_params(),
            "vsn: parameter slice is not {} long",
            self.n_params()
        );
        let mut c = CarveMut::new(p);
        self.grn().init(c.take(self.grn().n_params()), rng);
        glorot(c.take(self.f * self.h), self.f, self.h, rng);
        fill(c.take(self.h), 0.0);
        fill(c.take(self.h), 1.0);
        fill(c.take(self.h), 0.0);
        c.done();
    }
}

/// What [`vsn_backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct VsnCache<T> {
    /// The selection weights `w = softmax_f(GRN(x))`, `[m×f]`, each row summing to 1
    /// (kept for interpretability as well as for the backward pass).
    pub weights: Vec<T>,
    m: usize,
    /// The input `x`, `[m×f]`.
    x: Vec<T>,
    /// `w ⊙ x`, `[m×f]`.
    xs: Vec<T>,
    grn: GrnCache<T>,
    ln: LayerNormCache<T>,
}

/// Variable selection forward pass over `m = n·t` rows: `x` is `[m×f]`, `dropout` an
/// optional `[m×h]` mask on the GRN's hidden layer. Returns
/// `y = LayerNorm((w ⊙ x)·W_in + b_in)`, `[m×h]`, with `w = softmax_f(GRN(x))`, and the
/// cache (which holds `w`).
pub fn vsn_forward<T: Real>(
    s: &VsnShape,
    p: &[T],
    x: &[T],
    m: usize,
    dropout: Option<&[T]>,
) -> (Vec<T>, VsnCache<T>) {
    let (f, h) = (s.f, s.h);
    assert_eq!(
        p.len(),
        s.n_params(),
        "vsn: parameter slice is not {} long",
        s.n_params()
    );
    assert_eq!(x.len(), m * f, "vsn: input is not {m}×{f}");
    let mut c = Carve::new(p);
    let pg = c.take(s.grn().n_params());
    let w_in = c.take(f * h);
    let b_in = c.take(h);
    let ln_g = c.take(h);
    let ln_b = c.take(h);
    c.done();
    let (mut weights, grn) = grn_forward(&s.grn(), pg, x, m, dropout);
    layers::softmax_rows(&mut weights, f);
    let xs: Vec<T> = weights.iter().zip(x).map(|(w, v)| *w * *v).collect();
    let v = linalg::linear(&xs, w_in, b_in, m, f, h);
    let (y, ln) = layers::layer_norm(&v, ln_g, ln_b, h);
    (
        y,
        VsnCache {
            weights,
            m,
            x: x.to_vec(),
            xs,
            grn,
            ln,
        },
    )
}

/// Variable selection backward pass: `dy` is `[m×h]`; adds every parameter's gradient
/// (the GRN's included) into `g` (layout of `p`) and returns `dx`, `[m×f]`, through both
/// the weighted input and the selection weights.
pub fn vsn_backward<T: Real>(
    s: &VsnShape,
    p: &[T],
    cache: &VsnCache<T>,
    dy: &[T],
    g: &mut [T],
) -> Vec<T> {
    let (f, h, m) = (s.f, s.h, cache.m);
    assert_eq!(
        p.len(),
        s.n_params(),
        "vsn: parameter slice is not {} long",
        s.n_params()
    );
    assert_eq!(
        g.len(),
        s.n_params(),
        "vsn: gradient slice is not {} long",
        s.n_params()
    );
    assert_eq!(dy.len(), m * h, "vsn: dy is not {m}×{h}");
    assert_eq!(
        cache.x.len(),
        m * f,
        "vsn: the cache does not match the shape"
    );
    let mut c = Carve::new(p);
    let pg = c.take(s.grn().n_params());
    let w_in = c.take(f * h);
    let _b_in = c.take(h);
    let ln_g = c.take(h);
    let _ln_b = c.take(h);
    c.done();
    let mut dc = CarveMut::new(g);
    let gg = dc.take(s.grn().n_params());
    let dw_in = dc.take(f * h);
    let db_in = dc.take(h);
    let dln_g = dc.take(h);
    let dln_b = dc.take(h);
    dc.done();
    let dv = layers::layer_norm_backward(dy, &cache.ln, ln_g, dln_g, dln_b);
    let mut dxs = vec![T::zero(); m * f];
    linalg::linear_backward(
        &cache.xs,
        w_in,
        &dv,
        m,
        f,
        h,
        dw_in,
        Some(db_in),
        Some(&mut dxs),
    );
    // xs = w ⊙ x: dx = dxs ⊙ w directly; dw = dxs ⊙ x, back through the softmax.
    let mut dx: Vec<T> = dxs
        .iter()
        .zip(&cache.weights)
        .map(|(d, w)| *d * *w)
        .collect();
    let mut dlogits = vec![T::zero(); m * f];
    for r in 0..m {
        let row = r * f..(r + 1) * f;
        let dw: Vec<T> = dxs[row.clone()]
            .iter()
            .zip(&cache.x[row.clone()])
            .map(|(d, v)| *d * *v)
            .collect();
        let dl = layers::softmax_backward(&cache.weights[row.clone()], &dw);
        dlogits[row].copy_from_slice(&dl);
    }
    let dxg = grn_backward(&s.grn(), pg, &cache.grn, &dlogits, gg);
    for (d, v) in dx.iter_mut().zip(&dxg) {
        *d += *v;
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{assert_close_grads, numeric_grad, rand_f32, rand_vec};
    use super::*;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Random parameters (not the init: LayerNorm gains and biases away from 1 and 0 so
    /// their gradients are exercised in general position).
    fn random_params(n: usize, seed: u64) -> Vec<f64> {
        rand_vec(n, seed, 0.8)
    }

    /// Ranges of each named piece, in layout order.
    fn pieces(names: &[(&'static str, usize)]) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut at = 0;
        names
            .iter()
            .map(|(name, len)| {
                let r = at..at + len;
                at += len;
                (*name, r)
            })
            .collect()
    }

    fn grn_pieces(s: &GrnShape) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let (i, h, o) = (s.din, s.dh, s.dout);
        pieces(&[
            ("w1", i * h),
            ("b1", h),
            ("w2", h * 2 * o),
            ("b2", 2 * o),
            ("w_skip", i * o),
            ("ln_g", o),
            ("ln_b", o),
        ])
    }

    fn grn_check(mask: Option<Vec<f64>>) {
        let s = GrnShape {
            din: 4,
            dh: 5,
            dout: 3,
        };
        let m = 6;
        let p = random_params(s.n_params(), 1);
        let a = rand_vec(m * s.din, 2, 1.5);
        let r = rand_vec(m * s.dout, 3, 1.0);
        let mask = mask.as_deref();
        let loss = |p: &[f64], a: &[f64]| dot(&grn_forward(&s, p, a, m, mask).0, &r);
        let (_, cache) = grn_forward(&s, &p, &a, m, mask);
        let mut g = vec![0.0; s.n_params()];
        let da = grn_backward(&s, &p, &cache, &r, &mut g);
        assert_close_grads("grn da", &da, &numeric_grad(&a, |a| loss(&p, a)));
        let num = numeric_grad(&p, |p| loss(p, &a));
        assert_eq!(grn_pieces(&s).last().map(|x| x.1.end), Some(s.n_params()));
        for (name, range) in grn_pieces(&s) {
            assert_close_grads(&format!("grn d{name}"), &g[range.clone()], &num[range]);
        }
    }

    #[test]
    fn grn_gradient_without_dropout() {
        grn_check(None);
    }

    #[test]
    fn grn_gradient_with_dropout() {
        let s = GrnShape {
            din: 4,
            dh: 5,
            dout: 3,
        };
        let keep = rand_vec(6 * s.dh, 9, 1.0);
        let mask: Vec<f64> = keep
            .iter()
            .map(|v| if *v > -0.6 { 1.0 / 0.8 } else { 0.0 })
            .collect();
        assert!(mask.contains(&0.0) && mask.contains(&1.25));
        grn_check(Some(mask));
    }

    #[test]
    fn dropout_mask_changes_the_output_and_blocks_gradients() {
        let s = GrnShape {
            din: 3,
            dh: 4,
            dout: 2,
        };
        let m = 2;
        let p = random_params(s.n_params(), 4);
        let a = rand_vec(m * 3, 5, 1.0);
        let zero = vec![0.0; m * 4];
        let (y0, _) = grn_forward(&s, &p, &a, m, None);
        let (y1, c1) = grn_forward(&s, &p, &a, m, Some(&zero));
        assert!(y0.iter().zip(&y1).any(|(a, b)| (a - b).abs() > 1e-6));
        // With every hidden unit dropped, W₁, b₁, W₂ get no gradient; b₂ still does.
        let mut g = vec![0.0; s.n_params()];
        grn_backward(&s, &p, &c1, &rand_vec(m * 2, 6, 1.0), &mut g);
        let pc = grn_pieces(&s);
        for (name, range) in &pc[..3] {
            assert!(
                g[range.clone()].iter().all(|v| *v == 0.0),
                "{name} got a gradient through a dropped unit"
            );
        }
        assert!(g[pc[3].1.clone()].iter().any(|v| *v != 0.0));
    }

    fn vsn_check(mask: Option<Vec<f64>>) {
        let s = VsnShape { f: 4, h: 5 };
        let m = 6;
        let p = random_params(s.n_params(), 7);
        let x = rand_vec(m * s.f, 8, 1.5);
        let r = rand_vec(m * s.h, 9, 1.0);
        let mask = mask.as_deref();
        let loss = |p: &[f64], x: &[f64]| dot(&vsn_forward(&s, p, x, m, mask).0, &r);
        let (_, cache) = vsn_forward(&s, &p, &x, m, mask);
        let mut g = vec![0.0; s.n_params()];
        let dx = vsn_backward(&s, &p, &cache, &r, &mut g);
        assert_close_grads("vsn dx", &dx, &numeric_grad(&x, |x| loss(&p, x)));
        let num = numeric_grad(&p, |p| loss(p, &x));
        let ng = s.grn().n_params();
        let mut all = grn_pieces(&s.grn());
        for (name, range) in pieces(&[
            ("w_in", s.f * s.h),
            ("b_in", s.h),
            ("ln_g", s.h),
            ("ln_b", s.h),
        ]) {
            all.push((name, range.start + ng..range.end + ng));
        }
        assert_eq!(all.last().map(|x| x.1.end), Some(s.n_params()));
        for (i, (name, range)) in all.into_iter().enumerate() {
            let who = if i < 7 { "vsn grn d" } else { "vsn d" };
            assert_close_grads(&format!("{who}{name}"), &g[range.clone()], &num[range]);
        }
    }

    #[test]
    fn vsn_gradient_without_dropout() {
        vsn_check(None);
    }

    #[test]
    fn vsn_gradient_with_dropout() {
        let keep = rand_vec(6 * 5, 10, 1.0);
        let mask: Vec<f64> = keep
            .iter()
            .map(|v| if *v > -0.6 { 1.0 / 0.8 } else { 0.0 })
            .collect();
        vsn_check(Some(mask));
    }

    #[test]
    fn vsn_weights_sum_to_one() {
        let s = VsnShape { f: 7, h: 8 };
        let m = 10;
        let mut p = vec![0f32; s.n_params()];
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        s.init(&mut p, &mut rng);
        let x: Vec<f32> = rand_f32(m * s.f, 11, 3.0);
        let (y, cache) = vsn_forward(&s, &p, &x, m, None);
        assert_eq!(y.len(), m * s.h);
        assert_eq!(cache.weights.len(), m * s.f);
        for row in cache.weights.chunks(s.f) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "weights sum to {sum}");
            assert!(row.iter().all(|w| *w > 0.0 && *w < 1.0));
        }
        // The weights depend on the row: selection is per time step, not a constant.
        assert!(
            cache.weights[..s.f]
                .iter()
                .zip(&cache.weights[s.f..2 * s.f])
                .any(|(a, b)| (a - b).abs() > 1e-4)
        );
    }
}
