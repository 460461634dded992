//! kernels/attention.cu: the temporal block's causal multi-head self-attention with its
//! residual and LayerNorm, mirroring `attention::attention_forward` /
//! `attention_backward` (the projections and LayerNorm are layers.cu's).

use super::heads::copy_rows;
use super::layers::{
    LayerNormCache, gemm_launch, layer_norm, layer_norm_backward, linear, linear_backward,
};
use super::{Arg, Gpu, Launch, Result, Tensor, View, int};
use crate::jp_equity::model::attention::AttnShape;
use lakebuild_kernels::Error;

/// The most dynamic shared memory a block may ask for without opting in (48 KiB).
const MAX_SHARED: usize = 48 * 1024;

/// Where each parameter piece starts (`AttnShape`'s order: wq bq wk bk wv bv wo bo ln_g ln_b).
fn piece(s: &AttnShape, k: usize) -> usize {
    let h = s.h;
    (h * h + h) * (k / 2) + if k % 2 == 1 { h * h } else { 0 }
}
const WQ: usize = 0;
const WK: usize = 2;
const WV: usize = 4;
const WO: usize = 6;

fn ln_g(s: &AttnShape) -> usize {
    4 * (s.h * s.h + s.h)
}

/// What [`attention_backward`] needs from [`attention_forward`] (the input stays the
/// caller's).
pub struct AttnCache {
    pub n: usize,
    pub t: usize,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    /// `[n × heads × t × t]`, f32, zero above the diagonal.
    pub probs: Tensor,
    pub ctx: Tensor,
    /// `x + C·wo + bo`, the LayerNorm's input.
    pub r: Tensor,
    pub ln: LayerNormCache,
}

/// One block per (stock, head), one thread per step.
fn core_launch(s: &AttnShape, n: usize, t: usize, shared: usize) -> Result<Launch> {
    if t > 1024 || shared > MAX_SHARED {
        return Err(Error(format!(
            "attention: a window of {t} steps needs {shared} bytes of shared memory per block (at most {MAX_SHARED}, 1,024 steps)"
        )));
    }
    Ok(Launch {
        grid: ((n * s.heads).max(1) as u32, 1, 1),
        block: (t.div_ceil(32).max(1) as u32 * 32, 1, 1),
        shared_bytes: shared as u32,
    })
}

fn check(s: &AttnShape) -> Result<usize> {
    if s.heads == 0 || !s.h.is_multiple_of(s.heads) {
        return Err(Error(format!(
            "attention: h = {} is not a multiple of heads = {}",
            s.h, s.heads
        )));
    }
    Ok(s.h / s.heads)
}

/// `x` `[n × t × h]` → `y = LayerNorm(x + MHA(x))`.
pub fn attention_forward(
    g: &Gpu,
    s: &AttnShape,
    p: View,
    x: &Tensor,
    n: usize,
    t: usize,
) -> Result<(Tensor, AttnCache)> {
    let d = check(s)?;
    let (h, m) = (s.h, n * t);
    let proj = |k: usize| {
        linear(
            g,
            x.into(),
            p.offset(piece(s, k)),
            Some(p.offset(piece(s, k + 1))),
            m,
            h,
            h,
        )
    };
    let (q, k, v) = (proj(WQ)?, proj(WK)?, proj(WV)?);
    let probs = g.zeros_f32(n * s.heads * t * t)?;
    let ctx = g.zeros(m * h)?;
    let scale = 1.0 / (d as f32).sqrt();
    g.launch(
        "attention_forward_core",
        core_launch(s, n, t, 2 * t * d * 4)?,
        &[
            q.arg(),
            k.arg(),
            v.arg(),
            probs.arg(),
            ctx.arg(),
            int(t),
            int(h),
            int(s.heads),
            Arg::F32(scale),
        ],
    )?;
    // r = x, then r += C·wo + bo (the product kernel in accumulating mode).
    let r = g.zeros(m * h)?;
    copy_rows(g, false, x.into(), h, (&r).into(), h, m, h)?;
    g.launch(
        "matmul_forward",
        gemm_launch(m, h),
        &[
            ctx.arg(),
            p.offset(piece(s, WO)).arg(),
            p.offset(piece(s, WO + 1)).arg(),
            r.arg(),
            int(m),
            int(h),
            int(h),
            Arg::I32(1),
        ],
    )?;
    let (y, ln) = layer_norm(g, &r, p.offset(ln_g(s)), p.offset(ln_g(s) + h), m, h)?;
    Ok((
        y,
        AttnCache {
            n,
            t,
            q,
            k,
            v,
            probs,
            ctx,
            r,
            ln,
        },
    ))
}

/// Backward of [`attention_forward`]: adds every parameter's gradient into `grads` and
/// returns `∂x` (f32), given the forward's input `x` and `dy` (f32).
pub fn attention_backward(
    g: &Gpu,
    s: &AttnShape,
    p: View,
    x: &Tensor,
    cache: &AttnCache,
    dy: &Tensor,
    grads: View,
) -> Result<Tensor> {
    let d = check(s)?;
    let (h, n, t) = (s.h, cache.n, cache.t);
    let m = n * t;
    let lg = ln_g(s);
    let dr = layer_norm_backward(
        g,
        dy,
        &cache.r,
        p.offset(lg),
        &cache.ln,
        grads.offset(lg),
        grads.offset(lg + h),
        m,
        h,
    )?;
    let dctx = g.zeros_f32(m * h)?;
    linear_backward(
        g,
        (&cache.ctx).into(),
        p.offset(piece(s, WO)),
        (&dr).into(),
        m,
        h,
        h,
        grads.offset(piece(s, WO)),
        Some(grads.offset(piece(s, WO + 1))),
        Some((&dctx).into()),
    )?;
    let (dq, dk, dv) = (
        g.zeros_f32(m * h)?,
        g.zeros_f32(m * h)?,
        g.zeros_f32(m * h)?,
    );
    g.launch(
        "attention_backward_core",
        core_launch(s, n, t, t * t * 4)?,
        &[
            cache.q.arg(),
            cache.k.arg(),
            cache.v.arg(),
            cache.probs.arg(),
            dctx.arg(),
            dq.arg(),
            dk.arg(),
            dv.arg(),
            int(t),
            int(h),
            int(s.heads),
            Arg::F32(1.0 / (d as f32).sqrt()),
        ],
    )?;
    // dx = dr + dQ·wqᵀ + dK·wkᵀ + dV·wvᵀ, accumulated into dr.
    for (dproj, k) in [(&dq, WQ), (&dk, WK), (&dv, WV)] {
        linear_backward(
            g,
            x.into(),
            p.offset(piece(s, k)),
            dproj.into(),
            m,
            h,
            h,
            grads.offset(piece(s, k)),
            Some(grads.offset(piece(s, k + 1))),
            Some((&dr).into()),
        )?;
    }
    Ok(dr)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::attention as cpu;

    #[test]
    fn causal_attention_matches_the_cpu_reference() {
        // 30 stocks × 20 steps (one warp of threads per block, 12 past the window), 3
        // heads of 4 channels.
        let s = AttnShape { h: 12, heads: 3 };
        let (n, t) = (30, 20);
        let mut p = values(s.n_params(), 101, 0.5);
        for v in &mut p[ln_g(&s)..ln_g(&s) + s.h] {
            *v += 1.0;
        }
        let x = values(n * t * s.h, 102, 1.0);
        let dy = values(n * t * s.h, 103, 1.0);
        let (cpu_y, cache) = cpu::attention_forward(&s, &p, &x, n, t);
        let mut cpu_g = vec![0f32; s.n_params()];
        let cpu_dx = cpu::attention_backward(&s, &p, &cache, &dy, &mut cpu_g);
        assert_eq!(piece(&s, 8), ln_g(&s));
        both(|g| {
            let run = || -> Result<_> {
                let (tp, tx) = (g.upload(&p)?, g.upload(&x)?);
                let (y, c) = attention_forward(&g, &s, (&tp).into(), &tx, n, t)?;
                let grads = g.zeros_f32(s.n_params())?;
                let dx = attention_backward(
                    &g,
                    &s,
                    (&tp).into(),
                    &tx,
                    &c,
                    &g.upload_f32(&dy)?,
                    (&grads).into(),
                )?;
                Ok((
                    g.download(&y)?,
                    g.download(&c.probs)?,
                    g.download(&dx)?,
                    g.download(&grads)?,
                ))
            };
            let (y, probs, dx, grads) = run().expect("shim");
            let pr = g.precision;
            assert_matches("attention_forward y", pr, &y, &cpu_y);
            assert_matches("attention_forward P", pr, &probs, &cache.probs);
            assert_matches("attention_backward ∂x", pr, &dx, &cpu_dx);
            let names = [
                "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "ln_g", "ln_b",
            ];
            for (k, name) in names.iter().enumerate() {
                // ∂bk is zero up to rounding (the softmax cancels it): compared by size.
                let r = piece(&s, k)..if k + 1 < names.len() {
                    piece(&s, k + 1)
                } else {
                    s.n_params()
                };
                let r = if k == 8 {
                    ln_g(&s)..ln_g(&s) + s.h
                } else if k == 9 {
                    ln_g(&s) + s.h..s.n_params()
                } else {
                    r
                };
                if *name == "bk" {
                    let norm = grads[r]
                        .iter()
                        .map(|v| (*v as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    assert!(
                        norm < 1e-3,
                        "attention_backward ∂bk ({pr:?}): {norm:.3e}, not ≈ 0"
                    );
                    continue;
                }
                assert_matches(
                    &format!("attention_backward ∂{name}"),
                    pr,
                    &grads[r.clone()],
                    &cpu_g[r],
                );
            }
        });
    }
}
