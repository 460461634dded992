//! The training loss of MODEL.md (Loss): per horizon, the pinball loss over the five
//! quantiles plus `λ·(1 − Pearson(q₀.₅, y))`, horizons weighted equally, and an optional
//! quantile-crossing penalty. Computed in `T` (`f32` in training, `f64` in checks), with
//! its gradient with respect to the quantile predictions written by hand.

use super::heads::{MEDIAN, QUANTILES};
use super::real::Real;

/// Number of quantiles per (stock, horizon).
const NQ: usize = QUANTILES.len();

/// A side of the correlation term counts as constant when its variance over the valid
/// stocks (biased, `S/m`) is at most `CORR_EPS·(1 + mean²)`; the term and its gradient
/// are then 0. Relative to the mean so that `f32` rounding of a constant column (whose
/// deviations are ~1e-7·|mean|) never passes as variance.
pub const CORR_EPS: f64 = 1e-8;

/// Loss settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    /// Weight λ of the correlation term `λ·(1 − Pearson(q₀.₅, y))`; 0.1 by default.
    pub lambda: f64,
    /// Weight of the optional quantile-crossing penalty; 0 (off) by default.
    pub crossing: f64,
}

impl Default for LossConfig {
    /// `lambda = 0.1`, `crossing = 0.0`.
    fn default() -> Self {
        LossConfig {
            lambda: 0.1,
            crossing: 0.0,
        }
    }
}

/// The loss of one day and its parts, for logging.
#[derive(Debug, Clone, PartialEq)]
pub struct LossParts {
    /// The loss that is differentiated (see [`loss_and_grad`]).
    pub total: f64,
    /// Per horizon: the mean pinball loss over its valid stocks and the 5 quantiles;
    /// NaN for a horizon with no valid stock.
    pub pinball: Vec<f64>,
    /// Per horizon: Pearson(q₀.₅, y) over its valid stocks; NaN when undefined (fewer
    /// than 2 valid stocks, or either side constant in the sense of [`CORR_EPS`]).
    pub corr: Vec<f64>,
}

/// The loss of one day and `dL/dq`.
///
/// Inputs: `q` is `[n × hz × 5]` (quantiles in [`QUANTILES`] order), `y` is `[n × hz]`
/// (targets; entries whose label is absent are never read, so they may be NaN), `valid`
/// is `[n × hz]` (label present).
///
/// For horizon `k` with valid stocks `V_k` (`m_k = |V_k|`), with `e = y_i − q_{i,k,j}` and
/// `ρ_τ(e) = max(τ·e, (τ−1)·e)`:
///
/// ```text
/// pinball_k = 1/(5·m_k) · Σ_{i∈V_k} Σ_j ρ_{τ_j}(y_{i,k} − q_{i,k,j})
/// L_k       = pinball_k + λ·(1 − P_k)       P_k = Pearson over V_k of (q_{i,k,MEDIAN}, y_{i,k})
/// total     = (1/K) · Σ_{k: m_k ≥ 1} L_k  +  crossing/(n·hz) · Σ_{i,k} Σ_{j<4} relu(q_{i,k,j} − q_{i,k,j+1})
/// ```
///
/// where `K` is the number of horizons with at least one valid stock (the first part is 0
/// when `K = 0`). The correlation term and its gradient are 0 when `m_k < 2` or either
/// side is constant ([`CORR_EPS`]). The crossing penalty is only added when
/// `crossing > 0` and covers every (stock, horizon), labelled or not (it needs no label).
///
/// Gradient: `∂ρ_τ(y − q)/∂q = 1[q ≥ y] − τ` (the subgradient at the kink `q = y` is
/// `1 − τ`); with `a_i = q_i − q̄`, `b_i = y_i − ȳ`, `S_a = Σa²`, `S_b = Σb²`,
/// `∂P/∂q_i = b_i/√(S_a·S_b) − P·a_i/S_a`; the crossing term gives `±crossing/(n·hz)`
/// to the two quantiles of each crossed pair (0 at equality). Entries of absent labels
/// get no pinball or correlation gradient. Sums run in stock order (deterministic).
pub fn loss_and_grad<T: Real>(
    cfg: &LossConfig,
    q: &[T],
    y: &[T],
    valid: &[bool],
    n: usize,
    hz: usize,
) -> (LossParts, Vec<T>) {
    assert_eq!(q.len(), n * hz * NQ, "loss: q is not {n}×{hz}×{NQ}");
    assert_eq!(y.len(), n * hz, "loss: y is not {n}×{hz}");
    assert_eq!(valid.len(), n * hz, "loss: valid is not {n}×{hz}");
    let mut dq = vec![T::zero(); q.len()];
    let mut pinball = vec![f64::NAN; hz];
    let mut corr = vec![f64::NAN; hz];

    let counts: Vec<usize> = (0..hz)
        .map(|k| (0..n).filter(|i| valid[i * hz + k]).count())
        .collect();
    let active = counts.iter().filter(|c| **c > 0).count();
    let lambda = T::c(cfg.lambda);
    let eps = T::c(CORR_EPS);
    let taus = QUANTILES.map(T::c);
    let mut sum_loss = T::zero();
    let mut idx = Vec::with_capacity(n);
    for k in 0..hz {
        if counts[k] == 0 {
            continue;
        }
        // Each horizon's part enters the total with weight 1/K.
        let w = T::one() / T::c(active as f64);
        idx.clear();
        idx.extend((0..n).filter(|i| valid[i * hz + k]));
        let m = idx.len();
        let mm = T::c(m as f64);

        // Pinball.
        let scale = w / (T::c(NQ as f64) * mm);
        let mut pin = T::zero();
        for &i in &idx {
            let yi = y[i * hz + k];
            let base = (i * hz + k) * NQ;
            for (j, &tau) in taus.iter().enumerate() {
                let e = yi - q[base + j];
                pin += (tau * e).max((tau - T::one()) * e);
                let d = if e > T::zero() { -tau } else { T::one() - tau };
                dq[base + j] += scale * d;
            }
        }
        let pin = pin / (T::c(NQ as f64) * mm);
        pinball[k] = pin.to_f64c();
        let mut lk = pin;

        // Correlation of the median with the target.
        if m >= 2 {
            let med = |i: usize| q[(i * hz + k) * NQ + MEDIAN];
            let qbar = idx.iter().map(|&i| med(i)).sum::<T>() / mm;
            let ybar = idx.iter().map(|&i| y[i * hz + k]).sum::<T>() / mm;
            let (mut sa, mut sb, mut sab) = (T::zero(), T::zero(), T::zero());
            for &i in &idx {
                let a = med(i) - qbar;
                let b = y[i * hz + k] - ybar;
                sa += a * a;
                sb += b * b;
                sab += a * b;
            }
            let defined = sa / mm > eps * (T::one() + qbar * qbar)
                && sb / mm > eps * (T::one() + ybar * ybar);
            if defined {
                let root = (sa * sb).sqrt();
                let p = sab / root;
                corr[k] = p.to_f64c();
                lk += lambda * (T::one() - p);
                let c = -w * lambda;
                for &i in &idx {
                    let a = med(i) - qbar;
                    let b = y[i * hz + k] - ybar;
                    dq[(i * hz + k) * NQ + MEDIAN] += c * (b / root - p * a / sa);
                }
            }
        }
        sum_loss += lk;
    }
    let mut total = if active > 0 {
        sum_loss / T::c(active as f64)
    } else {
        T::zero()
    };

    if cfg.crossing > 0.0 && n * hz > 0 {
        let c = T::c(cfg.crossing) / T::c((n * hz) as f64);
        let mut pen = T::zero();
        for (row, drow) in q.chunks(NQ).zip(dq.chunks_mut(NQ)) {
            for j in 0..NQ - 1 {
                let d = row[j] - row[j + 1];
                if d > T::zero() {
                    pen += d;
                    drow[j] += c;
                    drow[j + 1] -= c;
                }
            }
        }
        total += c * pen;
    }
    (
        LossParts {
            total: total.to_f64c(),
            pinball,
            corr,
        },
        dq,
    )
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{assert_close_grads, numeric_grad, rand_vec};
    use super::*;

    /// q with each (stock, horizon) row pushed away from the crossing kinks, and y away
    /// from every q (|y − q| > 1e-3 and |q_j − q_{j+1}| > 1e-3).
    fn data(n: usize, hz: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut q = rand_vec(n * hz * NQ, seed, 1.5);
        let mut y = rand_vec(n * hz, seed + 1, 2.0);
        for row in q.chunks_mut(NQ) {
            for j in 0..NQ - 1 {
                if (row[j] - row[j + 1]).abs() < 1e-3 {
                    row[j + 1] += 0.01;
                }
            }
        }
        for (i, yv) in y.iter_mut().enumerate() {
            while q[i * NQ..(i + 1) * NQ]
                .iter()
                .any(|v| (*yv - v).abs() < 1e-3)
            {
                *yv += 0.0123;
            }
        }
        (q, y)
    }

    fn gradient_check(cfg: LossConfig) {
        let (n, hz) = (6, 4);
        let (q, mut y) = data(n, hz, 11);
        // Horizon 0: all valid; 1: a single valid stock; 2: none valid; 3: half valid.
        let mut valid = vec![false; n * hz];
        for i in 0..n {
            valid[i * hz] = true;
            valid[i * hz + 1] = i == 3;
            valid[i * hz + 3] = i % 2 == 0;
        }
        // Absent labels may be NaN: they must never be read.
        for i in 0..n {
            for k in 0..hz {
                if !valid[i * hz + k] {
                    y[i * hz + k] = f64::NAN;
                }
            }
        }
        let (parts, dq) = loss_and_grad(&cfg, &q, &y, &valid, n, hz);
        assert!(parts.total.is_finite());
        assert!(parts.pinball[1].is_finite() && parts.corr[1].is_nan());
        assert!(parts.pinball[2].is_nan() && parts.corr[2].is_nan());
        assert!(parts.corr[0].is_finite() && parts.corr[3].is_finite());
        assert!(dq.iter().all(|v| v.is_finite()));
        let num = numeric_grad(&q, |q| loss_and_grad(&cfg, q, &y, &valid, n, hz).0.total);
        assert_close_grads(&format!("loss dq {cfg:?}"), &dq, &num);
        if cfg.crossing == 0.0 {
            // No gradient reaches unlabelled entries.
            for i in 0..n {
                for k in 0..hz {
                    if !valid[i * hz + k] {
                        assert!(
                            dq[(i * hz + k) * NQ..(i * hz + k + 1) * NQ]
                                .iter()
                                .all(|v| *v == 0.0)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn loss_gradient_matches_central_differences() {
        gradient_check(LossConfig::default());
        gradient_check(LossConfig {
            lambda: 0.7,
            crossing: 0.0,
        });
    }

    #[test]
    fn loss_gradient_with_crossing_penalty() {
        gradient_check(LossConfig {
            lambda: 0.1,
            crossing: 0.5,
        });
    }

    #[test]
    fn pinball_matches_the_definition_on_a_hand_example() {
        // One stock, one horizon: y = 1, q = [0, 0.5, 1.5, 2, -1].
        // e = y − q = [1, 0.5, −0.5, −1, 2]
        // ρ = [0.05·1, 0.25·0.5, 0.5·0.5, 0.25·1, 0.95·2] = [0.05, 0.125, 0.25, 0.25, 1.9]
        let q: [f64; 5] = [0.0, 0.5, 1.5, 2.0, -1.0];
        let y = [1.0f64];
        let cfg = LossConfig {
            lambda: 0.1,
            crossing: 0.0,
        };
        let (parts, dq) = loss_and_grad(&cfg, &q, &y, &[true], 1, 1);
        let want = (0.05 + 0.125 + 0.25 + 0.25 + 1.9) / 5.0;
        assert!((parts.pinball[0] - want).abs() < 1e-12, "{parts:?}");
        // A single stock: no correlation term.
        assert!((parts.total - want).abs() < 1e-12);
        assert!(parts.corr[0].is_nan());
        let dwant = [-0.05, -0.25, 0.5, 0.25, -0.95].map(|v| v / 5.0);
        for (a, b) in dq.iter().zip(dwant) {
            assert!((a - b).abs() < 1e-12, "{dq:?}");
        }
        // Crossing: 0 < 0.5 < 1.5 < 2, then 2 > −1: Σ relu = 3.
        let cfg = LossConfig {
            lambda: 0.1,
            crossing: 0.2,
        };
        let (parts, _) = loss_and_grad(&cfg, &q, &y, &[true], 1, 1);
        assert!((parts.total - (want + 0.2 * 3.0)).abs() < 1e-12);
    }

    #[test]
    fn correlation_term_and_horizon_weights() {
        // Two stocks, two horizons; horizon 0 perfectly correlated, horizon 1 anti.
        let mut q = vec![0.0; 2 * 2 * NQ];
        let y = [1.0f64, 1.0, -1.0, -1.0];
        q[MEDIAN] = 1.0; // stock 0, horizon 0
        q[NQ + MEDIAN] = -1.0; // stock 0, horizon 1
        q[2 * NQ + MEDIAN] = -1.0; // stock 1, horizon 0
        q[3 * NQ + MEDIAN] = 1.0; // stock 1, horizon 1
        let cfg = LossConfig {
            lambda: 0.3,
            crossing: 0.0,
        };
        let (parts, _) = loss_and_grad(&cfg, &q, &y, &[true; 4], 2, 2);
        assert!((parts.corr[0] - 1.0).abs() < 1e-12 && (parts.corr[1] + 1.0).abs() < 1e-12);
        let want = (parts.pinball[0] + parts.pinball[1] + 0.3 * 2.0) / 2.0;
        assert!((parts.total - want).abs() < 1e-12);
        // A constant median: the term and its gradient vanish, never NaN.
        let qc = vec![0.25; 2 * 2 * NQ];
        let (parts, dq) = loss_and_grad::<f64>(&cfg, &qc, &y, &[true; 4], 2, 2);
        assert!(parts.corr.iter().all(|c| c.is_nan()));
        assert!(dq.iter().all(|v| v.is_finite()));
        let want = (parts.pinball[0] + parts.pinball[1]) / 2.0;
        assert!((parts.total - want).abs() < 1e-12);
        // In f32, too.
        let qf: Vec<f32> = vec![0.1; 3 * NQ];
        let yf = [0.3f32, -0.2, 0.9];
        let (parts, dq) = loss_and_grad(&cfg, &qf, &yf, &[true; 3], 3, 1);
        assert!(parts.corr[0].is_nan() && parts.total.is_finite());
        assert!(dq.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn no_labels_gives_zero() {
        let q = rand_vec(3 * 2 * NQ, 1, 1.0);
        let y = vec![f64::NAN; 6];
        let (parts, dq) = loss_and_grad(&LossConfig::default(), &q, &y, &[false; 6], 3, 2);
        assert_eq!(parts.total, 0.0);
        assert!(dq.iter().all(|v| *v == 0.0));
    }
}
