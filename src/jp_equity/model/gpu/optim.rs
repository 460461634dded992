//! kernels/optim.cu: AdamW with global-norm clipping on the device, mirroring
//! `optim::AdamW::step` (fp32 master weights and moments; the update also refreshes the
//! storage-precision copy of the weights that the other kernels read).

use super::{Arg, BLOCK, DType, Gpu, Launch, Result, Tensor, int};
use crate::jp_equity::model::optim::{AdamWConfig, StepInfo, lr_at};

/// Blocks of the norm's first pass (`LB_NORM_BLOCKS`).
const NORM_BLOCKS: usize = 64;
/// Blocks of the update (grid-stride over the parameters).
const UPDATE_BLOCKS: usize = 132;

/// The optimiser's state on the device.
pub struct AdamW {
    /// fp32 master weights.
    pub params: Tensor,
    /// The weights in the storage precision, what the forward and backward kernels read.
    pub copy: Tensor,
    pub m: Tensor,
    pub v: Tensor,
    /// Updates applied (the next is step `step`, 0-based).
    pub step: u64,
    partial: Tensor,
    norm: Tensor,
}

impl AdamW {
    /// Zero moments for `params` (uploaded as the fp32 master weights and their copy).
    pub fn new(g: &Gpu, params: &[f32]) -> Result<AdamW> {
        let n = params.len();
        let master = g.upload_f32(params)?;
        let copy = g.zeros(n)?;
        g.launch(
            "convert_from_float",
            Launch::linear(UPDATE_BLOCKS, BLOCK),
            &[master.arg(), copy.arg(), int(n)],
        )?;
        Ok(AdamW {
            params: master,
            copy,
            m: g.zeros_f32(n)?,
            v: g.zeros_f32(n)?,
            step: 0,
            partial: Tensor::zeros(g.dev, NORM_BLOCKS, DType::F64)?,
            norm: Tensor::zeros(g.dev, 1, DType::F64)?,
        })
    }

    /// One update of `grads` (f32, clipped in place), as `optim::AdamW::step`: a
    /// non-finite gradient norm changes nothing and is reported in the returned info.
    pub fn step(
        &mut self,
        g: &Gpu,
        cfg: &AdamWConfig,
        grads: &Tensor,
        decay: Option<&Tensor>,
    ) -> Result<StepInfo> {
        let n = self.params.len;
        let lr = lr_at(cfg, self.step);
        g.launch_f32(
            "sum_squares",
            Launch::linear(NORM_BLOCKS, BLOCK),
            &[grads.arg(), int(n), self.partial.arg()],
        )?;
        let t = (self.step + 1) as i32;
        let bc1 = 1.0 - cfg.beta1.powi(t);
        let bc2 = 1.0 - cfg.beta2.powi(t);
        g.launch(
            "adamw_update",
            Launch::linear(UPDATE_BLOCKS, BLOCK),
            &[
                self.params.arg(),
                self.m.arg(),
                self.v.arg(),
                grads.arg(),
                decay.map_or(Arg::Null, Tensor::arg),
                self.copy.arg(),
                int(n),
                self.partial.arg(),
                self.norm.arg(),
                Arg::F64(cfg.clip_norm),
                Arg::F32(cfg.beta1 as f32),
                Arg::F32(cfg.beta2 as f32),
                Arg::F32((1.0 - cfg.beta1) as f32),
                Arg::F32((1.0 - cfg.beta2) as f32),
                Arg::F32((lr / bc1) as f32),
                Arg::F32((1.0 / bc2.sqrt()) as f32),
                Arg::F32(cfg.eps as f32),
                Arg::F32((1.0 - lr * cfg.weight_decay) as f32),
            ],
        )?;
        let grad_norm = self.norm.to_f64(g.dev)?[0];
        if grad_norm.is_finite() {
            self.step += 1;
        }
        Ok(StepInfo { lr, grad_norm })
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::optim as cpu;

    #[test]
    fn adamw_steps_match_the_cpu_reference() {
        both(|g| {
            // More parameters than one pass of the grid covers; a decay mask with both
            // kinds; three steps, the first two clipped (norm > 1) and the last not.
            let n = 70_001;
            let p0 = values(n, 31, 1.0);
            let decay: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
            let cfg = AdamWConfig {
                lr: 1e-2,
                warmup_steps: 2,
                total_steps: 10,
                ..AdamWConfig::default()
            };
            let grads: Vec<Vec<f32>> = [(32, 0.5f64), (33, 0.5), (34, 0.001)]
                .iter()
                .map(|&(s, scale)| values(n, s, scale))
                .collect();
            let mut cpu_p = p0.clone();
            let mut cpu_opt = cpu::AdamW::new(n);
            let cpu_info: Vec<StepInfo> = grads
                .iter()
                .map(|gr| {
                    let mut gr = gr.clone();
                    cpu_opt.step(&cfg, &mut cpu_p, &mut gr, Some(&decay))
                })
                .collect();
            let run = || -> Result<_> {
                let mut opt = AdamW::new(&g, &p0)?;
                let mask: Vec<u8> = decay.iter().map(|d| *d as u8).collect();
                let tmask = Tensor::from_u8(g.dev, &mask)?;
                let mut infos = Vec::new();
                for gr in &grads {
                    let tg = g.upload_f32(gr)?;
                    infos.push(opt.step(&g, &cfg, &tg, Some(&tmask))?);
                }
                Ok((
                    infos,
                    g.download(&opt.params)?,
                    g.download(&opt.copy)?,
                    g.download(&opt.m)?,
                    g.download(&opt.v)?,
                    opt.step,
                ))
            };
            let (infos, p, copy, m, v, steps) = run().expect("the shim runs the kernels");
            assert_eq!(steps, 3);
            for (a, b) in infos.iter().zip(&cpu_info) {
                assert_eq!(a.lr, b.lr);
                assert!(
                    (a.grad_norm - b.grad_norm).abs() <= 1e-9 * b.grad_norm,
                    "gradient norm {} vs {}",
                    a.grad_norm,
                    b.grad_norm
                );
            }
            // The master weights and moments are fp32 in both modes: the CPU's arithmetic
            // term for term, so they agree to fp32 tolerance even in fp16 mode.
            for (what, gpu, cpu) in [
                ("params", &p, &cpu_p),
                ("m", &m, &cpu_opt.m),
                ("v", &v, &cpu_opt.v),
            ] {
                assert_matches(
                    &format!("adamw {what}"),
                    lakebuild_kernels::Precision::F32,
                    gpu,
                    cpu,
                );
            }
            assert_matches("adamw copy", g.precision, &copy, &cpu_p);
        });
    }

    #[test]
    fn a_non_finite_gradient_changes_nothing() {
        both(|g| {
            let n = 1000;
            let p0 = values(n, 41, 1.0);
            let mut gr = values(n, 42, 1.0);
            gr[500] = f32::NAN;
            let run = || -> Result<_> {
                let mut opt = AdamW::new(&g, &p0)?;
                let info = opt.step(&g, &AdamWConfig::default(), &g.upload_f32(&gr)?, None)?;
                Ok((
                    info,
                    g.download(&opt.params)?,
                    g.download(&opt.m)?,
                    opt.step,
                ))
            };
            let (info, p, m, steps) = run().expect("the shim runs the kernels");
            assert!(!info.grad_norm.is_finite());
            assert_eq!(steps, 0);
            assert_eq!(p, p0);
            assert!(m.iter().all(|v| *v == 0.0));
        });
    }
}
