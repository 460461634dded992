//! Day calendars: which days of a generated daily range are partitions, and which dates
//! an `on_calendar` check accepts. The core knows only `all` and `weekdays`; a pipeline
//! registers its own (the JPX trading calendar) in the op registry, and rules name it.

use chrono::{Datelike, NaiveDate, Weekday};
use std::fmt;

/// What a calendar is: a named set of days.
pub trait Days: Send + Sync {
    /// The name rules use (`calendar = "jpx"`).
    fn name(&self) -> &'static str;
    fn contains(&self, d: NaiveDate) -> bool;
    /// Every day of the calendar in `[from, to]`, ascending. Override when the set has a
    /// faster enumeration than a filter over every calendar day.
    fn days(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        days_between(from, to)
            .filter(|d| self.contains(*d))
            .collect()
    }
}

/// A calendar as rules hold it: a cheap, comparable handle (by name).
#[derive(Clone, Copy)]
pub struct DayCalendar(pub &'static dyn Days);

impl DayCalendar {
    /// Every calendar day.
    pub const ALL: DayCalendar = DayCalendar(&AllDays);
    /// Monday to Friday.
    pub const WEEKDAYS: DayCalendar = DayCalendar(&Weekdays);

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn contains(self, d: NaiveDate) -> bool {
        self.0.contains(d)
    }

    pub fn days(self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        self.0.days(from, to)
    }
}

impl PartialEq for DayCalendar {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for DayCalendar {}

impl fmt::Debug for DayCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DayCalendar({})", self.name())
    }
}

struct AllDays;

impl Days for AllDays {
    fn name(&self) -> &'static str {
        "all"
    }
    fn contains(&self, _d: NaiveDate) -> bool {
        true
    }
}

struct Weekdays;

impl Days for Weekdays {
    fn name(&self) -> &'static str {
        "weekdays"
    }
    fn contains(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }
}

/// Every calendar day in `[from, to]`.
pub fn days_between(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, i).unwrap_or_default()
    }

    #[test]
    fn weekdays_skip_weekends_and_all_keeps_every_day() {
        // 2024-01-01 is a Monday.
        assert_eq!(DayCalendar::WEEKDAYS.days(d(1), d(7)).len(), 5);
        assert_eq!(DayCalendar::ALL.days(d(1), d(7)).len(), 7);
        assert!(!DayCalendar::WEEKDAYS.contains(d(6)));
        assert_eq!(DayCalendar::ALL.days(d(7), d(1)), Vec::<NaiveDate>::new());
    }

    #[test]
    fn calendars_compare_by_name() {
        assert_eq!(DayCalendar::WEEKDAYS, DayCalendar(&Weekdays));
        assert_ne!(DayCalendar::WEEKDAYS, DayCalendar::ALL);
        assert_eq!(format!("{:?}", DayCalendar::ALL), "DayCalendar(all)");
    }
}
