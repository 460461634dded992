//! kernels/fan.cu: frequency adaptive normalisation, mirroring `fan::fan_forward` /
//! `fan_backward`.

use super::layers::columns_launch;
use super::{Gpu, Launch, Result, Tensor, View, int};
use crate::jp_equity::model::fan::{FanShape, tables};
use lakebuild_kernels::{DType, Error};

/// The longest series the kernels hold in a thread (`LB_FAN_MAX_T`).
pub const MAX_T: usize = 64;
const BLOCK: u32 = 128;

/// What [`fan_backward`] needs from [`fan_forward`].
pub struct FanCache {
    pub n: usize,
    cos: Tensor,
    sin: Tensor,
    /// The selected bins `[n × f × k]` (i32), in order of descending amplitude.
    pub sel: Tensor,
    re: Tensor,
    im: Tensor,
    mag: Tensor,
    xhat: Tensor,
    rstd: Tensor,
}

fn check(s: &FanShape) -> Result<()> {
    if s.t == 0 || s.t > MAX_T || s.k > s.t / 2 {
        return Err(Error(format!(
            "fan: a window of {} steps with {} removed frequencies (the kernels take 1 to {MAX_T} steps and at most t/2 frequencies)",
            s.t, s.k
        )));
    }
    Ok(())
}

/// `x` `[n × t × f]` → `(y [n × t × f], amp [n × f × k], cache)`.
pub fn fan_forward(
    g: &Gpu,
    s: &FanShape,
    p: View,
    x: &Tensor,
    n: usize,
) -> Result<(Tensor, Tensor, FanCache)> {
    check(s)?;
    let (t, f, k) = (s.t, s.f, s.k);
    let (cos, sin) = tables::<f64>(t);
    let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let cache = FanCache {
        n,
        cos: g.upload_f32(&to32(cos))?,
        sin: g.upload_f32(&to32(sin))?,
        sel: Tensor::zeros(g.dev, n * f * k, DType::I32)?,
        re: g.zeros_f32(n * f * k)?,
        im: g.zeros_f32(n * f * k)?,
        mag: g.zeros_f32(n * f * k)?,
        xhat: g.zeros(n * t * f)?,
        rstd: g.zeros_f32(n * f)?,
    };
    let y = g.zeros(n * t * f)?;
    let amp = g.zeros(n * f * k)?;
    g.launch(
        "fan_forward",
        Launch::cover(n * f, BLOCK),
        &[
            x.arg(),
            p.arg(),
            p.offset(f).arg(),
            cache.cos.arg(),
            cache.sin.arg(),
            y.arg(),
            amp.arg(),
            cache.sel.arg(),
            cache.re.arg(),
            cache.im.arg(),
            cache.mag.arg(),
            cache.xhat.arg(),
            cache.rstd.arg(),
            int(n),
            int(t),
            int(f),
            int(k),
        ],
    )?;
    Ok((y, amp, cache))
}

/// Backward of [`fan_forward`] (the selection fixed): adds `∂scale`, `∂shift` into
/// `grads` and returns `∂x` (f32), given `dy` and `damp` (f32).
pub fn fan_backward(
    g: &Gpu,
    s: &FanShape,
    p: View,
    cache: &FanCache,
    dy: &Tensor,
    damp: &Tensor,
    grads: View,
) -> Result<Tensor> {
    check(s)?;
    let (t, f, k, n) = (s.t, s.f, s.k, cache.n);
    let dx = g.zeros_f32(n * t * f)?;
    let partial = g.zeros_f32(n * 2 * f)?;
    g.launch(
        "fan_backward",
        Launch::cover(n * f, BLOCK),
        &[
            p.arg(),
            cache.cos.arg(),
            cache.sin.arg(),
            cache.sel.arg(),
            cache.re.arg(),
            cache.im.arg(),
            cache.mag.arg(),
            cache.xhat.arg(),
            cache.rstd.arg(),
            dy.arg(),
            damp.arg(),
            dx.arg(),
            partial.arg(),
            int(n),
            int(t),
            int(f),
            int(k),
        ],
    )?;
    g.launch_f32(
        "column_sum",
        columns_launch(2 * f),
        &[partial.arg(), grads.arg(), int(n), int(2 * f)],
    )?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::fan as cpu;
    use lakebuild_kernels::Precision;

    /// The inputs as the kernels see them: rounded to the storage precision, so that the
    /// top-k selection (a discontinuous choice) is made on the same numbers by both.
    fn stored(v: &[f32], p: Precision) -> Vec<f32> {
        v.iter().map(|x| p.stored(*x)).collect()
    }

    #[test]
    fn fan_matches_the_cpu_reference_at_odd_and_even_windows() {
        // 30 stocks × 9 features; t = 20 (a Nyquist bin) and t = 15 (none); 140 series
        // per launch cover one full and one partial block of 128.
        for (t, k) in [(20, 3), (15, 2)] {
            let s = FanShape { t, f: 9, k };
            let n = 30;
            let p0: Vec<f32> = (0..2 * s.f)
                .map(|i| {
                    if i < s.f {
                        1.0 + 0.1 * i as f32
                    } else {
                        0.05 * i as f32
                    }
                })
                .collect();
            let x0 = values(n * t * s.f, 121, 1.0);
            // A series of zeros (every amplitude exactly 0: no amplitude gradient, the
            // residual's variance only ε) for stock 0's first feature.
            let mut x0 = x0;
            for tau in 0..t {
                x0[tau * s.f] = 0.0;
            }
            let dy = values(n * t * s.f, 122, 1.0);
            let damp = values(n * s.f * s.k, 123, 1.0);
            both(|g| {
                let (p, x) = (stored(&p0, g.precision), stored(&x0, g.precision));
                let (cpu_y, cpu_amp, cache) = cpu::fan_forward(&s, &p, &x, n);
                let mut cpu_g = vec![0f32; s.n_params()];
                let cpu_dx = cpu::fan_backward(&s, &p, &cache, &dy, &damp, &mut cpu_g);
                let run = || -> Result<_> {
                    let (tp, tx) = (g.upload(&p)?, g.upload(&x)?);
                    let (y, amp, c) = fan_forward(&g, &s, (&tp).into(), &tx, n)?;
                    let grads = g.zeros_f32(s.n_params())?;
                    let dx = fan_backward(
                        &g,
                        &s,
                        (&tp).into(),
                        &c,
                        &g.upload_f32(&dy)?,
                        &g.upload_f32(&damp)?,
                        (&grads).into(),
                    )?;
                    Ok((
                        g.download(&y)?,
                        g.download(&amp)?,
                        g.download(&dx)?,
                        g.download(&grads)?,
                    ))
                };
                let (y, amp, dx, grads) = run().expect("shim");
                let pr = g.precision;
                assert_matches(&format!("fan_forward y (t = {t})"), pr, &y, &cpu_y);
                assert_matches(&format!("fan_forward amp (t = {t})"), pr, &amp, &cpu_amp);
                assert_matches(&format!("fan_backward ∂x (t = {t})"), pr, &dx, &cpu_dx);
                assert_matches(
                    &format!("fan_backward ∂scale (t = {t})"),
                    pr,
                    &grads[..s.f],
                    &cpu_g[..s.f],
                );
                assert_matches(
                    &format!("fan_backward ∂shift (t = {t})"),
                    pr,
                    &grads[s.f..],
                    &cpu_g[s.f..],
                );
            });
        }
    }

    #[test]
    fn a_window_longer_than_the_kernels_hold_is_an_error() {
        both(|g| {
            let s = FanShape {
                t: MAX_T + 1,
                f: 1,
                k: 1,
            };
            let x = g.zeros(s.t).expect("alloc");
            let p = g.zeros(2).expect("alloc");
            let err = fan_forward(&g, &s, (&p).into(), &x, 1)
                .err()
                .expect("an error");
            assert!(err.0.contains("1 to 64 steps"), "{}", err.0);
        });
    }
}
