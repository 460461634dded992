//! The optimiser of MODEL.md (Training): AdamW with decoupled weight decay, global-norm
//! gradient clipping, and a linear warm-up then cosine learning-rate schedule, on fp32
//! master weights and fp32 optimiser state.

/// AdamW settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Peak learning rate (5e-4).
    pub lr: f64,
    /// First-moment decay β₁ (0.9).
    pub beta1: f64,
    /// Second-moment decay β₂ (0.999).
    pub beta2: f64,
    /// ε added to `√v̂` (1e-8).
    pub eps: f64,
    /// Decoupled weight decay (0.01).
    pub weight_decay: f64,
    /// Maximum global L2 norm of the gradient (1.0); `≤ 0` or infinite disables clipping.
    pub clip_norm: f64,
    /// Steps of linear warm-up (100 by default; 0 = none).
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches 0. `total_steps ≤ warmup_steps` (the
    /// default, 0) means no decay: the rate stays at `lr` after the warm-up. The trainer
    /// sets it to epochs × days per epoch.
    pub total_steps: u64,
}

impl Default for AdamWConfig {
    /// lr 5e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01, clip 1.0, 100 warm-up
    /// steps, no cosine decay (`total_steps = 0`).
    fn default() -> Self {
        AdamWConfig {
            lr: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            clip_norm: 1.0,
            warmup_steps: 100,
            total_steps: 0,
        }
    }
}

/// Learning rate of the 0-based step `step`, with `W = warmup_steps`, `S = total_steps`:
///
/// ```text
/// step < W:            lr · (step + 1) / W                      (lr/W at step 0, lr at W − 1)
/// step ≥ W, S > W:     lr · ½ · (1 + cos(π · min(1, (step − W)/(S − W))))   (0 from step S on)
/// step ≥ W, S ≤ W:     lr
/// ```
pub fn lr_at(cfg: &AdamWConfig, step: u64) -> f64 {
    let (w, s) = (cfg.warmup_steps, cfg.total_steps);
    if step < w {
        return cfg.lr * (step + 1) as f64 / w as f64;
    }
    if s <= w {
        return cfg.lr;
    }
    let progress = ((step - w) as f64 / (s - w) as f64).min(1.0);
    cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Scales `g` in place so that its global L2 norm is at most `max`, and returns the norm
/// before clipping. The norm is `√Σ g_i²` accumulated in `f64` in index order; when it
/// exceeds `max` every entry is multiplied by `max / norm` (in `f64`, rounded to `f32`).
/// Nothing is scaled when `max ≤ 0`, `max` is infinite, or the norm is not finite (the
/// caller sees the non-finite norm).
pub fn clip_global_norm(g: &mut [f32], max: f64) -> f64 {
    let norm = g
        .iter()
        .map(|v| (*v as f64) * (*v as f64))
        .sum::<f64>()
        .sqrt();
    if max > 0.0 && max.is_finite() && norm.is_finite() && norm > max {
        let scale = max / norm;
        for v in g.iter_mut() {
            *v = (*v as f64 * scale) as f32;
        }
    }
    norm
}

/// AdamW state: first and second moments (fp32) and the number of updates applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    /// First moment `m`, one per parameter.
    pub m: Vec<f32>,
    /// Second moment `v`, one per parameter.
    pub v: Vec<f32>,
    /// Number of updates applied so far (the next update is step `step`, 0-based).
    pub step: u64,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The learning rate used ([`lr_at`] of the step).
    pub lr: f64,
    /// The gradient's global L2 norm before clipping.
    pub grad_norm: f64,
}

impl AdamW {
    /// Zero moments for `n` parameters, no step taken.
    pub fn new(n: usize) -> Self {
        AdamW {
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
        }
    }

    /// One update. With `lr = lr_at(cfg, self.step)` and `t = self.step + 1`:
    ///
    /// 1. clip `grads` in place to global norm `clip_norm` ([`clip_global_norm`]);
    /// 2. per parameter, in `f32` (constants computed in `f64` then rounded):
    ///    `m = β₁·m + (1−β₁)·g`, `v = β₂·v + (1−β₂)·g²`,
    ///    `p = p·(1 − lr·wd)` if the parameter decays (`decay[i]`, all when `None`),
    ///    `p = p − (lr/(1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`;
    /// 3. `self.step += 1`.
    ///
    /// If the gradient norm is not finite, nothing is changed (parameters, moments and
    /// step count stay as they were) and the returned `grad_norm` says so.
    /// Panics if the lengths of `params`, `grads`, `decay` and the state differ.
    pub fn step(
        &mut self,
        cfg: &AdamWConfig,
        params: &mut [f32],
        grads: &mut [f32],
        decay: Option<&[bool]>,
    ) -> StepInfo {
        let n = self.m.len();
        assert_eq!(
            params.len(),
            n,
            "adamw: params do not match the optimiser state"
        );
        assert_eq!(
            grads.len(),
            n,
            "adamw: grads do not match the optimiser state"
        );
        if let Some(d) = decay {
            assert_eq!(
                d.len(),
                n,
                "adamw: decay mask does not match the parameters"
            );
        }
        let lr = lr_at(cfg, self.step);
        let grad_norm = clip_global_norm(grads, cfg.clip_norm);
        if !grad_norm.is_finite() {
            return StepInfo { lr, grad_norm };
        }
        let t = (self.step + 1) as i32;
        let bc1 = 1.0 - cfg.beta1.powi(t);
        let bc2 = 1.0 - cfg.beta2.powi(t);
        let b1 = cfg.beta1 as f32;
        let b2 = cfg.beta2 as f32;
        let one_b1 = (1.0 - cfg.beta1) as f32;
        let one_b2 = (1.0 - cfg.beta2) as f32;
        let step_size = (lr / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let eps = cfg.eps as f32;
        let shrink = (1.0 - lr * cfg.weight_decay) as f32;
        for i in 0..n {
            let g = grads[i];
            let m = b1 * self.m[i] + one_b1 * g;
            let v = b2 * self.v[i] + one_b2 * g * g;
            self.m[i] = m;
            self.v[i] = v;
            let mut p = params[i];
            if decay.is_none_or(|d| d[i]) {
                p *= shrink;
            }
            p -= step_size * m / (v.sqrt() * inv_sqrt_bc2 + eps);
            params[i] = p;
        }
        self.step += 1;
        StepInfo { lr, grad_norm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn lr_schedule_values() {
        let cfg = AdamWConfig {
            lr: 1e-3,
            warmup_steps: 10,
            total_steps: 110,
            ..Default::default()
        };
        assert!(close(lr_at(&cfg, 0), 1e-4, 1e-15));
        assert!(close(lr_at(&cfg, 4), 5e-4, 1e-15));
        assert!(close(lr_at(&cfg, 9), 1e-3, 1e-15)); // end of warm-up
        assert!(close(lr_at(&cfg, 10), 1e-3, 1e-15)); // start of the cosine
        assert!(close(lr_at(&cfg, 60), 0.5e-3, 1e-15)); // middle of the cosine
        assert!(close(
            lr_at(&cfg, 35),
            1e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos()),
            1e-15
        ));
        assert_eq!(lr_at(&cfg, 110), 0.0); // end
        assert_eq!(lr_at(&cfg, 500), 0.0); // clamped after
        // No warm-up: the cosine from step 0.
        let cfg = AdamWConfig {
            lr: 2.0,
            warmup_steps: 0,
            total_steps: 4,
            ..Default::default()
        };
        assert_eq!(lr_at(&cfg, 0), 2.0);
        assert!(close(lr_at(&cfg, 2), 1.0, 1e-12));
        // No decay configured: constant after the warm-up.
        let cfg = AdamWConfig::default();
        assert!(close(lr_at(&cfg, 0), 5e-6, 1e-18));
        assert_eq!(lr_at(&cfg, 99), 5e-4);
        assert_eq!(lr_at(&cfg, 1_000_000), 5e-4);
    }

    #[test]
    fn clipping() {
        let mut g = vec![3.0f32, 0.0, -4.0];
        assert_eq!(clip_global_norm(&mut g, 1.0), 5.0);
        assert_eq!(g, vec![0.6, 0.0, -0.8]);
        let mut g = vec![0.3f32, 0.4];
        let norm = clip_global_norm(&mut g, 1.0);
        assert!(close(norm, 0.5, 1e-7));
        assert_eq!(g, vec![0.3, 0.4]); // below the limit: untouched
        let mut g = vec![30.0f32, 40.0];
        assert_eq!(clip_global_norm(&mut g, 0.0), 50.0); // disabled
        assert_eq!(g, vec![30.0, 40.0]);
        let mut g = vec![1.0f32, f32::NAN];
        assert!(clip_global_norm(&mut g, 1.0).is_nan());
        // Clipped to (about) the limit.
        let mut g: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        clip_global_norm(&mut g, 2.0);
        assert!(close(clip_global_norm(&mut g, f64::INFINITY), 2.0, 1e-5));
    }

    #[test]
    fn first_step_matches_hand_computation() {
        let cfg = AdamWConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
            clip_norm: 1.0,
            warmup_steps: 0,
            total_steps: 0,
        };
        let mut p = vec![1.0f32, -2.0, 0.5];
        // Norm 5 → clipped to 1: g = [0.6, 0, −0.8].
        let mut g = vec![3.0f32, 0.0, -4.0];
        let mut opt = AdamW::new(3);
        let info = opt.step(&cfg, &mut p, &mut g, Some(&[true, true, false]));
        assert_eq!(info.grad_norm, 5.0);
        assert!(close(info.lr, 0.1, 1e-15));
        assert_eq!(opt.step, 1);
        // m = 0.1·g, v = 0.001·g²; m̂ = g, v̂ = g² → update lr·g/(|g| + ε) ≈ lr·sign(g).
        // p0: 1·(1 − 0.05) − 0.1 = 0.85; p1: −2·0.95 − 0 = −1.9; p2 (no decay): 0.5 + 0.1 = 0.6.
        let want = [0.85, -1.9, 0.6];
        for (a, b) in p.iter().zip(want) {
            assert!(close(*a as f64, b, 1e-6), "{p:?}");
        }
        assert!(close(opt.m[0] as f64, 0.06, 1e-7) && close(opt.v[2] as f64, 0.001 * 0.64, 1e-9));
        // A second step by hand, on parameter 2 (no decay, fixed gradient −0.8 after clip):
        // m = 0.9·(−0.08) + 0.1·(−0.8) = −0.152, v = 0.999·0.00064 + 0.001·0.64 = 0.00127936
        // m̂ = −0.152/0.19, v̂ = 0.00127936/(1 − 0.999²).
        let mut g = vec![3.0f32, 0.0, -4.0];
        opt.step(&cfg, &mut p, &mut g, Some(&[true, true, false]));
        let mh = -0.152 / (1.0 - 0.81);
        let vh = 0.00127936 / (1.0 - 0.999f64 * 0.999);
        let want2 = 0.6 - 0.1 * mh / (vh.sqrt() + 1e-8);
        assert!(close(p[2] as f64, want2, 1e-6), "{} vs {want2}", p[2]);
    }

    #[test]
    fn non_finite_gradient_changes_nothing() {
        let cfg = AdamWConfig::default();
        let mut p = vec![1.0f32, 2.0];
        let mut opt = AdamW::new(2);
        let info = opt.step(&cfg, &mut p, &mut [f32::NAN, 1.0], None);
        assert!(info.grad_norm.is_nan());
        assert_eq!((p, opt.step), (vec![1.0, 2.0], 0));
        assert!(opt.m.iter().chain(&opt.v).all(|v| *v == 0.0));
    }

    #[test]
    fn converges_on_a_quadratic() {
        // f(p) = ½ Σ a_i (p_i − c_i)², no weight decay, cosine to 0 over 3000 steps.
        let a = [1.0f32, 10.0, 0.1, 3.0];
        let c = [0.5f32, -1.5, 2.0, 0.0];
        let cfg = AdamWConfig {
            lr: 0.05,
            weight_decay: 0.0,
            clip_norm: 10.0,
            warmup_steps: 50,
            total_steps: 3000,
            ..Default::default()
        };
        let mut p = vec![3.0f32, 3.0, -3.0, 3.0];
        let mut opt = AdamW::new(4);
        for _ in 0..3000 {
            let mut g: Vec<f32> = (0..4).map(|i| a[i] * (p[i] - c[i])).collect();
            opt.step(&cfg, &mut p, &mut g, None);
        }
        for i in 0..4 {
            assert!((p[i] - c[i]).abs() < 1e-3, "{p:?}");
        }
        // Decoupled decay alone (zero gradient): p shrinks by exactly (1 − lr·wd) a step,
        // untouched where the mask says no decay.
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            warmup_steps: 0,
            total_steps: 0,
            ..cfg
        };
        let mut p = vec![2.0f32, 2.0];
        let mut opt = AdamW::new(2);
        for _ in 0..3 {
            opt.step(&cfg, &mut p, &mut [0.0, 0.0], Some(&[true, false]));
        }
        assert!(
            close(p[0] as f64, 2.0 * 0.95f64.powi(3), 1e-6) && p[1] == 2.0,
            "{p:?}"
        );
    }
}
