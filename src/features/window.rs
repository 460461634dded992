//! Window-pure weighted sums, evaluated only where they are needed.
//!
//! `dot(x, w, at)` gives, at every row `p` with `at[p]`, the sum `Σⱼ w[j]·x[p−n+1+j]`
//! over the `n = w.len()` rows ending at `p` (oldest first), and NaN elsewhere. Each
//! value is computed afresh from its own rows in a fixed order, so it is the same bit
//! for bit in any batch (invariant 3); and because only the rows that are published (or
//! that a later window reads) are computed, a one-day build pays for one row per stock,
//! not for its whole 260-day window.
//!
//! Plain window sums are `dot` with unit weights; EMAs are `dot` with
//! [`super::ema::weights`]. A NaN (a null input) inside a window makes the value NaN,
//! which becomes null in the output.

use rayon::prelude::*;

/// The weighted sum of the `w.len()` rows ending at each row where `at` holds.
pub fn dot(x: &[f64], w: &[f64], at: &[bool]) -> Vec<f64> {
    let n = w.len();
    let mut out = vec![f64::NAN; x.len()];
    out.par_chunks_mut(4096).enumerate().for_each(|(c, chunk)| {
        let base = c * 4096;
        for (i, o) in chunk.iter_mut().enumerate() {
            let p = base + i;
            if !at[p] || p + 1 < n {
                continue;
            }
            let win = &x[p + 1 - n..=p];
            // Four interleaved accumulators, combined in a fixed order.
            let mut acc = [0.0f64; 4];
            let mut chunks = win.chunks_exact(4).zip(w.chunks_exact(4));
            for (xs, ws) in &mut chunks {
                for k in 0..4 {
                    acc[k] += xs[k] * ws[k];
                }
            }
            let tail = n - n % 4;
            for k in tail..n {
                acc[k - tail] += win[k] * w[k];
            }
            *o = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
    });
    out
}

/// Marks every row from which a window of `rows` rows reaches a marked row: `at` widened
/// backwards, for a quantity that a later `rows`-row window reads.
pub fn widen(at: &[bool], rows: usize) -> Vec<bool> {
    let mut out = vec![false; at.len()];
    let mut next_marked: Option<usize> = None;
    for p in (0..at.len()).rev() {
        if at[p] {
            next_marked = Some(p);
        }
        out[p] = next_marked.is_some_and(|m| m - p < rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_the_window_sum_at_marked_rows_only() {
        let x: Vec<f64> = (0..20).map(|i| i as f64 * 0.5 + 1.0).collect();
        let w = [0.1, 0.2, 0.3, 0.15, 0.25];
        let mut at = vec![true; 20];
        at[10] = false;
        let d = dot(&x, &w, &at);
        for p in 0..20 {
            if p < 4 || p == 10 {
                assert!(d[p].is_nan(), "row {p}");
            } else {
                let e: f64 = (0..5).map(|j| w[j] * x[p - 4 + j]).sum();
                assert!((d[p] - e).abs() < 1e-12, "row {p}: {} vs {e}", d[p]);
            }
        }
    }

    #[test]
    fn a_value_depends_only_on_its_window_bit_for_bit() {
        let x: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.37).sin() * 100.0 + 1000.0)
            .collect();
        let w = super::super::ema::weights(0.1, 131);
        let all = dot(&x, &w, &vec![true; 300]);
        // The same last row computed from a frame that starts later.
        let tail = &x[150..];
        let one = dot(tail, &w, &vec![true; tail.len()]);
        assert_eq!(all[299].to_bits(), one[149].to_bits());
        let nan = dot(&[1.0, f64::NAN, 2.0, 3.0], &[1.0, 1.0], &[true; 4]);
        assert!(nan[1].is_nan() && nan[2].is_nan() && nan[3] == 5.0);
    }

    #[test]
    fn widen_marks_the_rows_a_later_window_reads() {
        let at = [false, false, false, true, false, false, true];
        assert_eq!(widen(&at, 3), [false, true, true, true, true, true, true]);
        assert_eq!(widen(&at, 1), at);
    }
}
