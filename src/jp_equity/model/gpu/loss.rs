//! kernels/loss.cu: the training loss and its gradient, mirroring `loss::loss_and_grad`.

use super::{Arg, BLOCK, Gpu, Launch, Result, Tensor, int};
use crate::jp_equity::model::heads::QUANTILES;
use crate::jp_equity::model::loss::{LossConfig, LossParts};

/// Horizons one launch handles (`LB_MAX_HORIZONS`; each is one block).
pub const MAX_HORIZONS: usize = 32;
const NQ: usize = QUANTILES.len();

/// The loss of one day and `dL/dq` (f32, `[n × hz × 5]`), as `loss::loss_and_grad`:
/// `q` is the quantile predictions (storage precision), `y` the targets (f32, `[n × hz]`),
/// `valid` the label flags (u8). The per-horizon parts come back to the host and are
/// added there in f64 (a handful of numbers).
pub fn loss_and_grad(
    g: &Gpu,
    cfg: &LossConfig,
    q: &Tensor,
    y: &Tensor,
    valid: &Tensor,
    n: usize,
    hz: usize,
) -> Result<(LossParts, Tensor)> {
    if hz == 0 || hz > MAX_HORIZONS {
        return Err(lakebuild_kernels::Error(format!(
            "the GPU loss handles 1 to {MAX_HORIZONS} horizons, not {hz}"
        )));
    }
    let dq = g.zeros_f32(n * hz * NQ)?;
    let parts = g.zeros_f32(hz * 3)?;
    g.launch(
        "loss_forward_backward",
        Launch::linear(hz, BLOCK),
        &[
            q.arg(),
            y.arg(),
            valid.arg(),
            dq.arg(),
            parts.arg(),
            int(n),
            int(hz),
            Arg::F32(cfg.lambda as f32),
        ],
    )?;
    let parts = g.download(&parts)?;
    let active: Vec<f64> = (0..hz)
        .map(|k| parts[k * 3 + 2] as f64)
        .filter(|v| !v.is_nan())
        .collect();
    let mut total = if active.is_empty() {
        0.0
    } else {
        active.iter().sum::<f64>() / active.len() as f64
    };
    if cfg.crossing > 0.0 && n * hz > 0 {
        let rows = n * hz;
        let c = (cfg.crossing / rows as f64) as f32;
        let penalty = g.zeros_f32(rows)?;
        g.launch(
            "loss_crossing",
            Launch::cover(rows, BLOCK),
            &[q.arg(), dq.arg(), penalty.arg(), int(rows), Arg::F32(c)],
        )?;
        let pen: f64 = g.download(&penalty)?.iter().map(|v| *v as f64).sum();
        total += c as f64 * pen;
    }
    Ok((
        LossParts {
            total,
            pinball: (0..hz).map(|k| parts[k * 3] as f64).collect(),
            corr: (0..hz).map(|k| parts[k * 3 + 1] as f64).collect(),
        },
        dq,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::loss as cpu;

    #[test]
    fn the_loss_and_its_gradient_match_the_cpu_reference() {
        both(|g| {
            // 300 stocks (more than a block's 256 threads), 4 horizons: one with every
            // label, one with some missing, one with a single valid stock (no
            // correlation) and one with none.
            let (n, hz) = (300, 4);
            let q = values(n * hz * NQ, 21, 1.5);
            let y = values(n * hz, 22, 2.0);
            let valid: Vec<bool> = (0..n * hz)
                .map(|i| match i % hz {
                    0 => true,
                    1 => i % 7 != 0,
                    2 => i / hz == 5,
                    _ => false,
                })
                .collect();
            for crossing in [0.0, 0.5] {
                let cfg = LossConfig {
                    lambda: 0.1,
                    crossing,
                };
                let (cpu_parts, cpu_dq) = cpu::loss_and_grad(&cfg, &q, &y, &valid, n, hz);
                let run = || -> Result<_> {
                    let flags: Vec<u8> = valid.iter().map(|v| *v as u8).collect();
                    let (tq, ty) = (g.upload(&q)?, g.upload_f32(&y)?);
                    let tv = Tensor::from_u8(g.dev, &flags)?;
                    let (parts, dq) = loss_and_grad(&g, &cfg, &tq, &ty, &tv, n, hz)?;
                    Ok((parts, g.download(&dq)?))
                };
                let (parts, dq) = run().expect("the shim runs the kernels");
                let p = g.precision;
                let what = format!("loss (crossing {crossing})");
                assert_matches(
                    &format!("{what} total"),
                    p,
                    &[parts.total as f32],
                    &[cpu_parts.total as f32],
                );
                assert_matches(&format!("{what} dq"), p, &dq, &cpu_dq);
                for k in 0..hz {
                    for (name, a, b) in [
                        ("pinball", parts.pinball[k], cpu_parts.pinball[k]),
                        ("corr", parts.corr[k], cpu_parts.corr[k]),
                    ] {
                        assert_eq!(a.is_nan(), b.is_nan(), "{what} {name}[{k}]: {a} vs {b}");
                        if !b.is_nan() {
                            assert_matches(
                                &format!("{what} {name}[{k}]"),
                                p,
                                &[a as f32],
                                &[b as f32],
                            );
                        }
                    }
                }
            }
        });
    }
}
