//! FAN, frequency adaptive normalisation (MODEL.md block 1), forward and backward.
//!
//! For every stock and feature, the length-`t` series `x[0..t]` (along time) is processed
//! on its own:
//!
//! 1. **Spectrum.** The real DFT `X_j = Σ_τ x_τ·e^{−2πi·jτ/t}` over the non-DC bins
//!    `j = 1..=t/2` (integer division), computed directly (`O(t²)`) from cos/sin tables:
//!    `Re X_j = Σ_τ x_τ cos θ_jτ`, `Im X_j = −Σ_τ x_τ sin θ_jτ`, `θ_jτ = 2π·(jτ mod t)/t`.
//! 2. **Selection.** The `k` bins with the largest `|X_j|`, in order of descending `|X_j|`,
//!    ties going to the lower `j`. The selection is a constant of the backward pass.
//! 3. **Reconstruction and residual.**
//!    `r_τ = Σ_{selected j} (c_j/t)·(Re X_j·cos θ_jτ − Im X_j·sin θ_jτ)`, with `c_j = 2`
//!    except `c_j = 1` for the Nyquist bin `j = t/2` when `t` is even; `e = x − r`.
//!    (`r = P·x` for the symmetric projection `P` onto the selected frequencies, so the
//!    selected bins are exactly absent from the residual's spectrum.)
//! 4. **Normalisation.** `μ = mean_τ e_τ`, `σ = sqrt(mean_τ (e_τ − μ)² + 1e-5)`,
//!    `y_τ = scale_f·(e_τ − μ)/σ + shift_f`.
//! 5. **Amplitude channels.** `amp[stock, f, i] = (c_j/t)·|X_j|` for the `i`-th selected
//!    bin (descending amplitude): the amplitude of the removed sinusoid. Differentiated,
//!    with gradient 0 where `|X_j| = 0`.
//!
//! Everything except the selection is differentiated. Stocks are processed in parallel
//! (each writes its own rows); the scale/shift gradients are reduced over stocks
//! sequentially in stock order, so results do not depend on the thread count.

use super::real::Real;
use rayon::prelude::*;

/// The ε added to the residual's variance.
pub const FAN_EPS: f64 = 1e-5;

/// Shape of the FAN block: `t` time steps, `f` features, `k` removed frequencies
/// (`k ≤ t/2`, the number of non-DC bins).
///
/// Parameters, in order: `scale[f]` (init 1), `shift[f]` (init 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanShape {
    pub t: usize,
    pub f: usize,
    pub k: usize,
}

impl FanShape {
    /// `2·f`: `scale[f]`, then `shift[f]`.
    pub fn n_params(&self) -> usize {
        2 * self.f
    }

    /// Parameters in order: `scale[f]` = 1, `shift[f]` = 0 (no randomness used).
    pub fn init<T: Real>(&self, p: &mut [T], _rng: &mut impl rand::Rng) {
        assert_eq!(
            p.len(),
            self.n_params(),
            "fan: parameter slice is not 2·f = {}",
            self.n_params()
        );
        let (scale, shift) = p.split_at_mut(self.f);
        super::params::fill(scale, 1.0);
        super::params::fill(shift, 0.0);
    }

    fn check(&self) {
        assert!(self.t > 0, "fan: t must be positive");
        assert!(
            self.k <= self.t / 2,
            "fan: k = {} frequencies asked but a length-{} series has only {} non-DC bins",
            self.k,
            self.t,
            self.t / 2
        );
    }
}

/// What [`fan_backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct FanCache<T> {
    /// Number of stocks.
    n: usize,
    /// `cos θ_jτ`, `[(t/2 + 1) × t]`, row `j`.
    cos: Vec<T>,
    /// `sin θ_jτ`, `[(t/2 + 1) × t]`, row `j`.
    sin: Vec<T>,
    /// Selected bins `[n × f × k]`, in order of descending amplitude.
    sel: Vec<usize>,
    /// `Re X_j`, `Im X_j` and `|X_j|` of the selected bins, `[n × f × k]`.
    re: Vec<T>,
    im: Vec<T>,
    mag: Vec<T>,
    /// `(e − μ)/σ`, `[n × t × f]`.
    xhat: Vec<T>,
    /// `1/σ`, `[n × f]`.
    rstd: Vec<T>,
}

/// `c_j/t`: the weight of bin `j` in the reconstruction and the amplitude channel.
fn bin_weight<T: Real>(j: usize, t: usize) -> T {
    if t.is_multiple_of(2) && 2 * j == t {
        T::c(1.0 / t as f64)
    } else {
        T::c(2.0 / t as f64)
    }
}

/// cos/sin tables `[(t/2 + 1) × t]` of `θ_jτ = 2π·(jτ mod t)/t`, exact at multiples of π/2.
pub(crate) fn tables<T: Real>(t: usize) -> (Vec<T>, Vec<T>) {
    let rows = t / 2 + 1;
    let mut cos = vec![T::zero(); rows * t];
    let mut sin = vec![T::zero(); rows * t];
    for j in 0..rows {
        for tau in 0..t {
            let a = (j * tau) % t;
            let (c, s) = if a == 0 {
                (1.0, 0.0)
            } else if 2 * a == t {
                (-1.0, 0.0)
            } else if 4 * a == t {
                (0.0, 1.0)
            } else if 4 * a == 3 * t {
                (0.0, -1.0)
            } else {
                let th = 2.0 * std::f64::consts::PI * a as f64 / t as f64;
                (th.cos(), th.sin())
            };
            cos[j * t + tau] = T::c(c);
            sin[j * t + tau] = T::c(s);
        }
    }
    (cos, sin)
}

/// One stock's share of the forward pass (rows `[t × f]`, `[f × k]`, `[f]`).
struct StockForward<T> {
    y: Vec<T>,
    amp: Vec<T>,
    sel: Vec<usize>,
    re: Vec<T>,
    im: Vec<T>,
    mag: Vec<T>,
    xhat: Vec<T>,
    rstd: Vec<T>,
}

/// `out = P·v`: the projection of a length-`t` series onto the selected frequencies.
fn project<T: Real>(v: &[T], sel: &[usize], cos: &[T], sin: &[T], t: usize, out: &mut [T]) {
    out.iter_mut().for_each(|o| *o = T::zero());
    for &j in sel {
        let cj = &cos[j * t..(j + 1) * t];
        let sj = &sin[j * t..(j + 1) * t];
        let mut a = T::zero();
        let mut b = T::zero();
        for tau in 0..t {
            a += v[tau] * cj[tau];
            b += v[tau] * sj[tau];
        }
        let w = bin_weight::<T>(j, t);
        let (a, b) = (a * w, b * w);
        for tau in 0..t {
            out[tau] += a * cj[tau] + b * sj[tau];
        }
    }
}

fn stock_forward<T: Real>(s: &FanShape, p: &[T], x: &[T], cos: &[T], sin: &[T]) -> StockForward<T> {
    let (t, f, k) = (s.t, s.f, s.k);
    let bins = t / 2;
    let (scale, shift) = p.split_at(f);
    let mut out = StockForward {
        y: vec![T::zero(); t * f],
        amp: vec![T::zero(); f * k],
        sel: vec![0; f * k],
        re: vec![T::zero(); f * k],
        im: vec![T::zero(); f * k],
        mag: vec![T::zero(); f * k],
        xhat: vec![T::zero(); t * f],
        rstd: vec![T::zero(); f],
    };
    let mut xs = vec![T::zero(); t];
    let mut r = vec![T::zero(); t];
    // Spectrum of bins 1..=t/2 (index j − 1).
    let mut re = vec![T::zero(); bins];
    let mut im = vec![T::zero(); bins];
    let mut mag = vec![T::zero(); bins];
    let mut taken = vec![false; bins];
    let tt = T::c(t as f64);
    for feat in 0..f {
        for tau in 0..t {
            xs[tau] = x[tau * f + feat];
        }
        for j in 1..=bins {
            let cj = &cos[j * t..(j + 1) * t];
            let sj = &sin[j * t..(j + 1) * t];
            let mut a = T::zero();
            let mut b = T::zero();
            for tau in 0..t {
                a += xs[tau] * cj[tau];
                b -= xs[tau] * sj[tau];
            }
            re[j - 1] = a;
            im[j - 1] = b;
            mag[j - 1] = a.hypot(b);
        }
        // Top-k by |X_j|, descending; a strict `>` keeps the lower j on ties.
        taken.iter_mut().for_each(|v| *v = false);
        let sel = &mut out.sel[feat * k..(feat + 1) * k];
        for slot in sel.iter_mut() {
            let mut best: Option<usize> = None;
            for b in 0..bins {
                if taken[b] {
                    continue;
                }
                match best {
                    None => best = Some(b),
                    Some(cur) if mag[b] > mag[cur] => best = Some(b),
                    _ => {}
                }
            }
            // k ≤ t/2, so an untaken bin always exists.
            let b = best.unwrap_or(0);
            taken[b] = true;
            *slot = b + 1;
        }
        for (i, &j) in sel.iter().enumerate() {
            let o = feat * k + i;
            out.re[o] = re[j - 1];
            out.im[o] = im[j - 1];
            out.mag[o] = mag[j - 1];
            out.amp[o] = bin_weight::<T>(j, t) * mag[j - 1];
        }
        project(&xs, sel, cos, sin, t, &mut r);
        // Residual, then its standardisation.
        for tau in 0..t {
            r[tau] = xs[tau] - r[tau];
        }
        let mu = r.iter().copied().sum::<T>() / tt;
        let var = r.iter().map(|e| (*e - mu) * (*e - mu)).sum::<T>() / tt;
        let rs = T::one() / (var + T::c(FAN_EPS)).sqrt();
        out.rstd[feat] = rs;
        for (tau, e) in r.iter().enumerate() {
            let h = (*e - mu) * rs;
            out.xhat[tau * f + feat] = h;
            out.y[tau * f + feat] = scale[feat] * h + shift[feat];
        }
    }
    out
}

/// FAN forward pass. `p` holds `scale[f]`, `shift[f]`; `x` is `[n × t × f]`.
///
/// Returns `y` `[n × t × f]` (the normalised residual, see the module docs), `amp`
/// `[n × f × k]` (`(c_j/t)·|X_j|` of the selected bins, descending) and the cache.
pub fn fan_forward<T: Real>(
    s: &FanShape,
    p: &[T],
    x: &[T],
    n: usize,
) -> (Vec<T>, Vec<T>, FanCache<T>) {
    s.check();
    let (t, f, k) = (s.t, s.f, s.k);
    assert_eq!(
        p.len(),
        s.n_params(),
        "fan: parameter slice is not 2·f = {}",
        s.n_params()
    );
    assert_eq!(x.len(), n * t * f, "fan: x is not {n}×{t}×{f}");
    let (cos, sin) = tables::<T>(t);
    let parts: Vec<StockForward<T>> = (0..n)
        .into_par_iter()
        .map(|st| stock_forward(s, p, &x[st * t * f..(st + 1) * t * f], &cos, &sin))
        .collect();
    let mut y = Vec::with_capacity(n * t * f);
    let mut amp = Vec::with_capacity(n * f * k);
    let mut cache = FanCache {
        n,
        cos,
        sin,
        sel: Vec::with_capacity(n * f * k),
        re: Vec::with_capacity(n * f * k),
        im: Vec::with_capacity(n * f * k),
        mag: Vec::with_capacity(n * f * k),
        xhat: Vec::with_capacity(n * t * f),
        rstd: Vec::with_capacity(n * f),
    };
    for part in parts {
        y.extend_from_slice(&part.y);
        amp.extend_from_slice(&part.amp);
        cache.sel.extend_from_slice(&part.sel);
        cache.re.extend_from_slice(&part.re);
        cache.im.extend_from_slice(&part.im);
        cache.mag.extend_from_slice(&part.mag);
        cache.xhat.extend_from_slice(&part.xhat);
        cache.rstd.extend_from_slice(&part.rstd);
    }
    (y, amp, cache)
}

/// One stock's backward pass: `dx` rows `[t × f]` and its `[dscale; dshift]` partial.
#[allow(clippy::too_many_arguments)]
fn stock_backward<T: Real>(
    s: &FanShape,
    p: &[T],
    c: &FanCache<T>,
    st: usize,
    dy: &[T],
    damp: &[T],
) -> (Vec<T>, Vec<T>) {
    let (t, f, k) = (s.t, s.f, s.k);
    let scale = &p[..f];
    let mut dx = vec![T::zero(); t * f];
    let mut dp = vec![T::zero(); 2 * f];
    let tt = T::c(t as f64);
    let mut dh = vec![T::zero(); t];
    let mut de = vec![T::zero(); t];
    let mut pde = vec![T::zero(); t];
    let xhat = &c.xhat[st * t * f..(st + 1) * t * f];
    for feat in 0..f {
        // y = scale·x̂ + shift.
        let mut sum_d = T::zero();
        let mut sum_dh = T::zero();
        for tau in 0..t {
            let d = dy[tau * f + feat];
            let h = xhat[tau * f + feat];
            dp[feat] += d * h;
            dp[f + feat] += d;
            dh[tau] = d * scale[feat];
            sum_d += dh[tau];
            sum_dh += dh[tau] * h;
        }
        // x̂ = (e − μ)/σ: the LayerNorm backward along time.
        let rs = c.rstd[st * f + feat];
        for tau in 0..t {
            de[tau] = rs * (dh[tau] - sum_d / tt - xhat[tau * f + feat] * sum_dh / tt);
        }
        // e = x − P·x with P symmetric: dx = de − P·de.
        let o = (st * f + feat) * k;
        let sel = &c.sel[o..o + k];
        project(&de, sel, &c.cos, &c.sin, t, &mut pde);
        for tau in 0..t {
            de[tau] -= pde[tau];
        }
        // amp_i = (c_j/t)·|X_j|: d|X_j|/dx_τ = (Re X_j·cos θ_jτ − Im X_j·sin θ_jτ)/|X_j|.
        for (i, &j) in sel.iter().enumerate() {
            let mag = c.mag[o + i];
            if mag <= T::zero() {
                continue;
            }
            let w = damp[feat * k + i] * bin_weight::<T>(j, t) / mag;
            let a = w * c.re[o + i];
            let b = w * c.im[o + i];
            let (cj, sj) = (&c.cos[j * t..(j + 1) * t], &c.sin[j * t..(j + 1) * t]);
            for ((d, cv), sv) in de.iter_mut().zip(cj).zip(sj) {
                *d += a * *cv - b * *sv;
            }
        }
        for tau in 0..t {
            dx[tau * f + feat] = de[tau];
        }
    }
    (dx, dp)
}

/// FAN backward pass. `dy` is `[n × t × f]`, `damp` `[n × f × k]`; adds `dscale`, `dshift`
/// into `g` (layout of `p`) and returns `dx` `[n × t × f]`.
///
/// Per series: `dscale += Σ_τ dy·x̂`, `dshift += Σ_τ dy`; with `d = scale·dy`,
/// `de = (d − mean d − x̂·mean(d·x̂))/σ`; `dx = de − P·de` (the residual's Jacobian, the
/// selection fixed) plus, for each selected bin,
/// `damp_i·(c_j/t)·(Re X_j·cos θ_jτ − Im X_j·sin θ_jτ)/|X_j|` (nothing when `|X_j| = 0`).
pub fn fan_backward<T: Real>(
    s: &FanShape,
    p: &[T],
    cache: &FanCache<T>,
    dy: &[T],
    damp: &[T],
    g: &mut [T],
) -> Vec<T> {
    s.check();
    let (t, f, k, n) = (s.t, s.f, s.k, cache.n);
    assert_eq!(
        p.len(),
        s.n_params(),
        "fan: parameter slice is not 2·f = {}",
        s.n_params()
    );
    assert_eq!(
        g.len(),
        s.n_params(),
        "fan: gradient slice is not 2·f = {}",
        s.n_params()
    );
    assert_eq!(dy.len(), n * t * f, "fan: dy is not {n}×{t}×{f}");
    assert_eq!(damp.len(), n * f * k, "fan: damp is not {n}×{f}×{k}");
    assert_eq!(
        cache.xhat.len(),
        n * t * f,
        "fan: the cache does not match the shape"
    );
    let parts: Vec<(Vec<T>, Vec<T>)> = (0..n)
        .into_par_iter()
        .map(|st| {
            stock_backward(
                s,
                p,
                cache,
                st,
                &dy[st * t * f..(st + 1) * t * f],
                &damp[st * f * k..(st + 1) * f * k],
            )
        })
        .collect();
    let mut dx = Vec::with_capacity(n * t * f);
    // Sequential reduction in stock order: independent of the thread count.
    for (dxs, dps) in parts {
        dx.extend_from_slice(&dxs);
        for (gv, d) in g.iter_mut().zip(&dps) {
            *gv += *d;
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{
        assert_close_grads, numeric_grad, on_threads, rand_f32, rand_vec,
    };
    use super::*;
    use std::f64::consts::PI;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn random_params(s: &FanShape, seed: u64) -> Vec<f64> {
        let mut p = rand_vec(s.n_params(), seed, 0.5);
        for v in &mut p[..s.f] {
            *v += 1.0;
        }
        p
    }

    fn gradient_check(s: FanShape, n: usize) {
        gradient_check_at(s, n, &rand_vec(n * s.t * s.f, 11 + s.t as u64, 1.0));
    }

    fn gradient_check_at(s: FanShape, n: usize, x: &[f64]) {
        let x = x.to_vec();
        let p = random_params(&s, 12);
        let ry = rand_vec(n * s.t * s.f, 13, 1.0);
        let ra = rand_vec(n * s.f * s.k, 14, 1.0);
        let loss = |p: &[f64], x: &[f64]| -> f64 {
            let (y, amp, _) = fan_forward(&s, p, x, n);
            dot(&y, &ry) + dot(&amp, &ra)
        };
        let (_, _, cache) = fan_forward(&s, &p, &x, n);
        let mut g = vec![0.0; s.n_params()];
        let dx = fan_backward(&s, &p, &cache, &ry, &ra, &mut g);
        assert_close_grads("fan dx", &dx, &numeric_grad(&x, |x| loss(&p, x)));
        let num = numeric_grad(&p, |p| loss(p, &x));
        assert_close_grads("fan dscale", &g[..s.f], &num[..s.f]);
        assert_close_grads("fan dshift", &g[s.f..], &num[s.f..]);
        // The amplitude path alone (dy = 0) is checked too, so it cannot hide behind y.
        let zero = vec![0.0; ry.len()];
        let mut g0 = vec![0.0; s.n_params()];
        let dxa = fan_backward(&s, &p, &cache, &zero, &ra, &mut g0);
        let num = numeric_grad(&x, |x| dot(&fan_forward(&s, &p, x, n).1, &ra));
        assert_close_grads("fan dx via amp", &dxa, &num);
    }

    #[test]
    fn fan_gradient_even_t() {
        gradient_check(FanShape { t: 8, f: 3, k: 2 }, 2);
    }

    #[test]
    fn fan_gradient_odd_t() {
        gradient_check(FanShape { t: 7, f: 3, k: 2 }, 2);
    }

    #[test]
    fn fan_gradient_with_the_nyquist_bin_selected() {
        // A strong (−1)^τ component puts the Nyquist bin (c_j = 1) among the k = 2 selected
        // of every series; the full gradient (y and amp paths) is checked there.
        let s = FanShape { t: 6, f: 2, k: 2 };
        let n = 2;
        let mut x = rand_vec(n * s.t * s.f, 21, 1.0);
        for (i, v) in x.iter_mut().enumerate() {
            let tau = (i / s.f) % s.t;
            *v += if tau.is_multiple_of(2) { 2.0 } else { -2.0 };
        }
        let p = random_params(&s, 22);
        let (_, _, cache) = fan_forward(&s, &p, &x, n);
        for sel in cache.sel.chunks(s.k) {
            assert_eq!(sel[0], 3, "the Nyquist bin must be selected first: {sel:?}");
        }
        gradient_check_at(s, n, &x);
    }

    #[test]
    fn amplitude_gradient_is_zero_at_a_zero_bin() {
        // A constant series with t = 4 (where the cos/sin tables are exact): every
        // |X_j| = 0 exactly, so the amplitude path must give 0, not 0/0.
        let s = FanShape { t: 4, f: 1, k: 2 };
        let p = vec![1.0, 0.0];
        let x = vec![3.0; 4];
        let (_, amp, cache) = fan_forward(&s, &p, &x, 1);
        assert_eq!(amp, vec![0.0, 0.0]);
        assert_eq!(cache.sel, vec![1, 2], "ties go to the lower bin");
        let mut g = vec![0.0; 2];
        let dx = fan_backward(&s, &p, &cache, &[0.0; 4], &[1.0, 1.0], &mut g);
        assert!(dx.iter().all(|v| *v == 0.0), "{dx:?}");
    }

    /// `|X_j|` of a series, `j = 0..=t/2`, by the textbook DFT.
    fn spectrum(v: &[f64]) -> Vec<f64> {
        let t = v.len();
        (0..=t / 2)
            .map(|j| {
                let (mut a, mut b) = (0.0, 0.0);
                for (tau, x) in v.iter().enumerate() {
                    let th = 2.0 * PI * (j * tau) as f64 / t as f64;
                    a += x * th.cos();
                    b -= x * th.sin();
                }
                a.hypot(b)
            })
            .collect()
    }

    fn standardise(v: &[f64]) -> Vec<f64> {
        let t = v.len() as f64;
        let mu = v.iter().sum::<f64>() / t;
        let var = v.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / t;
        v.iter()
            .map(|x| (x - mu) / (var + FAN_EPS).sqrt())
            .collect()
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let (za, zb) = (standardise(a), standardise(b));
        dot(&za, &zb) / a.len() as f64
    }

    #[test]
    fn fan_changes_a_non_stationary_input() {
        // A linear trend plus a strong period-5 sinusoid (bin 4 of t = 20) and a little noise.
        let s = FanShape { t: 20, f: 1, k: 2 };
        let p = vec![1.0, 0.0];
        let noise = rand_vec(20, 31, 0.1);
        let x: Vec<f64> = (0..20)
            .map(|tau| {
                0.3 * tau as f64 + 3.0 * (2.0 * PI * 4.0 * tau as f64 / 20.0).sin() + noise[tau]
            })
            .collect();
        let (y, amp, cache) = fan_forward(&s, &p, &x, 1);
        assert!(
            cache.sel.contains(&4),
            "the sinusoid's bin must be selected: {:?}",
            cache.sel
        );
        // The output is clearly not the plain standardised input.
        let z = standardise(&x);
        let diff = y
            .iter()
            .zip(&z)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            diff > 0.5,
            "FAN left the input nearly unchanged: max |y − z(x)| = {diff}"
        );
        // The sinusoid is gone from the residual's spectrum (y = (e − μ)/σ here), while it
        // dominated the input's.
        let sx = spectrum(&x);
        let sy = spectrum(&y);
        assert!(sx[4] > 25.0, "input bin 4 amplitude {}", sx[4]);
        for &j in &cache.sel {
            assert!(
                sy[j] < 1e-9,
                "selected bin {j} left in the residual: {}",
                sy[j]
            );
        }
        // Its amplitude moved to the amplitude channel (3 plus the trend's share of bin 4).
        let i = cache.sel.iter().position(|j| *j == 4).unwrap_or(usize::MAX);
        assert!((amp[i] - 3.0).abs() < 0.6, "amplitude of bin 4: {}", amp[i]);
    }

    /// What "stationary" means here. FAN always removes its `k` strongest frequencies, so a
    /// series whose energy lies outside its own top-`k` bins cannot exist, and the only
    /// input FAN leaves literally untouched is one with nothing to remove. The exact
    /// statement tested is: **on the stationary part of a series FAN is the identity up to
    /// the affine standardisation**. Take
    /// `x = c + p + s`, with `c` a constant level, `p` at most `k` sinusoids at Fourier
    /// frequencies (a periodic, wide-sense stationary component) dominating the spectrum,
    /// and `s` a stationary noise with no energy at `p`'s bins. Then FAN selects `p`'s bins,
    /// removes `p` exactly, and returns `y = scale·(s − mean s)/σ(s) + shift`, with the
    /// amplitude channels equal to `p`'s amplitudes. Special cases, checked to rounding (1e-9) too:
    /// `s = 0` gives `y = shift` (the residual is the constant `c`), and so does a constant
    /// series (`p = s = 0`). And FAN is invariant to a positive affine rescaling of the
    /// input (up to the ε in σ).
    #[test]
    fn fan_is_the_identity_up_to_scale_on_a_stationary_input() {
        let t = 20;
        let s = FanShape { t, f: 3, k: 2 };
        let p = vec![1.5, 0.7, 2.0, 0.25, -0.5, 1.0];
        let wave = |j: usize, a: f64, ph: f64, tau: usize| {
            a * (2.0 * PI * (j * tau) as f64 / t as f64 + ph).cos()
        };
        // Feature 0: constant. Feature 1: constant + exactly k = 2 sinusoids (bins 3 and 7).
        // Feature 2: constant + the same 2 sinusoids + noise projected off bins 3 and 7.
        let mut noise = rand_vec(t, 41, 0.5);
        let sel = [3usize, 7];
        let (cos, sin) = tables::<f64>(t);
        let mut proj = vec![0.0; t];
        project(&noise, &sel, &cos, &sin, t, &mut proj);
        for (v, q) in noise.iter_mut().zip(&proj) {
            *v -= q;
        }
        let mut x = vec![0.0; t * 3];
        for tau in 0..t {
            let periodic = wave(3, 2.0, 0.4, tau) + wave(7, 1.2, -1.1, tau);
            x[tau * 3] = 4.0;
            x[tau * 3 + 1] = -1.0 + periodic;
            x[tau * 3 + 2] = 0.5 + periodic + noise[tau];
        }
        let (y, amp, cache) = fan_forward(&s, &p, &x, 1);
        // Constant: y = shift, nothing removed (up to the rounding of the cos/sin tables:
        // |X_j| ~ 1e-15, divided by σ = sqrt(ε)).
        for tau in 0..t {
            assert!(
                (y[tau * 3] - p[3]).abs() < 1e-9,
                "constant series at τ = {tau}: {}",
                y[tau * 3]
            );
        }
        assert!(
            amp[0].abs() < 1e-12 && amp[1].abs() < 1e-12,
            "{:?}",
            &amp[0..2]
        );
        // Constant + k sinusoids: residual = the constant, y = shift; amp = the amplitudes.
        assert_eq!(&cache.sel[2..4], &[3, 7]);
        for tau in 0..t {
            assert!(
                (y[tau * 3 + 1] - p[4]).abs() < 1e-9,
                "periodic series at τ = {tau}: {}",
                y[tau * 3 + 1]
            );
        }
        assert!(
            (amp[2] - 2.0).abs() < 1e-12 && (amp[3] - 1.2).abs() < 1e-12,
            "{:?}",
            &amp[2..4]
        );
        // + stationary noise: y is exactly the standardised noise, scaled and shifted.
        assert_eq!(&cache.sel[4..6], &[3, 7]);
        let zs = standardise(&noise);
        for tau in 0..t {
            let want = p[2] * zs[tau] + p[5];
            assert!(
                (y[tau * 3 + 2] - want).abs() < 1e-9,
                "τ = {tau}: {} vs {want}",
                y[tau * 3 + 2]
            );
        }
        assert!((amp[4] - 2.0).abs() < 1e-12 && (amp[5] - 1.2).abs() < 1e-12);
        // Invariance to x → 3·x − 2, exactly up to the ε in σ: the standardised residual
        // becomes x̂·3·sqrt(v + ε)/sqrt(9v + ε), v the noise's variance.
        let x2: Vec<f64> = x.iter().map(|v| 3.0 * v - 2.0).collect();
        let (y2, _, _) = fan_forward(&s, &p, &x2, 1);
        let mu = noise.iter().sum::<f64>() / t as f64;
        let v = noise.iter().map(|e| (e - mu) * (e - mu)).sum::<f64>() / t as f64;
        let ratio = 3.0 * (v + FAN_EPS).sqrt() / (9.0 * v + FAN_EPS).sqrt();
        assert!((ratio - 1.0).abs() > 1e-5, "the check must see ε");
        for tau in 0..t {
            let (a, b) = (y[tau * 3 + 2], y2[tau * 3 + 2]);
            let want = (a - p[5]) * ratio + p[5];
            assert!(
                (b - want).abs() < 1e-9,
                "rescaled input at τ = {tau}: {b} vs {want}"
            );
        }
    }

    #[test]
    fn fan_keeps_white_noise_correlated_with_its_standardised_self() {
        // i.i.d. uniform noise, t = 20, k = 2 (the defaults): FAN removes the two strongest
        // of the ten non-DC bins, which for white noise are just the two largest draws.
        // Measured: mean correlation 0.7089 over these 500 series (minimum 0.3698).
        let s = FanShape {
            t: 20,
            f: 500,
            k: 2,
        };
        let p: Vec<f64> = [vec![1.0; 500], vec![0.0; 500]].concat();
        let x = rand_vec(20 * 500, 51, 1.0);
        let (y, _, _) = fan_forward(&s, &p, &x, 1);
        let mut sum = 0.0;
        let mut min = f64::MAX;
        for feat in 0..500 {
            let xs: Vec<f64> = (0..20).map(|tau| x[tau * 500 + feat]).collect();
            let ys: Vec<f64> = (0..20).map(|tau| y[tau * 500 + feat]).collect();
            let c = correlation(&xs, &ys);
            sum += c;
            min = min.min(c);
        }
        let mean = sum / 500.0;
        eprintln!("white noise: mean correlation {mean:.4}, min {min:.4}");
        assert!(mean > 0.69, "mean correlation {mean}");
        assert!(min > 0.30, "min correlation {min}");
    }

    #[test]
    fn fan_is_deterministic_at_any_thread_count() {
        let s = FanShape { t: 20, f: 7, k: 2 };
        let n = 64;
        let x: Vec<f32> = rand_f32(n * 20 * 7, 61, 1.0);
        let dy: Vec<f32> = rand_f32(n * 20 * 7, 62, 1.0);
        let da: Vec<f32> = rand_f32(n * 7 * 2, 63, 1.0);
        let mut p = vec![0f32; s.n_params()];
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        s.init(&mut p, &mut rng);
        let run = |threads| {
            on_threads(threads, || {
                let (y, amp, cache) = fan_forward(&s, &p, &x, n);
                let mut g = vec![0f32; s.n_params()];
                let dx = fan_backward(&s, &p, &cache, &dy, &da, &mut g);
                (y, amp, dx, g)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
