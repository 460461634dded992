//! kernels/lstm.cu: the temporal block's LSTM, mirroring `lstm::lstm_forward` /
//! `lstm_backward` (the input projection and the weight gradients are layers.cu's).

use super::layers::{linear, linear_backward};
use super::{Gpu, Launch, Result, Tensor, View};
use crate::jp_equity::model::lstm::LstmShape;
use lakebuild_kernels::Error;

/// What [`lstm_backward`] needs from [`lstm_forward`] (the input stays the caller's).
pub struct LstmCache {
    pub n: usize,
    pub t: usize,
    /// Activated gates `i, f, g, o`, `[n × t × 4h]` (storage precision).
    pub gates: Tensor,
    /// Cell states `[n × t × h]`, always f32.
    pub c: Tensor,
    /// `h_{τ−1}` beside each step, `[n × t × h]` (zero at τ = 0).
    pub hprev: Tensor,
}

/// One block per stock, one thread per hidden unit.
fn sequence_launch(s: &LstmShape, n: usize, shared_floats: usize) -> Result<Launch> {
    if s.h == 0 || s.h > 1024 {
        return Err(Error(format!(
            "lstm: {} hidden units (1 to 1,024 on a GPU)",
            s.h
        )));
    }
    Ok(Launch {
        grid: (n.max(1) as u32, 1, 1),
        block: (s.h.div_ceil(32) as u32 * 32, 1, 1),
        shared_bytes: (shared_floats * 4) as u32,
    })
}

/// `x` `[n × t × din]` → every step's hidden state `[n × t × h]` (stock-major).
pub fn lstm_forward(
    g: &Gpu,
    s: &LstmShape,
    p: View,
    x: &Tensor,
    n: usize,
    t: usize,
) -> Result<(Tensor, LstmCache)> {
    let (din, h) = (s.din, s.h);
    let h4 = 4 * h;
    let (w_h, b) = (din * h4, din * h4 + h * h4);
    let xp = linear(g, x.into(), p, Some(p.offset(b)), n * t, din, h4)?;
    let gates = g.zeros(n * t * h4)?;
    let c = g.zeros_f32(n * t * h)?;
    let hs = g.zeros(n * t * h)?;
    let hprev = g.zeros(n * t * h)?;
    g.launch(
        "lstm_forward_sequence",
        sequence_launch(s, n, h)?,
        &[
            xp.arg(),
            p.offset(w_h).arg(),
            gates.arg(),
            c.arg(),
            hs.arg(),
            hprev.arg(),
            super::int(t),
            super::int(h),
        ],
    )?;
    Ok((
        hs,
        LstmCache {
            n,
            t,
            gates,
            c,
            hprev,
        },
    ))
}

/// Backward through time: adds the parameter gradients into `grads` and returns `∂x`
/// (f32), given the forward's input `x` and `dy` on every step's hidden state (f32).
pub fn lstm_backward(
    g: &Gpu,
    s: &LstmShape,
    p: View,
    x: &Tensor,
    cache: &LstmCache,
    dy: &Tensor,
    grads: View,
) -> Result<Tensor> {
    let (din, h, n, t) = (s.din, s.h, cache.n, cache.t);
    let h4 = 4 * h;
    let (w_h, b) = (din * h4, din * h4 + h * h4);
    let dz = g.zeros_f32(n * t * h4)?;
    g.launch(
        "lstm_backward_sequence",
        sequence_launch(s, n, h4)?,
        &[
            cache.gates.arg(),
            cache.c.arg(),
            p.offset(w_h).arg(),
            dy.arg(),
            dz.arg(),
            super::int(t),
            super::int(h),
        ],
    )?;
    // ∂w_h += Σ h_{τ−1}ᵀ·∂z_τ over every row (the τ = 0 rows have h_{−1} = 0).
    g.launch(
        "matmul_backward_weight",
        super::layers::gemm_launch(h, h4),
        &[
            cache.hprev.arg(),
            dz.arg(),
            grads.offset(w_h).arg(),
            super::int(n * t),
            super::int(h),
            super::int(h4),
        ],
    )?;
    let dx = g.zeros_f32(n * t * din)?;
    linear_backward(
        g,
        x.into(),
        p,
        (&dz).into(),
        n * t,
        din,
        h4,
        grads,
        Some(grads.offset(b)),
        Some((&dx).into()),
    )?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::lstm as cpu;

    #[test]
    fn the_lstm_matches_the_cpu_reference() {
        // 30 stocks × 20 steps; 12 hidden units (one partial warp per block), 9 inputs.
        let s = LstmShape { din: 9, h: 12 };
        let (n, t) = (30, 20);
        let p = values(s.n_params(), 111, 0.5);
        let x = values(n * t * s.din, 112, 1.0);
        let dy = values(n * t * s.h, 113, 1.0);
        let (cpu_y, cache) = cpu::lstm_forward(&s, &p, &x, n, t);
        let mut cpu_g = vec![0f32; s.n_params()];
        let cpu_dx = cpu::lstm_backward(&s, &p, &cache, &dy, &mut cpu_g);
        let h4 = 4 * s.h;
        let (w_h, b) = (s.din * h4, s.din * h4 + s.h * h4);
        both(|g| {
            let run = || -> Result<_> {
                let (tp, tx) = (g.upload(&p)?, g.upload(&x)?);
                let (y, c) = lstm_forward(&g, &s, (&tp).into(), &tx, n, t)?;
                let grads = g.zeros_f32(s.n_params())?;
                let dx = lstm_backward(
                    &g,
                    &s,
                    (&tp).into(),
                    &tx,
                    &c,
                    &g.upload_f32(&dy)?,
                    (&grads).into(),
                )?;
                Ok((g.download(&y)?, g.download(&dx)?, g.download(&grads)?))
            };
            let (y, dx, grads) = run().expect("shim");
            let pr = g.precision;
            assert_matches("lstm_forward h", pr, &y, &cpu_y);
            assert_matches("lstm_backward ∂x", pr, &dx, &cpu_dx);
            assert_matches("lstm_backward ∂w_x", pr, &grads[..w_h], &cpu_g[..w_h]);
            assert_matches("lstm_backward ∂w_h", pr, &grads[w_h..b], &cpu_g[w_h..b]);
            assert_matches("lstm_backward ∂b", pr, &grads[b..], &cpu_g[b..]);
        });
    }
}
