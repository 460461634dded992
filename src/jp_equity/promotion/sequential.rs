//! The promotion policy's test: is the challenger's daily rank correlation higher than
//! the champion's, looking at the evidence every day?
//!
//! A policy that runs a fixed-sample test (t > 1.645) after every new day promotes noise:
//! with 200 looks the chance that an equal challenger crosses once is far above 5%. The
//! policy instead uses a mixture sequential probability ratio test (mSPRT; Robbins 1970,
//! Johari et al. 2017, "always-valid p-values"): with `d̄` the mean of the `n` paired
//! daily differences, `s` its Newey–West standard error (lags ≥ the horizon, since
//! overlapping `h`-day labels make neighbouring days' differences correlated) and `τ` the
//! improvement the test is tuned to (`effect`), the likelihood ratio of "the mean
//! difference is drawn from N(0, τ²)" against "it is 0" is
//!
//! `Λ = √(s² / (s² + τ²)) · exp( t²/2 · τ² / (s² + τ²) )`, `t = d̄ / s`,
//!
//! and rejecting the first time `Λ ≥ 1/α` keeps the false-promotion rate at most `α`
//! however often the policy looks (Ville's inequality). Only a positive `d̄` may reject
//! (one-sided; that halves nothing and stays valid). `p = min(1, 1/Λ)` is the
//! always-valid p-value the policy reports. The HAC estimate of the long-run variance
//! stands in for the known variance of the textbook test, which is why the policy also
//! waits for `min_days`; the tests below measure the false-promotion rate under daily
//! looks on simulated cross-sections.

use crate::jp_equity::model::metrics::{newey_west_lags, newey_west_se};
use serde::{Deserialize, Serialize};

/// The test on the differences seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequentialTest {
    pub days: usize,
    /// Mean daily difference, challenger − champion.
    pub mean: f64,
    /// Its Newey–West standard error and the lags used.
    pub hac_se: f64,
    pub lags: usize,
    pub t: f64,
    /// The mixture likelihood ratio Λ (module doc) and the always-valid p-value 1/Λ.
    pub likelihood_ratio: f64,
    pub p_value: f64,
}

/// Runs the test on `diffs` (in day order) of an `horizon_days`-day label, tuned to an
/// improvement of `effect`.
pub fn test(diffs: &[f64], horizon_days: usize, effect: f64) -> SequentialTest {
    let n = diffs.len();
    let mean = if n == 0 {
        0.0
    } else {
        diffs.iter().sum::<f64>() / n as f64
    };
    let lags = newey_west_lags(n, horizon_days);
    let se = newey_west_se(diffs, lags);
    let t = if se > 0.0 { mean / se } else { 0.0 };
    let ln_lambda = if se.is_finite() && se > 0.0 && mean > 0.0 {
        let (s2, tau2) = (se * se, effect * effect);
        0.5 * (s2 / (s2 + tau2)).ln() + 0.5 * t * t * tau2 / (s2 + tau2)
    } else {
        f64::NEG_INFINITY
    };
    let likelihood_ratio = ln_lambda.exp();
    SequentialTest {
        days: n,
        mean,
        hac_se: se,
        lags,
        t,
        likelihood_ratio,
        p_value: (-ln_lambda).exp().min(1.0),
    }
}

/// What the test says a trial should do, by the policy's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer than `min_days` days: no decision is allowed.
    TooFew,
    /// Significant at `alpha` and at least `min_improvement` better.
    Promote,
    /// `max_days` reached without proof.
    Retire,
    Wait,
}

/// The verdict of `t` under policy `p`.
pub fn verdict(t: &SequentialTest, p: &crate::core::rule::Promotion) -> Verdict {
    if t.days < p.min_days {
        Verdict::TooFew
    } else if t.p_value <= p.alpha && t.mean >= p.min_improvement {
        Verdict::Promote
    } else if t.days >= p.max_days {
        Verdict::Retire
    } else {
        Verdict::Wait
    }
}

#[cfg(test)]
pub(crate) mod simulation {
    //! Simulated champion/challenger pairs on a planted-signal market, to measure the
    //! policy as it runs in production (one look per day).
    use crate::jp_equity::model::metrics::spearman;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    /// Daily RankIC differences (challenger − champion) at an `h`-day horizon over
    /// `days` days of a market of `stocks` stocks: each day a planted signal `s` moves
    /// the next day's return by `beta·s` (the rest is unit noise); a model predicts
    /// `s + shared + noise·ε` where `shared` is an error both models make (two versions
    /// of one architecture agree on much of what they get wrong) and `ε` is its own.
    pub fn diffs(
        seed: u64,
        days: usize,
        h: usize,
        stocks: usize,
        champion_noise: f64,
        challenger_noise: f64,
    ) -> Vec<f64> {
        let beta = 0.15;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut z = || -> f64 { StandardNormal.sample(&mut rng) };
        let total = days + h + 1;
        let signal: Vec<Vec<f64>> = (0..total)
            .map(|_| (0..stocks).map(|_| z()).collect())
            .collect();
        // returns[t][i]: day t's return, driven by day t−1's signal.
        let returns: Vec<Vec<f64>> = (0..total)
            .map(|t| {
                (0..stocks)
                    .map(|i| if t == 0 { 0.0 } else { beta * signal[t - 1][i] } + z())
                    .collect()
            })
            .collect();
        (0..days)
            .map(|t| {
                let label: Vec<f64> = (0..stocks)
                    .map(|i| (1..=h).map(|k| returns[t + k][i]).sum())
                    .collect();
                let shared: Vec<f64> = (0..stocks).map(|_| 0.8 * z()).collect();
                let model = |noise: f64, z: &mut dyn FnMut() -> f64| -> Vec<f64> {
                    (0..stocks)
                        .map(|i| signal[t][i] + shared[i] + noise * z())
                        .collect()
                };
                let a = model(champion_noise, &mut z);
                let b = model(challenger_noise, &mut z);
                spearman(&b, &label).unwrap_or(0.0) - spearman(&a, &label).unwrap_or(0.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::simulation::diffs;
    use super::*;

    pub(crate) fn policy(horizon_days: usize) -> crate::core::rule::Promotion {
        crate::core::rule::Promotion {
            alias: "production".into(),
            challenger: "challenger".into(),
            auto_challenger: true,
            champion_scores: "predictions".into(),
            challenger_scores: "challenger_predictions".into(),
            labels: "labels".into(),
            horizon: format!("{horizon_days}d"),
            min_days: 60,
            max_days: 250,
            alpha: 0.05,
            effect: 0.01,
            min_improvement: 0.0,
            rollback: true,
            rollback_window: 60,
        }
    }

    /// The first day on which the policy, looking every day from the first, promotes.
    fn first_promotion(d: &[f64], h: usize) -> Option<usize> {
        let p = policy(h);
        (1..=d.len()).find(|&n| verdict(&test(&d[..n], h, p.effect), &p) == Verdict::Promote)
    }

    #[test]
    fn the_test_matches_its_formula_and_is_one_sided() {
        let d: Vec<f64> = (0..100)
            .map(|i| 0.01 + 0.02 * ((i * 7 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let r = test(&d, 1, 0.01);
        let (s2, tau2) = (r.hac_se.powi(2), 1e-4);
        let lambda = (s2 / (s2 + tau2)).sqrt() * (0.5 * r.t.powi(2) * tau2 / (s2 + tau2)).exp();
        assert!(
            (r.likelihood_ratio - lambda).abs() <= 1e-9 * lambda,
            "{r:?} vs {lambda}"
        );
        assert!((r.p_value - (1.0 / lambda).min(1.0)).abs() < 1e-12);
        let neg: Vec<f64> = d.iter().map(|x| -x).collect();
        let r = test(&neg, 1, 0.01);
        assert_eq!((r.likelihood_ratio, r.p_value), (0.0, 1.0), "{r:?}");
        assert_eq!(test(&[], 5, 0.01).p_value, 1.0);
    }

    #[test]
    fn equal_challengers_looked_at_every_day_are_promoted_in_at_most_1_of_20_trials() {
        // Same strength, different noise (two seeds of one config), 250 daily looks
        // after the first 60 days, at the 1- and 5-day horizons.
        for h in [1, 5] {
            let promoted: Vec<u64> = (0..20)
                .filter(|&seed| {
                    let d = diffs(1000 + seed, 250, h, 300, 1.0, 1.0);
                    first_promotion(&d, h).is_some()
                })
                .collect();
            assert!(promoted.len() <= 1, "{h}d: promoted in trials {promoted:?}");
        }
    }

    #[test]
    fn the_false_promotion_rate_under_daily_looks_stays_at_alpha_where_a_fixed_test_does_not() {
        // 200 trials of equal challengers: the sequential policy's rate of ever promoting
        // against a naive "t > 1.645 on any day" policy's.
        let (mut sequential, mut naive) = (0, 0);
        let trials = 200;
        for seed in 0..trials {
            let d = diffs(5000 + seed, 250, 5, 200, 1.0, 1.0);
            if first_promotion(&d, 5).is_some() {
                sequential += 1;
            }
            if (60..=d.len()).any(|n| test(&d[..n], 5, 0.01).t > 1.645) {
                naive += 1;
            }
        }
        let rate = sequential as f64 / trials as f64;
        eprintln!(
            "equal challengers, 250 daily looks: sequential {sequential}/{trials}, naive {naive}/{trials}"
        );
        assert!(
            rate <= 0.05,
            "sequential false promotions {sequential}/{trials}"
        );
        assert!(
            naive as f64 / trials as f64 > 0.10,
            "the naive policy should promote noise: {naive}/{trials}"
        );
    }

    #[test]
    fn a_weak_challenger_is_never_promoted_and_a_clearly_better_one_is_promoted_after_min_days() {
        for seed in 0..10 {
            let weak = diffs(200 + seed, 250, 5, 300, 1.0, 3.0);
            assert_eq!(first_promotion(&weak, 5), None, "seed {seed}");
            // The planted signal itself against a noisy model: promoted once 60 days are
            // in, not before (the policy does not look earlier).
            let strong = diffs(300 + seed, 250, 5, 300, 3.0, 0.0);
            let day = first_promotion(&strong, 5);
            assert!(
                day.is_some_and(|d| (60..=120).contains(&d)),
                "seed {seed}: {day:?}"
            );
        }
    }

    #[test]
    fn a_realistic_edge_of_one_hundredth_is_promoted_within_250_days_in_most_trials() {
        // Challenger noise 0.7 against 1.0: about +0.01 mean daily 1-day RankIC.
        let trials = 20;
        let mut edge = 0.0;
        let mut within = Vec::new();
        for seed in 0..trials {
            let d = diffs(700 + seed, 250, 1, 300, 1.0, 0.7);
            edge += d.iter().sum::<f64>() / d.len() as f64 / trials as f64;
            within.push(first_promotion(&d, 1));
        }
        assert!((0.007..0.013).contains(&edge), "mean edge {edge}");
        let promoted = within.iter().flatten().count();
        eprintln!("realistic edge {edge:+.4}: first promotion day per trial {within:?}");
        assert!(
            promoted * 10 >= trials as usize * 7,
            "promoted in {promoted}/{trials}: {within:?}"
        );
    }
}
