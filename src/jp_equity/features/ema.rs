//! Exponential averages over a window, as finite weighted sums.
//!
//! An EMA seeded at the start of an `n`-row window (`e₀ = x₀`, `eₜ = α·xₜ + β·eₜ₋₁`,
//! β = 1 − α) is exactly the weighted sum `β^(n−1)·x₀ + Σₖ α·β^k·x_{n−1−k}` over the
//! window's rows. Computing it as that sum makes each value a pure function of its own
//! `n` rows, identical bit for bit whichever batch computes it (invariant 3: incremental
//! = full), which a recursion running through a batch cannot be.
//!
//! `n` is chosen so that the seed's weight β^(n−1) is below [`TAIL`]: the value then
//! agrees with the infinite-history EMA (and with TA-Lib, whose SMA seed has decayed the
//! same way) to far better than 1e-3 relative.

/// Weight left on the seed row: the truncation error relative to an infinite history.
pub const TAIL: f64 = 1e-6;

/// Smoothing of a span-`s` EMA (TA-Lib's EMA, MACD): α = 2 / (s + 1).
pub fn span_alpha(span: usize) -> f64 {
    2.0 / (span as f64 + 1.0)
}

/// Wilder's smoothing of period `p` (RSI, ATR): α = 1 / p.
pub fn wilder_alpha(period: usize) -> f64 {
    1.0 / period as f64
}

/// Rows an EMA with smoothing `alpha` reads: the fewest with seed weight below [`TAIL`].
pub fn rows(alpha: f64) -> usize {
    let beta = 1.0 - alpha;
    if beta <= 0.0 {
        return 1;
    }
    (TAIL.ln() / beta.ln()).ceil() as usize + 1
}

/// The weights of an EMA seeded at the first of `n` rows, oldest row first (the order a
/// rolling window presents its values in). They sum to 1.
pub fn weights(alpha: f64, n: usize) -> Vec<f64> {
    let beta = 1.0 - alpha;
    (0..n)
        .map(|j| {
            if j == 0 {
                beta.powi(n as i32 - 1)
            } else {
                alpha * beta.powi((n - 1 - j) as i32)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_equal_the_seeded_recursion() {
        let xs: Vec<f64> = (0..40)
            .map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0)
            .collect();
        for alpha in [span_alpha(5), wilder_alpha(14), span_alpha(26)] {
            let n = 25;
            let w = weights(alpha, n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let window = &xs[xs.len() - n..];
            let mut e = window[0];
            for x in &window[1..] {
                e = alpha * x + (1.0 - alpha) * e;
            }
            let s: f64 = window.iter().zip(&w).map(|(x, w)| x * w).sum();
            assert!((s - e).abs() < 1e-9, "{s} vs {e}");
        }
    }

    #[test]
    fn rows_leave_a_seed_weight_below_the_tail() {
        for alpha in [
            span_alpha(5),
            span_alpha(12),
            span_alpha(26),
            wilder_alpha(14),
        ] {
            let n = rows(alpha);
            assert!(weights(alpha, n)[0] < TAIL);
            assert!(weights(alpha, n - 1)[0] >= TAIL);
        }
        assert_eq!(rows(span_alpha(26)), 181);
        assert_eq!(rows(wilder_alpha(14)), 188);
    }
}
