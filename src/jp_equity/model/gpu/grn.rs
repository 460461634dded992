//! kernels/grn.cu: the gated residual network and the variable selection network,
//! mirroring `grn::grn_forward` / `grn_backward` and `grn::vsn_forward` /
//! `vsn_backward` (the products and LayerNorm are layers.cu's).

use super::layers::{
    LayerNormCache, layer_norm, layer_norm_backward, linear, linear_backward, rows_launch,
};
use super::{Arg, Gpu, Result, Tensor, View, elementwise, int};
use crate::jp_equity::model::grn::{GrnShape, VsnShape};
use lakebuild_kernels::Error;

/// Where each GRN parameter piece starts (`GrnShape`'s order).
struct GrnOffsets {
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    w_skip: usize,
    ln_g: usize,
    ln_b: usize,
}

impl GrnOffsets {
    fn of(s: &GrnShape) -> GrnOffsets {
        let (i, h, o) = (s.din, s.dh, s.dout);
        let b1 = i * h;
        let w2 = b1 + h;
        let b2 = w2 + h * 2 * o;
        let w_skip = b2 + 2 * o;
        let ln_g = w_skip + i * o;
        let ln_b = ln_g + o;
        debug_assert_eq!(ln_b + o, s.n_params());
        GrnOffsets {
            w1: 0,
            b1,
            w2,
            b2,
            w_skip,
            ln_g,
            ln_b,
        }
    }
}

/// What [`grn_backward`] needs from [`grn_forward`] (the input stays the caller's).
pub struct GrnCache {
    m: usize,
    pre: Tensor,
    hid: Tensor,
    u: Tensor,
    /// `a·W_skip + GLU(u)`, the LayerNorm's input.
    z: Tensor,
    ln: LayerNormCache,
}

fn mask_arg(mask: Option<&Tensor>, len: usize) -> Result<Arg<'_>> {
    match mask {
        Some(t) if t.len != len => Err(Error(format!(
            "grn: the dropout mask has {} entries, not {len}",
            t.len
        ))),
        Some(t) => Ok(t.arg()),
        None => Ok(Arg::Null),
    }
}

/// `GRN(a)` over `m` rows (`a` is `[m × din]` in the storage precision; `dropout` an
/// optional `[m × dh]` mask on the ELU's output).
pub fn grn_forward(
    g: &Gpu,
    s: &GrnShape,
    p: View,
    a: &Tensor,
    m: usize,
    dropout: Option<&Tensor>,
) -> Result<(Tensor, GrnCache)> {
    let (i, h, o) = (s.din, s.dh, s.dout);
    let off = GrnOffsets::of(s);
    let mask = mask_arg(dropout, m * h)?;
    let pre = linear(
        g,
        a.into(),
        p.offset(off.w1),
        Some(p.offset(off.b1)),
        m,
        i,
        h,
    )?;
    let hid = g.zeros(m * h)?;
    g.launch(
        "elu_mask_forward",
        elementwise(m * h),
        &[pre.arg(), mask, hid.arg(), int(m * h)],
    )?;
    let u = linear(
        g,
        (&hid).into(),
        p.offset(off.w2),
        Some(p.offset(off.b2)),
        m,
        h,
        2 * o,
    )?;
    let z = g.zeros(m * o)?;
    g.launch(
        "glu_forward",
        elementwise(m * o),
        &[u.arg(), z.arg(), int(m), int(o)],
    )?;
    // z += a·W_skip (the product kernel in accumulating mode).
    g.launch(
        "matmul_forward",
        super::layers::gemm_launch(m, o),
        &[
            a.arg(),
            p.offset(off.w_skip).arg(),
            Arg::Null,
            z.arg(),
            int(m),
            int(i),
            int(o),
            Arg::I32(1),
        ],
    )?;
    let (y, ln) = layer_norm(g, &z, p.offset(off.ln_g), p.offset(off.ln_b), m, o)?;
    Ok((
        y,
        GrnCache {
            m,
            pre,
            hid,
            u,
            z,
            ln,
        },
    ))
}

/// Backward of [`grn_forward`]: adds the parameter gradients into `grads` (the GRN's
/// range of the f32 gradient) and `∂a` into `da` (f32 `[m × din]`).
#[allow(clippy::too_many_arguments)]
pub fn grn_backward_into(
    g: &Gpu,
    s: &GrnShape,
    p: View,
    a: &Tensor,
    cache: &GrnCache,
    dropout: Option<&Tensor>,
    dy: &Tensor,
    grads: View,
    da: View,
) -> Result<()> {
    let (i, h, o, m) = (s.din, s.dh, s.dout, cache.m);
    let off = GrnOffsets::of(s);
    let mask = mask_arg(dropout, m * h)?;
    let dz = layer_norm_backward(
        g,
        dy,
        &cache.z,
        p.offset(off.ln_g),
        &cache.ln,
        grads.offset(off.ln_g),
        grads.offset(off.ln_b),
        m,
        o,
    )?;
    linear_backward(
        g,
        a.into(),
        p.offset(off.w_skip),
        (&dz).into(),
        m,
        i,
        o,
        grads.offset(off.w_skip),
        None,
        Some(da),
    )?;
    let du = g.zeros_f32(m * 2 * o)?;
    g.launch(
        "glu_backward",
        elementwise(m * o),
        &[cache.u.arg(), dz.arg(), du.arg(), int(m), int(o)],
    )?;
    let dhid = g.zeros_f32(m * h)?;
    linear_backward(
        g,
        (&cache.hid).into(),
        p.offset(off.w2),
        (&du).into(),
        m,
        h,
        2 * o,
        grads.offset(off.w2),
        Some(grads.offset(off.b2)),
        Some((&dhid).into()),
    )?;
    g.launch(
        "elu_mask_backward",
        elementwise(m * h),
        &[dhid.arg(), cache.pre.arg(), mask, int(m * h)],
    )?;
    linear_backward(
        g,
        a.into(),
        p.offset(off.w1),
        (&dhid).into(),
        m,
        i,
        h,
        grads.offset(off.w1),
        Some(grads.offset(off.b1)),
        Some(da),
    )
}

/// Backward of [`grn_forward`], returning `∂a` (as `grn::grn_backward`).
#[allow(clippy::too_many_arguments)]
pub fn grn_backward(
    g: &Gpu,
    s: &GrnShape,
    p: View,
    a: &Tensor,
    cache: &GrnCache,
    dropout: Option<&Tensor>,
    dy: &Tensor,
    grads: View,
) -> Result<Tensor> {
    let da = g.zeros_f32(cache.m * s.din)?;
    grn_backward_into(g, s, p, a, cache, dropout, dy, grads, (&da).into())?;
    Ok(da)
}

/// What [`vsn_backward`] needs from [`vsn_forward`].
pub struct VsnCache {
    /// The selection weights `[m × f]` (storage precision), each row summing to 1.
    pub weights: Tensor,
    m: usize,
    xs: Tensor,
    /// `xs·W_in + b_in`, the LayerNorm's input.
    v: Tensor,
    grn: GrnCache,
    ln: LayerNormCache,
}

/// `VSN(x)` over `m` rows (`x` is `[m × f]`; `dropout` an optional `[m × h]` mask on the
/// selection GRN's hidden layer), as `grn::vsn_forward`.
pub fn vsn_forward(
    g: &Gpu,
    s: &VsnShape,
    p: View,
    x: &Tensor,
    m: usize,
    dropout: Option<&Tensor>,
) -> Result<(Tensor, VsnCache)> {
    let (f, h) = (s.f, s.h);
    let gn = s.grn().n_params();
    let (w_in, b_in, ln_g, ln_b) = (gn, gn + f * h, gn + f * h + h, gn + f * h + 2 * h);
    let (logits, grn) = grn_forward(g, &s.grn(), p, x, m, dropout)?;
    let weights = g.zeros(m * f)?;
    g.launch(
        "softmax_rows_forward",
        rows_launch(m),
        &[logits.arg(), weights.arg(), int(m), int(f)],
    )?;
    let xs = g.zeros(m * f)?;
    g.launch(
        "select_forward",
        elementwise(m * f),
        &[weights.arg(), x.arg(), xs.arg(), int(m * f)],
    )?;
    let v = linear(
        g,
        (&xs).into(),
        p.offset(w_in),
        Some(p.offset(b_in)),
        m,
        f,
        h,
    )?;
    let (y, ln) = layer_norm(g, &v, p.offset(ln_g), p.offset(ln_b), m, h)?;
    Ok((
        y,
        VsnCache {
            weights,
            m,
            xs,
            v,
            grn,
            ln,
        },
    ))
}

/// Backward of [`vsn_forward`]: adds every parameter's gradient (the GRN's included)
/// into `grads` and returns `∂x` (f32), through the weighted input and the weights.
#[allow(clippy::too_many_arguments)]
pub fn vsn_backward(
    g: &Gpu,
    s: &VsnShape,
    p: View,
    x: &Tensor,
    cache: &VsnCache,
    dropout: Option<&Tensor>,
    dy: &Tensor,
    grads: View,
) -> Result<Tensor> {
    let (f, h, m) = (s.f, s.h, cache.m);
    let gn = s.grn().n_params();
    let (w_in, b_in, ln_g, ln_b) = (gn, gn + f * h, gn + f * h + h, gn + f * h + 2 * h);
    let dv = layer_norm_backward(
        g,
        dy,
        &cache.v,
        p.offset(ln_g),
        &cache.ln,
        grads.offset(ln_g),
        grads.offset(ln_b),
        m,
        h,
    )?;
    let dxs = g.zeros_f32(m * f)?;
    linear_backward(
        g,
        (&cache.xs).into(),
        p.offset(w_in),
        (&dv).into(),
        m,
        f,
        h,
        grads.offset(w_in),
        Some(grads.offset(b_in)),
        Some((&dxs).into()),
    )?;
    let dx = g.zeros_f32(m * f)?;
    let dlogits = g.zeros_f32(m * f)?;
    g.launch(
        "select_backward",
        rows_launch(m),
        &[
            dxs.arg(),
            cache.weights.arg(),
            x.arg(),
            dx.arg(),
            dlogits.arg(),
            int(m),
            int(f),
        ],
    )?;
    grn_backward_into(
        g,
        &s.grn(),
        p,
        x,
        &cache.grn,
        dropout,
        &dlogits,
        grads,
        (&dx).into(),
    )?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::grn as cpu;

    /// A dropout mask of 0 and 1/(1 − 0.25).
    fn mask(len: usize, seed: u64) -> Vec<f32> {
        values(len, seed, 1.0)
            .iter()
            .map(|v| if *v < -0.5 { 0.0 } else { 1.0 / 0.75 })
            .collect()
    }

    #[test]
    fn the_grn_matches_the_cpu_reference_with_and_without_dropout() {
        // 600 rows = 30 stocks × 20 days; widths that do not fill a 16-wide tile.
        let s = GrnShape {
            din: 7,
            dh: 12,
            dout: 5,
        };
        let m = 600;
        let mut p = values(s.n_params(), 91, 0.5);
        let off = GrnOffsets::of(&s);
        for v in &mut p[off.ln_g..off.ln_g + s.dout] {
            *v += 1.0;
        }
        let a = values(m * s.din, 92, 1.0);
        let dy = values(m * s.dout, 93, 1.0);
        for drop in [None, Some(mask(m * s.dh, 94))] {
            let (cpu_y, cache) = cpu::grn_forward(&s, &p, &a, m, drop.as_deref());
            let mut cpu_g = vec![0f32; s.n_params()];
            let cpu_da = cpu::grn_backward(&s, &p, &cache, &dy, &mut cpu_g);
            let what = if drop.is_some() {
                "with dropout"
            } else {
                "without dropout"
            };
            both(|g| {
                let run = || -> Result<_> {
                    let (tp, ta) = (g.upload(&p)?, g.upload(&a)?);
                    let tm = drop.as_deref().map(|d| g.upload(d)).transpose()?;
                    let (y, c) = grn_forward(&g, &s, (&tp).into(), &ta, m, tm.as_ref())?;
                    let grads = g.zeros_f32(s.n_params())?;
                    let da = grn_backward(
                        &g,
                        &s,
                        (&tp).into(),
                        &ta,
                        &c,
                        tm.as_ref(),
                        &g.upload_f32(&dy)?,
                        (&grads).into(),
                    )?;
                    Ok((g.download(&y)?, g.download(&da)?, g.download(&grads)?))
                };
                let (y, da, grads) = run().expect("shim");
                assert_matches(&format!("grn_forward ({what})"), g.precision, &y, &cpu_y);
                assert_matches(
                    &format!("grn_backward ∂a ({what})"),
                    g.precision,
                    &da,
                    &cpu_da,
                );
                for (name, r) in [
                    ("w1", off.w1..off.b1),
                    ("b1", off.b1..off.w2),
                    ("w2", off.w2..off.b2),
                    ("b2", off.b2..off.w_skip),
                    ("w_skip", off.w_skip..off.ln_g),
                    ("ln_g", off.ln_g..off.ln_b),
                    ("ln_b", off.ln_b..s.n_params()),
                ] {
                    assert_matches(
                        &format!("grn_backward ∂{name} ({what})"),
                        g.precision,
                        &grads[r.clone()],
                        &cpu_g[r],
                    );
                }
            });
        }
    }

    #[test]
    fn variable_selection_matches_the_cpu_reference() {
        // 40 features (more than one warp's 32 lanes per row), hidden 16.
        let s = VsnShape { f: 40, h: 16 };
        let m = 120;
        let mut p = values(s.n_params(), 95, 0.4);
        let gn = s.grn().n_params();
        let ln_g = gn + s.f * s.h + s.h;
        for r in [gn - 2 * s.f..gn - s.f, ln_g..ln_g + s.h] {
            for v in &mut p[r] {
                *v += 1.0;
            }
        }
        let x = values(m * s.f, 96, 1.0);
        let dy = values(m * s.h, 97, 1.0);
        let drop = mask(m * s.h, 98);
        let (cpu_y, cache) = cpu::vsn_forward(&s, &p, &x, m, Some(&drop));
        let mut cpu_g = vec![0f32; s.n_params()];
        let cpu_dx = cpu::vsn_backward(&s, &p, &cache, &dy, &mut cpu_g);
        both(|g| {
            let run = || -> Result<_> {
                let (tp, tx, tm) = (g.upload(&p)?, g.upload(&x)?, g.upload(&drop)?);
                let (y, c) = vsn_forward(&g, &s, (&tp).into(), &tx, m, Some(&tm))?;
                let grads = g.zeros_f32(s.n_params())?;
                let dx = vsn_backward(
                    &g,
                    &s,
                    (&tp).into(),
                    &tx,
                    &c,
                    Some(&tm),
                    &g.upload_f32(&dy)?,
                    (&grads).into(),
                )?;
                Ok((
                    g.download(&y)?,
                    g.download(&c.weights)?,
                    g.download(&dx)?,
                    g.download(&grads)?,
                ))
            };
            let (y, w, dx, grads) = run().expect("shim");
            let pr = g.precision;
            assert_matches("vsn_forward y", pr, &y, &cpu_y);
            assert_matches("vsn_forward weights", pr, &w, &cache.weights);
            assert_matches("vsn_backward ∂x", pr, &dx, &cpu_dx);
            assert_matches(
                "vsn_backward ∂(selection GRN)",
                pr,
                &grads[..gn],
                &cpu_g[..gn],
            );
            assert_matches(
                "vsn_backward ∂(input layer and LayerNorm)",
                pr,
                &grads[gn..],
                &cpu_g[gn..],
            );
        });
    }
}
