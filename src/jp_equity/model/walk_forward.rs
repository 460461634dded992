//! Walk-forward cross-validation over trading days: expanding training windows, each
//! followed by an embargo and then its validation block (MODEL.md "Training").
//!
//! Days are positions on the trading calendar (0, 1, 2, … in date order). Fold `i`
//! validates on the `i`-th of `folds` equal blocks that tile the days after the first
//! `min_train + embargo`, and trains on every day more than `embargo` trading days before
//! its block's first day. So no validation day lies within `embargo` trading days of a
//! training day, and training windows only grow.

use std::ops::Range;

/// One fold: its training days and validation days (calendar positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Range<usize>,
    pub valid: Range<usize>,
}

/// The splitter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkForward {
    pub folds: usize,
    /// Trading days between the last training day and the first validation day (20).
    pub embargo: usize,
    /// At least this many training days in the first fold (252).
    pub min_train: usize,
}

impl Default for WalkForward {
    fn default() -> Self {
        WalkForward {
            folds: 5,
            embargo: 20,
            min_train: 252,
        }
    }
}

impl WalkForward {
    /// Folds over `days` trading days, or an error saying how many days are needed.
    pub fn split(&self, days: usize) -> Result<Vec<Fold>, String> {
        if self.min_train == 0 {
            return Err("min_train_days must be at least 1".into());
        }
        let folds = self.folds.max(1);
        let first_valid = self.min_train + self.embargo;
        let needed = first_valid + folds;
        if days < needed {
            return Err(format!(
                "walk-forward needs at least {needed} trading days ({} training, an embargo of {}, \
                 one validation day per fold for {folds} folds) but the data has {days}; \
                 lower `min_train_days` or `folds`, or build more history",
                self.min_train, self.embargo
            ));
        }
        let span = days - first_valid;
        Ok((0..folds)
            .map(|i| {
                let start = first_valid + span * i / folds;
                let end = first_valid + span * (i + 1) / folds;
                // Training days d satisfy start − d > embargo.
                Fold {
                    train: 0..start - self.embargo,
                    valid: start..end,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_validation_day_is_within_the_embargo_of_a_training_day() {
        let wf = WalkForward::default();
        for days in [277, 300, 700, 2500] {
            let folds = wf.split(days).expect("enough days");
            assert_eq!(folds.len(), 5);
            for f in &folds {
                assert!(f.train.len() >= wf.min_train);
                let last_train = f.train.end - 1;
                for v in f.valid.clone() {
                    assert!(
                        v - last_train > wf.embargo,
                        "day {v} is within {} of {last_train}",
                        wf.embargo
                    );
                }
                assert!(!f.valid.is_empty());
            }
        }
    }

    #[test]
    fn folds_expand_and_validation_blocks_tile_the_tail() {
        let folds = WalkForward::default().split(772).expect("enough days");
        for w in folds.windows(2) {
            assert!(
                w[1].train.end > w[0].train.end,
                "training windows must grow"
            );
            assert_eq!(w[0].train.start, 0);
            assert_eq!(
                w[0].valid.end, w[1].valid.start,
                "validation blocks are contiguous"
            );
        }
        assert_eq!(folds[0].valid.start, 272);
        assert_eq!(folds[4].valid.end, 772);
        assert_eq!(folds[0].train, 0..252);
    }

    #[test]
    fn too_little_history_names_what_is_needed() {
        let err = WalkForward::default().split(200).unwrap_err();
        assert!(
            err.contains("at least 277") && err.contains("has 200"),
            "{err}"
        );
    }
}
