//! kernels/heads.cu and the product kernels: the quantile heads, mirroring
//! `heads::heads_forward` / `heads_backward` (same parameter layout: per horizon `w1`,
//! `b1`, `w2`, `b2`, each head contiguous; output `q[(i·horizons + k)·5 + j]`).

use super::layers::{linear, linear_backward};
use super::{Arg, Gpu, Result, Tensor, View, elementwise, int};
use crate::jp_equity::model::heads::{HeadsShape, NQ};

/// Offsets of head `k`'s pieces inside the heads' parameters.
fn pieces(s: &HeadsShape, k: usize) -> [usize; 4] {
    let (h, m) = (s.h, s.hidden());
    let base = k * s.per_head();
    [
        base,
        base + h * m,
        base + h * m + m,
        base + h * m + m + m * NQ,
    ]
}

/// What [`heads_backward`] needs: per horizon the pre-activation and the hidden output.
pub struct HeadsCache {
    pub n: usize,
    pub pre: Vec<Tensor>,
    pub hidden: Vec<Tensor>,
}

/// Forward pass of all heads (`heads::heads_forward`): `z` is `n × h`, `p` the heads'
/// parameters, `dropout` an optional mask `[n × horizons × h/2]`.
pub fn heads_forward(
    g: &Gpu,
    s: &HeadsShape,
    p: View,
    z: View,
    n: usize,
    dropout: Option<View>,
) -> Result<(Tensor, HeadsCache)> {
    let (h, m, hz) = (s.h, s.hidden(), s.horizons);
    let q = g.zeros(n * hz * NQ)?;
    let mut cache = HeadsCache {
        n,
        pre: Vec::with_capacity(hz),
        hidden: Vec::with_capacity(hz),
    };
    for k in 0..hz {
        let [w1, b1, w2, b2] = pieces(s, k);
        let a = linear(g, z, p.offset(w1), Some(p.offset(b1)), n, h, m)?;
        let r = g.zeros(n * m)?;
        g.launch(
            "relu_mask_forward",
            elementwise(n * m),
            &[
                a.arg(),
                dropout.map_or(Arg::Null, |d| d.offset(k * m).arg()),
                int(hz * m),
                r.arg(),
                int(n),
                int(m),
            ],
        )?;
        let qk = linear(g, (&r).into(), p.offset(w2), Some(p.offset(b2)), n, m, NQ)?;
        copy_rows(
            g,
            false,
            (&qk).into(),
            NQ,
            View { t: &q, at: k * NQ },
            hz * NQ,
            n,
            NQ,
        )?;
        cache.pre.push(a);
        cache.hidden.push(r);
    }
    Ok((q, cache))
}

/// Backward pass (`heads::heads_backward`): adds the heads' parameter gradients into
/// `grads` (f32, the parameters' layout) and returns `dz` (f32, `n × h`).
#[allow(clippy::too_many_arguments)]
pub fn heads_backward(
    g: &Gpu,
    s: &HeadsShape,
    p: View,
    cache: &HeadsCache,
    z: View,
    dq: &Tensor,
    grads: View,
    dropout: Option<View>,
) -> Result<Tensor> {
    let (h, m, hz, n) = (s.h, s.hidden(), s.horizons, cache.n);
    let dz = g.zeros_f32(n * h)?;
    for k in 0..hz {
        let [w1, b1, w2, b2] = pieces(s, k);
        let dqk = g.zeros_f32(n * NQ)?;
        copy_rows(
            g,
            true,
            View { t: dq, at: k * NQ },
            hz * NQ,
            (&dqk).into(),
            NQ,
            n,
            NQ,
        )?;
        let dr = g.zeros_f32(n * m)?;
        linear_backward(
            g,
            (&cache.hidden[k]).into(),
            p.offset(w2),
            (&dqk).into(),
            n,
            m,
            NQ,
            grads.offset(w2),
            Some(grads.offset(b2)),
            Some((&dr).into()),
        )?;
        let da = g.zeros_f32(n * m)?;
        g.launch(
            "relu_mask_backward",
            elementwise(n * m),
            &[
                dr.arg(),
                cache.pre[k].arg(),
                dropout.map_or(Arg::Null, |d| d.offset(k * m).arg()),
                int(hz * m),
                da.arg(),
                int(n),
                int(m),
            ],
        )?;
        linear_backward(
            g,
            z,
            p.offset(w1),
            (&da).into(),
            n,
            h,
            m,
            grads.offset(w1),
            Some(grads.offset(b1)),
            Some((&dz).into()),
        )?;
    }
    Ok(dz)
}

/// `dst[i·dst_stride + j] = src[i·src_stride + j]` for an `rows × width` block
/// (heads.cu `copy_rows`): in the storage precision (activations), or f32 (gradients).
#[allow(clippy::too_many_arguments)]
pub fn copy_rows(
    g: &Gpu,
    f32_data: bool,
    src: View,
    src_stride: usize,
    dst: View,
    dst_stride: usize,
    rows: usize,
    width: usize,
) -> Result<()> {
    let args = [
        src.arg(),
        int(src_stride),
        dst.arg(),
        int(dst_stride),
        int(rows),
        int(width),
    ];
    let cfg = elementwise(rows * width);
    if f32_data {
        g.launch_f32("copy_rows_f32", cfg, &args)
    } else {
        g.launch("copy_rows", cfg, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::heads as cpu;
    use rand::SeedableRng;

    #[test]
    fn the_heads_match_the_cpu_reference_with_and_without_dropout() {
        both(|g| {
            let s = HeadsShape { h: 16, horizons: 4 };
            let (n, m) = (30, s.hidden());
            let mut p = vec![0f32; s.n_params()];
            s.init(&mut p, &mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
            let z = values(n * s.h, 51, 1.0);
            let dq = values(n * s.horizons * NQ, 52, 1.0);
            let mask: Vec<f32> = values(n * s.horizons * m, 53, 1.0)
                .iter()
                .map(|v| if *v > -0.6 { 1.0 / 0.8 } else { 0.0 })
                .collect();
            for dropout in [None, Some(&mask)] {
                let (cpu_q, cache) =
                    cpu::heads_forward(&s, &p, &z, n, dropout.map(|m| m.as_slice()));
                let mut cpu_g = vec![0f32; p.len()];
                let cpu_dz = cpu::heads_backward(&s, &p, &cache, &dq, &mut cpu_g);
                let run = || -> Result<_> {
                    let (tp, tz) = (g.upload(&p)?, g.upload(&z)?);
                    let tm = dropout.map(|m| g.upload(m)).transpose()?;
                    let (q, c) = heads_forward(
                        &g,
                        &s,
                        (&tp).into(),
                        (&tz).into(),
                        n,
                        tm.as_ref().map(View::from),
                    )?;
                    let grads = g.zeros_f32(p.len())?;
                    let dz = heads_backward(
                        &g,
                        &s,
                        (&tp).into(),
                        &c,
                        (&tz).into(),
                        &g.upload_f32(&dq)?,
                        (&grads).into(),
                        tm.as_ref().map(View::from),
                    )?;
                    Ok((g.download(&q)?, g.download(&dz)?, g.download(&grads)?))
                };
                let (q, dz, grads) = run().expect("the shim runs the kernels");
                let what = if dropout.is_some() {
                    "with dropout"
                } else {
                    "no dropout"
                };
                assert_matches(&format!("heads q ({what})"), g.precision, &q, &cpu_q);
                assert_matches(&format!("heads dz ({what})"), g.precision, &dz, &cpu_dz);
                assert_matches(
                    &format!("heads grads ({what})"),
                    g.precision,
                    &grads,
                    &cpu_g,
                );
            }
        });
    }
}
