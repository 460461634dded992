//! Window-pure weighted sums, evaluated only where they are needed.
//!
//! `dot(x, w, at)` gives, at every row `p` listed in `at`, the sum `Σⱼ w[j]·x[p−n+1+j]`
//! over the `n = w.len()` rows ending at `p` (oldest first). Each
//! value is computed afresh from its own rows in a fixed order, so it is the same bit
//! for bit in any batch (invariant 3); and because only the rows that are published (or
//! that a later window reads) are computed, a one-day build pays for one row per stock,
//! not for its whole 260-day window.
//!
//! Plain window sums are `dot` with unit weights; EMAs are `dot` with
//! [`super::ema::weights`]. A NaN (a null input) inside a window makes the value NaN,
//! which becomes null in the output.

use rayon::prelude::*;

/// The weighted sum of the `w.len()` rows ending at each row of `at` (row indices,
/// ascending); NaN where fewer rows precede.
pub fn dot(x: &[f64], w: &[f64], at: &[usize]) -> Vec<f64> {
    let n = w.len();
    let mut out = vec![f64::NAN; at.len()];
    out.par_chunks_mut(1024)
        .zip(at.par_chunks(1024))
        .for_each(|(o, rows)| {
            for (o, &p) in o.iter_mut().zip(rows) {
                if p + 1 < n {
                    continue;
                }
                let win = &x[p + 1 - n..=p];
                // Four interleaved accumulators, combined in a fixed order.
                let mut acc = [0.0f64; 4];
                for (xs, ws) in win.chunks_exact(4).zip(w.chunks_exact(4)) {
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

/// `x` `k` rows back, at each row of `at` (NaN where fewer rows precede).
pub fn lag(x: &[f64], k: usize, at: &[usize]) -> Vec<f64> {
    at.iter()
        .map(|&p| if p >= k { x[p - k] } else { f64::NAN })
        .collect()
}

/// The least (`max = false`) or greatest value of the `n` rows ending at each row of
/// `at`; NaN when one of them is NaN or fewer rows precede.
pub fn extreme(x: &[f64], n: usize, at: &[usize], max: bool) -> Vec<f64> {
    at.iter()
        .map(|&p| {
            if p + 1 < n {
                return f64::NAN;
            }
            let win = &x[p + 1 - n..=p];
            if win.iter().any(|v| v.is_nan()) {
                return f64::NAN;
            }
            win.iter()
                .copied()
                .fold(if max { f64::MIN } else { f64::MAX }, |a, b| {
                    if max { a.max(b) } else { a.min(b) }
                })
        })
        .collect()
}

/// Whether the `rows` rows ending at each row of `at` all belong to its stock
/// (`first[p]` is the index of the first row of row p's stock) and lie inside its
/// window (the earliest one dated on or after `window_start[p]`).
pub fn inside(
    rows: usize,
    at: &[usize],
    first: &[usize],
    date: &[i32],
    window_start: &[i32],
) -> Vec<bool> {
    let k = rows.saturating_sub(1);
    at.iter()
        .map(|&p| p >= k && p - k >= first[p] && date[p - k] >= window_start[p])
        .collect()
}

/// The indices of the marked rows.
pub fn marked(at: &[bool]) -> Vec<usize> {
    at.iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(p, _)| p)
        .collect()
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
    fn dot_is_the_window_sum_at_the_given_rows_only() {
        let x: Vec<f64> = (0..20).map(|i| i as f64 * 0.5 + 1.0).collect();
        let w = [0.1, 0.2, 0.3, 0.15, 0.25];
        let at: Vec<usize> = (0..20).filter(|p| *p != 10).collect();
        let d = dot(&x, &w, &at);
        for (i, &p) in at.iter().enumerate() {
            if p < 4 {
                assert!(d[i].is_nan(), "row {p}");
            } else {
                let e: f64 = (0..5).map(|j| w[j] * x[p - 4 + j]).sum();
                assert!((d[i] - e).abs() < 1e-12, "row {p}: {} vs {e}", d[i]);
            }
        }
    }

    #[test]
    fn a_value_depends_only_on_its_window_bit_for_bit() {
        let x: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.37).sin() * 100.0 + 1000.0)
            .collect();
        let w = super::super::ema::weights(0.1, 131);
        let all = dot(&x, &w, &(0..300).collect::<Vec<_>>());
        // The same last row computed from a frame that starts later.
        let tail = &x[150..];
        let one = dot(tail, &w, &[149]);
        assert_eq!(all[299].to_bits(), one[0].to_bits());
        let nan = dot(&[1.0, f64::NAN, 2.0, 3.0], &[1.0, 1.0], &[0, 1, 2, 3]);
        assert!(nan[1].is_nan() && nan[2].is_nan() && nan[3] == 5.0);
    }

    #[test]
    fn lags_extremes_and_window_masks_at_the_given_rows() {
        let x = [1.0, 5.0, 2.0, 4.0, f64::NAN, 3.0];
        let at = [2, 3, 5];
        assert_eq!(lag(&x, 2, &at), [1.0, 5.0, 4.0]);
        assert!(
            lag(&x, 1, &at)[2].is_nan(),
            "the lagged value itself is NaN"
        );
        assert!(lag(&x, 3, &at)[0].is_nan());
        let hi = extreme(&x, 3, &at, true);
        assert_eq!((hi[0], hi[1]), (5.0, 5.0));
        assert!(hi[2].is_nan());
        assert_eq!(extreme(&x, 2, &at, false)[1], 2.0);
        // Two stocks: rows 0..3 and 3..6; windows start at date 11 for rows 4 and 5.
        let first = [0, 0, 0, 3, 3, 3];
        let date = [10, 11, 12, 10, 11, 12];
        let ws = [0, 0, 0, 0, 11, 11];
        let all: Vec<usize> = (0..6).collect();
        assert_eq!(
            inside(2, &all, &first, &date, &ws),
            [false, true, true, false, false, true]
        );
        assert_eq!(inside(1, &all, &first, &date, &ws), [true; 6]);
        assert_eq!(marked(&[false, true, true, false]), [1, 2]);
    }

    #[test]
    fn widen_marks_the_rows_a_later_window_reads() {
        let at = [false, false, false, true, false, false, true];
        assert_eq!(widen(&at, 3), [false, true, true, true, true, true, true]);
        assert_eq!(widen(&at, 1), at);
    }
}
