//! The JPX trading calendar: weekdays minus Japanese public holidays (with substitute
//! and citizens' holidays, and the 2019–2021 special dates) and the exchange's year-end
//! closure (Dec 31 – Jan 3).

use crate::core::calendar::{DayCalendar, Days, days_between};
use chrono::{Datelike, NaiveDate, Weekday};

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The n-th Monday of a month.
fn nth_monday(y: i32, m: u32, n: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(y, m, Weekday::Mon, n as u8)
}

/// Vernal and autumnal equinox days (valid 1980–2099).
fn equinoxes(y: i32) -> (u32, u32) {
    let f = (y - 1980) as f64;
    let leap = ((y - 1980) / 4) as f64;
    let spring = (20.8431 + 0.242194 * f - leap).floor() as u32;
    let autumn = (23.2488 + 0.242194 * f - leap).floor() as u32;
    (spring, autumn)
}

/// National holidays of year `y` by statute, before substitute and citizens' holidays.
fn statutory(y: i32) -> Vec<NaiveDate> {
    let (spring, autumn) = equinoxes(y);
    let mut v: Vec<Option<NaiveDate>> = vec![
        ymd(y, 1, 1),
        nth_monday(y, 1, 2),
        ymd(y, 2, 11),
        ymd(y, 3, spring),
        ymd(y, 4, 29),
        ymd(y, 5, 3),
        ymd(y, 5, 4),
        ymd(y, 5, 5),
        ymd(y, 9, autumn),
        ymd(y, 11, 3),
        ymd(y, 11, 23),
        nth_monday(y, 9, 3),
    ];
    if y >= 2020 {
        v.push(ymd(y, 2, 23)); // Emperor's Birthday (Reiwa)
    } else if y <= 2018 {
        v.push(ymd(y, 12, 23)); // Emperor's Birthday (Heisei)
    }
    if y >= 2016 {
        v.push(match y {
            2020 => ymd(2020, 8, 10),
            2021 => ymd(2021, 8, 8),
            _ => ymd(y, 8, 11), // Mountain Day
        });
    }
    v.push(match y {
        2020 => ymd(2020, 7, 23),
        2021 => ymd(2021, 7, 22),
        _ => nth_monday(y, 7, 3), // Marine Day
    });
    v.push(match y {
        2020 => ymd(2020, 7, 24),
        2021 => ymd(2021, 7, 23),
        _ => nth_monday(y, 10, 2), // Sports Day
    });
    if y == 2019 {
        v.extend([
            ymd(2019, 4, 30),
            ymd(2019, 5, 1),
            ymd(2019, 5, 2),
            ymd(2019, 10, 22),
        ]);
    }
    let mut out: Vec<NaiveDate> = v.into_iter().flatten().collect();
    out.sort();
    out.dedup();
    out
}

/// All public holidays of year `y`, with substitute holidays (a holiday on Sunday moves
/// to the next non-holiday) and citizens' holidays (a day between two holidays).
pub fn holidays(y: i32) -> Vec<NaiveDate> {
    let base = statutory(y);
    let mut all = base.clone();
    for d in &base {
        if d.weekday() == Weekday::Sun {
            let mut s = d.succ_opt();
            while let Some(x) = s {
                if !all.contains(&x) {
                    all.push(x);
                    break;
                }
                s = x.succ_opt();
            }
        }
    }
    for d in &base {
        if let (Some(next), Some(after)) = (d.succ_opt(), d.succ_opt().and_then(|x| x.succ_opt()))
            && base.contains(&after)
            && !all.contains(&next)
            && next.weekday() != Weekday::Sun
        {
            all.push(next);
        }
    }
    all.sort();
    all.dedup();
    all
}

/// The JPX calendar as rules name it (`calendar = "jpx"`), registered by the pipeline.
pub const JPX: DayCalendar = DayCalendar(&Jpx);

struct Jpx;

impl Days for Jpx {
    fn name(&self) -> &'static str {
        "jpx"
    }
    fn contains(&self, d: NaiveDate) -> bool {
        is_trading_day(d)
    }
    fn days(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        trading_days(from, to)
    }
}

/// Whether the Tokyo Stock Exchange trades on `d`.
pub fn is_trading_day(d: NaiveDate) -> bool {
    !trading_days(d, d).is_empty()
}

/// Trading days in `[from, to]`.
pub fn trading_days(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut year = None;
    let mut hol: Vec<NaiveDate> = Vec::new();
    days_between(from, to)
        .filter(|d| {
            if year != Some(d.year()) {
                year = Some(d.year());
                hol = holidays(d.year());
            }
            let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
            let year_end = (d.month() == 12 && d.day() == 31) || (d.month() == 1 && d.day() <= 3);
            !weekend && !year_end && !hol.contains(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn known_holidays() {
        // 2024: Coming of Age Jan 8, Feb 12 substitute (Feb 11 Sunday), equinoxes Mar 20 / Sep 22,
        // Sep 23 substitute, Golden Week May 3-6.
        let h = holidays(2024);
        for x in [
            d(2024, 1, 8),
            d(2024, 2, 12),
            d(2024, 3, 20),
            d(2024, 5, 6),
            d(2024, 9, 23),
            d(2024, 9, 16),
        ] {
            assert!(h.contains(&x), "{x} missing from {h:?}");
        }
        assert!(
            holidays(2026).contains(&d(2026, 9, 22)),
            "citizens' holiday 2026-09-22"
        );
        assert!(
            holidays(2019).contains(&d(2019, 5, 1)),
            "2019 accession day"
        );
        assert!(
            holidays(2020).contains(&d(2020, 7, 24)),
            "2020 Sports Day (Olympics)"
        );
    }

    #[test]
    fn exchange_closures() {
        assert!(!is_trading_day(d(2024, 1, 3)));
        assert!(is_trading_day(d(2024, 1, 4)));
        assert!(!is_trading_day(d(2023, 12, 31)));
        assert!(!is_trading_day(d(2024, 2, 23)));
        // 2024 had 245 trading days on the TSE.
        assert_eq!(trading_days(d(2024, 1, 1), d(2024, 12, 31)).len(), 245);
    }
}
