//! Partitions and windows: which slice of an asset is built and keyed on its own, and
//! which input partitions one output partition may read.
//!
//! A daily asset has one partition per date of its domain. A window `[a, b]` over a daily
//! input is counted in the input's own partitions (trading days): offset 0 is the input's
//! last partition on or before the output date, `-1` the one before it, `+1` the one after.
//! Near the edges a window is truncated to what exists; the covered set (and so the key)
//! changes when the missing partitions appear.

use crate::calendar::DayCalendar;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of a partition: a date for daily assets, `Whole` for unpartitioned ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PartitionId {
    Whole,
    Day(NaiveDate),
}

impl PartitionId {
    pub fn date(&self) -> Option<NaiveDate> {
        match self {
            PartitionId::Day(d) => Some(*d),
            PartitionId::Whole => None,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "whole" {
            return Ok(PartitionId::Whole);
        }
        // Hand-parsed: this runs once per partition of every table read from the log.
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b.get(r)?.iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
            })
        };
        let parsed = (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
            .then(|| Some((digits(0..4)?, digits(5..7)?, digits(8..10)?)))
            .flatten()
            .and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y as i32, m, d));
        parsed
            .map(PartitionId::Day)
            .ok_or_else(|| format!("'{s}' is not a partition id (expected YYYY-MM-DD or 'whole')"))
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionId::Whole => f.write_str("whole"),
            PartitionId::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl From<PartitionId> for String {
    fn from(p: PartitionId) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for PartitionId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PartitionId::parse(&s)
    }
}

/// How one input is read by each output partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Coverage {
    /// All current partitions of the input (an unpartitioned input, or any input of an
    /// unpartitioned output).
    Whole,
    /// Partitions at offsets `[a, b]` around the output date, counted in input partitions.
    Window(i64, i64),
    /// The partitions of a daily input dated before the start of the period that holds
    /// its latest partition, less the last `lag` of them: an unpartitioned output (a
    /// model) that reads only complete periods, so it is rebuilt when a period rolls over
    /// rather than every day. `lag` keeps out days whose content is still changing (labels
    /// whose future has not arrived).
    Period { every: Period, lag: usize },
}

/// A calendar period of [`Coverage::Period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        Some(match s {
            "weekly" => Period::Weekly,
            "monthly" => Period::Monthly,
            "quarterly" => Period::Quarterly,
            "yearly" => Period::Yearly,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Quarterly => "quarterly",
            Period::Yearly => "yearly",
        }
    }

    /// The first day of the period that holds `d` (weeks start on Monday).
    pub fn start(self, d: NaiveDate) -> NaiveDate {
        use chrono::Datelike;
        let first = |m: u32| NaiveDate::from_ymd_opt(d.year(), m, 1).unwrap_or(d);
        match self {
            Period::Weekly => d - chrono::Duration::days(d.weekday().num_days_from_monday() as i64),
            Period::Monthly => first(d.month()),
            Period::Quarterly => first((d.month() - 1) / 3 * 3 + 1),
            Period::Yearly => first(1),
        }
    }
}

/// The index range `[0, hi)` of `input` (sorted ascending) that [`Coverage::Period`]
/// covers: before the start of the latest partition's period, less `lag` partitions.
pub fn period_range(input: &[PartitionId], every: Period, lag: usize) -> (usize, usize) {
    let Some(last) = input.last().and_then(|p| p.date()) else {
        return (0, 0);
    };
    let start = PartitionId::Day(every.start(last));
    let before = input.partition_point(|p| *p < start);
    (0, before.saturating_sub(lag))
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coverage::Whole => f.write_str("whole"),
            Coverage::Window(a, b) => write!(f, "[{a}, {b}]"),
            Coverage::Period { every, lag: 0 } => write!(f, "complete {} periods", every.name()),
            Coverage::Period { every, lag } => {
                write!(
                    f,
                    "complete {} periods less the last {lag} partitions",
                    every.name()
                )
            }
        }
    }
}

/// The index range `[lo, hi)` of `input` (sorted ascending) covered by `window` for an
/// output at `date`.
pub fn window_range(input: &[PartitionId], date: NaiveDate, a: i64, b: i64) -> (usize, usize) {
    let day = PartitionId::Day(date);
    // Position of the last partition <= date (anchor), as a signed index; -1 if none.
    let anchor = input.partition_point(|p| *p <= day) as i64 - 1;
    let n = input.len() as i64;
    let lo = (anchor + a).clamp(0, n);
    let hi = (anchor + b + 1).clamp(0, n);
    if lo >= hi {
        (lo as usize, lo as usize)
    } else {
        (lo as usize, hi as usize)
    }
}

/// Dates of a generated daily domain.
pub fn date_range(from: NaiveDate, to: NaiveDate, calendar: DayCalendar) -> Vec<PartitionId> {
    calendar
        .days(from, to)
        .into_iter()
        .map(PartitionId::Day)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_coverage_reads_complete_periods_less_the_lag() {
        let ids: Vec<PartitionId> = (0..120)
            .map(|i| {
                PartitionId::Day(
                    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
                        + chrono::Duration::days(i),
                )
            })
            .collect();
        // Latest day 2024-04-29: complete months end with March (index 90 = Mar 31).
        let (lo, hi) = period_range(&ids, Period::Monthly, 0);
        assert_eq!((lo, hi), (0, 91));
        assert_eq!(period_range(&ids, Period::Monthly, 20), (0, 71));
        assert_eq!(period_range(&ids, Period::Monthly, 500), (0, 0));
        // The same range for every day of April: a new April day changes nothing.
        assert_eq!(period_range(&ids[..100], Period::Monthly, 20), (0, 71));
        // The first day of May rolls it over.
        let may: Vec<PartitionId> = ids
            .iter()
            .copied()
            .chain([PartitionId::Day(d2(2024, 5, 1))])
            .collect();
        assert_eq!(period_range(&may, Period::Monthly, 0), (0, 120));
        assert_eq!(Period::Weekly.start(d2(2024, 5, 1)), d2(2024, 4, 29));
        assert_eq!(Period::Quarterly.start(d2(2024, 5, 1)), d2(2024, 4, 1));
        assert_eq!(Period::Yearly.start(d2(2024, 5, 1)), d2(2024, 1, 1));
        assert_eq!(period_range(&[], Period::Monthly, 0), (0, 0));
    }

    fn d2(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn days(n: u32) -> Vec<PartitionId> {
        (1..=n)
            .map(|i| PartitionId::Day(NaiveDate::from_ymd_opt(2024, 1, i).unwrap_or_default()))
            .collect()
    }

    fn d(i: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, i).unwrap_or_default()
    }

    #[test]
    fn past_window_is_truncated_at_start() {
        let input = days(10);
        assert_eq!(window_range(&input, d(1), -3, 0), (0, 1));
        assert_eq!(window_range(&input, d(5), -3, 0), (1, 5));
    }

    #[test]
    fn future_window_grows_as_days_arrive() {
        let input = days(10);
        assert_eq!(window_range(&input, d(8), 0, 5), (7, 10));
        assert_eq!(window_range(&days(12), d(8), 0, 5), (7, 12));
    }

    #[test]
    fn anchor_is_last_partition_on_or_before_date() {
        // Input lacks Jan 5: offset 0 for Jan 5 is Jan 4.
        let input: Vec<_> = days(10)
            .into_iter()
            .filter(|p| p.date() != Some(d(5)))
            .collect();
        let (lo, hi) = window_range(&input, d(5), 0, 0);
        assert_eq!(&input[lo..hi], &[PartitionId::Day(d(4))]);
    }

    #[test]
    fn nothing_before_first_input_day() {
        let input = days(10)[5..].to_vec();
        assert_eq!(window_range(&input, d(2), -3, 0), (0, 0));
        // A future window from before the start reaches the first days.
        let (lo, hi) = window_range(&input, d(2), 0, 1);
        assert_eq!((lo, hi), (0, 1));
    }

    #[test]
    fn weekday_range_skips_weekends() {
        let r = date_range(d(1), d(7), DayCalendar::WEEKDAYS);
        assert_eq!(r.len(), 5); // 2024-01-01 is a Monday
    }

    #[test]
    fn partition_id_round_trips() {
        for s in ["whole", "2024-02-29"] {
            assert_eq!(
                PartitionId::parse(s).map(|p| p.to_string()),
                Ok(s.to_string())
            );
        }
        assert!(PartitionId::parse("2024-13-01").is_err());
    }
}
