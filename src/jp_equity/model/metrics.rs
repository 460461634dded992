//! Evaluation metrics, defined once (PIPELINE.md §4) and used by training (early
//! stopping), model comparison and monitoring. All in `f64`, per horizon: a
//! [`DayMetrics`] per day with at least [`MIN_STOCKS`] stocks, then a [`Summary`] over
//! days. Every number is deterministic (fixed summation order, ties broken by index).

/// A day with fewer (finite) prediction/target pairs than this is skipped.
pub const MIN_STOCKS: usize = 20;

/// Trading days per year, the annualisation of the spread's Sharpe ratio.
pub const DAYS_PER_YEAR: f64 = 252.0;

/// A centred sum of squares at most this fraction of the raw `Σx²` counts as zero
/// variance (f64 rounding of a constant column leaves ~1e-32 of it).
const ZERO_VAR_REL: f64 = 1e-20;

/// Pearson correlation `Σ(a−ā)(b−b̄) / √(Σ(a−ā)²·Σ(b−b̄)²)`, clamped to [−1, 1].
/// `None` when there are fewer than 2 pairs, either side has zero variance (a centred sum
/// of squares of at most `1e-20·Σx²`, which absorbs rounding), or the result is not
/// finite (non-finite input). Panics if the lengths differ (a programming error).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "pearson: lengths differ");
    let n = a.len();
    if n < 2 {
        return None;
    }
    let nn = n as f64;
    let ma = a.iter().sum::<f64>() / nn;
    let mb = b.iter().sum::<f64>() / nn;
    let (mut saa, mut sbb, mut sab, mut raa, mut rbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (da, db) = (x - ma, y - mb);
        saa += da * da;
        sbb += db * db;
        sab += da * db;
        raa += x * x;
        rbb += y * y;
    }
    if saa <= ZERO_VAR_REL * raa || sbb <= ZERO_VAR_REL * rbb {
        return None;
    }
    let r = sab / (saa * sbb).sqrt();
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Ranks `1..=n` by value (`f64::total_cmp`), ties given their average rank.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]).then(i.cmp(&j)));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean is (start+1+end)/2.
        let r = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = r;
        }
        start = end;
    }
    ranks
}

/// Spearman rank correlation: [`pearson`] of the average ranks (ties share the mean of
/// their positions). `None` as for [`pearson`] (fewer than 2 pairs, or a constant side).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "spearman: lengths differ");
    if a.len() < 2 {
        return None;
    }
    pearson(&average_ranks(a), &average_ranks(b))
}

/// One day's metrics for one horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayMetrics {
    /// Number of (finite) pairs the day's metrics cover.
    pub n: usize,
    /// IC = Pearson(pred, y); 0 when undefined (a constant side: no information).
    pub ic: f64,
    /// RankIC = Spearman(pred, y); 0 when undefined.
    pub rank_ic: f64,
    /// Long-short decile spread: mean y of the top decile by pred minus mean y of the
    /// bottom decile, a decile being `max(1, n/10)` stocks.
    pub spread: f64,
    /// Share of pairs with `sign(pred) == sign(y)`, sign ∈ {−1, 0, +1}.
    pub hit_rate: f64,
}

/// For rows sorted by day: each day with its finite `(a, b)` pairs, in row order.
pub fn daily_pairs<D: PartialEq + Copy>(
    days: &[D],
    a: &[f64],
    b: &[f64],
) -> Vec<(D, Vec<f64>, Vec<f64>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < days.len() {
        let end = start
            + days[start..]
                .iter()
                .take_while(|d| **d == days[start])
                .count();
        let (x, y): (Vec<f64>, Vec<f64>) = (start..end)
            .filter(|&i| a[i].is_finite() && b[i].is_finite())
            .map(|i| (a[i], b[i]))
            .unzip();
        out.push((days[start], x, y));
        start = end;
    }
    out
}

/// Metrics of one day: pairs where `pred` or `y` is not finite are dropped first; `None`
/// when fewer than [`MIN_STOCKS`] remain. Deciles: the remaining pairs are ordered by
/// `pred` ascending, ties by their index; the bottom decile is the first `max(1, n/10)`,
/// the top decile the last `max(1, n/10)`. Panics if the lengths differ.
pub fn day_metrics(pred: &[f64], y: &[f64]) -> Option<DayMetrics> {
    assert_eq!(pred.len(), y.len(), "day_metrics: lengths differ");
    let (p, t): (Vec<f64>, Vec<f64>) = pred
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    let n = p.len();
    if n < MIN_STOCKS {
        return None;
    }
    let ic = pearson(&p, &t).unwrap_or(0.0);
    let rank_ic = spearman(&p, &t).unwrap_or(0.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]).then(i.cmp(&j)));
    let d = (n / 10).max(1);
    let mean = |ix: &[usize]| ix.iter().map(|&i| t[i]).sum::<f64>() / ix.len() as f64;
    let spread = mean(&order[n - d..]) - mean(&order[..d]);
    let sign = |v: f64| {
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    };
    let hits = p
        .iter()
        .zip(&t)
        .filter(|(a, b)| sign(**a) == sign(**b))
        .count();
    Some(DayMetrics {
        n,
        ic,
        rank_ic,
        spread,
        hit_rate: hits as f64 / n as f64,
    })
}

/// Metrics over days for one horizon.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Number of days covered.
    pub days: usize,
    /// Mean daily IC.
    pub ic: f64,
    /// Mean daily RankIC.
    pub rank_ic: f64,
    /// ICIR = mean / std of daily IC (not annualised).
    pub icir: f64,
    /// mean / std of daily RankIC.
    pub rank_icir: f64,
    /// Mean daily decile spread.
    pub spread: f64,
    /// Sharpe of the daily spread: mean / std · √252 over days (never within one day).
    pub spread_sharpe: f64,
    /// Mean daily hit rate.
    pub hit_rate: f64,
}

/// Mean and sample standard deviation (divisor `days − 1`) in day order.
fn mean_std(x: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = x.clone().count();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = x.clone().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = x.map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// `mean / std`, 0 when the std is 0 (fewer than 2 days, or identical days).
fn ratio(mean: f64, std: f64) -> f64 {
    if std > 0.0 { mean / std } else { 0.0 }
}

/// Summary over days: means of each daily metric; `icir = mean(ic)/std(ic)`,
/// `rank_icir = mean(rank_ic)/std(rank_ic)`, `spread_sharpe = mean(spread)/std(spread)·√252`,
/// with the sample std (divisor `days − 1`). NaN-free for finite inputs: with no days every
/// field is 0 (and `days = 0` says so); the ratios are 0 when `days < 2` or the std is 0.
pub fn summarize(days: &[DayMetrics]) -> Summary {
    let (ic, ic_sd) = mean_std(days.iter().map(|d| d.ic));
    let (rank_ic, rank_sd) = mean_std(days.iter().map(|d| d.rank_ic));
    let (spread, spread_sd) = mean_std(days.iter().map(|d| d.spread));
    let (hit_rate, _) = mean_std(days.iter().map(|d| d.hit_rate));
    Summary {
        days: days.len(),
        ic,
        rank_ic,
        icir: ratio(ic, ic_sd),
        rank_icir: ratio(rank_ic, rank_sd),
        spread,
        spread_sharpe: ratio(spread, spread_sd) * DAYS_PER_YEAR.sqrt(),
        hit_rate,
    }
}

/// Newey–West lag count for `n` observations (Newey & West 1994's plug-in rule,
/// `⌊4·(n/100)^(2/9)⌋`), at least `min_lags`. A series of overlapping `h`-day returns has
/// autocorrelation up to lag `h − 1`: pass `min_lags = h − 1`.
pub fn newey_west_lags(n: usize, min_lags: usize) -> usize {
    let rule = (4.0 * (n as f64 / 100.0).powf(2.0 / 9.0)).floor() as usize;
    rule.max(min_lags)
}

/// Standard error of the mean of a daily series (in day order) that respects its
/// autocorrelation: the Newey–West (Bartlett kernel) long-run variance with `lags` lags,
/// `σ̂² = γ₀ + 2·Σ_{l=1..L} (1 − l/(L+1))·γ_l` with `γ_l = Σ_t e_t·e_{t−l} / n`, and
/// `SE = √(σ̂²/n)`. With `lags = 0` it is the plain `σ/√n` (divisor `n`). NaN for fewer
/// than 2 values; the variance is floored at 0.
pub fn newey_west_se(x: &[f64], lags: usize) -> f64 {
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let e: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let gamma = |l: usize| (l..n).map(|t| e[t] * e[t - l]).sum::<f64>() / n as f64;
    let lags = lags.min(n - 1);
    let mut var = gamma(0);
    for l in 1..=lags {
        var += 2.0 * (1.0 - l as f64 / (lags + 1) as f64) * gamma(l);
    }
    (var.max(0.0) / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pearson_hand_examples() {
        // a = [1,2,3,4], b = [2,4,5,9]: ā = 2.5, b̄ = 5; da = [−1.5,−.5,.5,1.5], db = [−3,−1,0,4]
        // Σdadb = 4.5+0.5+0+6 = 11; Σda² = 5; Σdb² = 26 → 11/√130.
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]).expect("defined");
        assert!(close(r, 11.0 / 130f64.sqrt()), "{r}");
        assert!(close(
            pearson(&[1.0, 2.0, 3.0], &[-2.0, -4.0, -6.0]).expect("defined"),
            -1.0
        ));
        assert_eq!(pearson(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[], &[]), None);
        assert_eq!(pearson(&[0.1, 0.1, 0.1], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[7.0, 7.0, 7.0]), None);
        assert_eq!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn spearman_hand_examples_with_ties() {
        // Monotone but non-linear: 1.
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]).expect("d"),
            1.0
        ));
        // a = [1,2,2,3] → ranks [1, 2.5, 2.5, 4]; b = [1,2,3,4] → ranks [1,2,3,4].
        // dra = [−1.5, 0, 0, 1.5], drb = [−1.5, −.5, .5, 1.5]: Σ = 4.5, Σdra² = 4.5, Σdrb² = 5
        // → 4.5/√22.5.
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).expect("defined");
        assert!(close(r, 4.5 / 22.5f64.sqrt()), "{r}");
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 3.0, 0.0]),
            vec![4.0, 2.0, 4.0, 4.0, 1.0]
        );
        assert_eq!(spearman(&[5.0, 5.0, 5.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[5.0], &[1.0]), None);
    }

    #[test]
    fn day_metrics_needs_twenty_stocks() {
        let p: Vec<f64> = (0..19).map(|i| i as f64).collect();
        assert!(day_metrics(&p, &p).is_none());
        let mut p20: Vec<f64> = (0..21).map(|i| i as f64).collect();
        let y20 = p20.clone();
        assert!(day_metrics(&p20, &y20).is_some());
        // A non-finite pair is dropped before counting.
        p20[3] = f64::NAN;
        assert_eq!(day_metrics(&p20, &y20).map(|d| d.n), Some(20));
        p20[4] = f64::INFINITY;
        assert!(day_metrics(&p20, &y20).is_none());
    }

    #[test]
    fn decile_spread_and_hit_rate_hand_example() {
        // n = 20 → decile of 2. pred = i − 10, except stocks 18 and 19 tie with stock 17
        // (pred 7) and stock 1 ties with stock 0 (pred −10). Ordered by pred then index,
        // the top two are 18 and 19 (not 17), the bottom two 0 and 1.
        let n = 20;
        let mut pred: Vec<f64> = (0..n).map(|i| i as f64 - 10.0).collect();
        pred[18] = 7.0;
        pred[19] = 7.0;
        pred[1] = -10.0;
        // y = i + 1, negated when i % 4 == 0: [−1, 2, 3, 4, −5, …, 18, 19, 20].
        let y: Vec<f64> = (0..n)
            .map(|i| {
                if i % 4 == 0 {
                    -(i as f64) - 1.0
                } else {
                    i as f64 + 1.0
                }
            })
            .collect();
        let d = day_metrics(&pred, &y).expect("20 stocks");
        assert_eq!(d.n, 20);
        // top: y 19 and 20 → 19.5; bottom: y −1 and 2 → 0.5.
        assert!(close(d.spread, 19.0), "{}", d.spread);
        // sign(pred): −1 for i < 10, 0 for i = 10, +1 above; sign(y): −1 iff i % 4 == 0.
        // Hits: i ∈ {0, 4, 8} and i ∈ {11, 13, 14, 15, 17, 18, 19}: 10 of 20.
        assert!(close(d.hit_rate, 10.0 / 20.0), "{}", d.hit_rate);
        // Zero matches zero.
        let mut p2 = vec![1.0; 20];
        let mut y2 = vec![1.0; 20];
        p2[0] = 0.0;
        y2[0] = 0.0;
        y2[1] = -1.0;
        let d2 = day_metrics(&p2, &y2).expect("20 stocks");
        assert!(close(d2.hit_rate, 19.0 / 20.0));
        // Constant predictions carry no information: IC and RankIC are 0, not NaN.
        let d3 =
            day_metrics(&[0.5; 25], &(0..25).map(|i| i as f64).collect::<Vec<_>>()).expect("25");
        assert_eq!((d3.ic, d3.rank_ic), (0.0, 0.0));
        // With 35 stocks the decile is 3.
        let p4: Vec<f64> = (0..35).map(|i| i as f64).collect();
        let d4 = day_metrics(&p4, &p4).expect("35");
        assert!(close(d4.spread, 33.0 - 1.0));
    }

    #[test]
    fn summarize_formulas() {
        let day = |ic: f64, rank_ic: f64, spread: f64, hit_rate: f64| DayMetrics {
            n: 30,
            ic,
            rank_ic,
            spread,
            hit_rate,
        };
        let days = [
            day(0.1, 0.2, 0.01, 0.5),
            day(0.3, 0.0, 0.03, 0.6),
            day(0.2, 0.1, -0.01, 0.7),
        ];
        let s = summarize(&days);
        assert_eq!(s.days, 3);
        // IC: mean 0.2, sample std √((0.01+0.01+0)/2) = 0.1 → ICIR 2.
        assert!(close(s.ic, 0.2) && close(s.icir, 2.0), "{s:?}");
        // RankIC: mean 0.1, std 0.1 → 1.
        assert!(close(s.rank_ic, 0.1) && close(s.rank_icir, 1.0));
        // Spread: mean 0.01, std √((0+0.0004+0.0004)/2) = 0.02 → 0.5·√252.
        assert!(close(s.spread, 0.01) && close(s.spread_sharpe, 0.5 * 252f64.sqrt()));
        assert!(close(s.hit_rate, 0.6));
        // Fewer than 2 days: ratios 0, never NaN.
        let one = summarize(&days[..1]);
        assert_eq!(
            (one.days, one.icir, one.rank_icir, one.spread_sharpe),
            (1, 0.0, 0.0, 0.0)
        );
        assert!(close(one.ic, 0.1));
        let none = summarize(&[]);
        assert_eq!(none.days, 0);
        assert!(
            [
                none.ic,
                none.rank_ic,
                none.icir,
                none.rank_icir,
                none.spread,
                none.spread_sharpe,
                none.hit_rate
            ]
            .iter()
            .all(|v| *v == 0.0)
        );
    }

    #[test]
    fn daily_pairs_group_days_and_drop_non_finite_pairs() {
        let days = [1, 1, 1, 2, 3, 3];
        let a = [1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 2.0, 3.0, f64::INFINITY, 5.0, 6.0];
        let g = daily_pairs(&days, &a, &b);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0], (1, vec![1.0, 3.0], vec![1.0, 3.0]));
        assert_eq!(g[1], (2, vec![], vec![]));
        assert_eq!(g[2], (3, vec![5.0, 6.0], vec![5.0, 6.0]));
    }

    #[test]
    fn newey_west_by_hand_and_on_autocorrelated_series() {
        // x = [1, 2, 3, 4]: e = [−1.5, −.5, .5, 1.5]; γ0 = 5/4, γ1 = (.75 − .25 + .75)/4
        // = 1.25/4; L = 1: σ̂² = 1.25 + 2·½·0.3125 = 1.5625; SE = √(1.5625/4) = 0.625.
        assert!(close(newey_west_se(&[1.0, 2.0, 3.0, 4.0], 1), 0.625));
        assert!(close(
            newey_west_se(&[1.0, 2.0, 3.0, 4.0], 0),
            (1.25f64 / 4.0).sqrt()
        ));
        assert!(newey_west_se(&[1.0], 3).is_nan());
        assert_eq!(newey_west_lags(384, 0), 5);
        assert_eq!(newey_west_lags(384, 19), 19);
        // An AR(1) series with φ = 0.6: the true SE of the mean is about
        // √((1+φ)/(1−φ)) = 2× the iid one, which NW sees and the plain SE does not.
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut x = vec![0.0f64; 20_000];
        for t in 1..x.len() {
            let z: f64 = StandardNormal.sample(&mut rng);
            x[t] = 0.6 * x[t - 1] + z;
        }
        let plain = newey_west_se(&x, 0);
        let nw = newey_west_se(&x, 40);
        assert!((nw / plain - 2.0).abs() < 0.2, "nw/plain = {}", nw / plain);
    }
}
