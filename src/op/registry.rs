//! The registry: the ops, op choices and calendars a program knows, in registration order.
//! It is handed to rule loading (as the core's [`Catalog`]) and to the engine, so nothing
//! below the program's composition root names an op: the generic ops register themselves
//! (`crate::ops::register`), a pipeline registers its own (`crate::jp_equity::register`).

use super::Op;
use crate::core::calendar::DayCalendar;
use crate::core::catalog::{Catalog, OpChoice, OpSpec};

pub struct Registry {
    ops: Vec<&'static dyn Op>,
    choices: Vec<&'static dyn OpChoice>,
    calendars: Vec<DayCalendar>,
    default_calendar: DayCalendar,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// No ops; the core's calendars (`weekdays`, `all`), `weekdays` the default.
    pub fn new() -> Registry {
        Registry {
            ops: Vec::new(),
            choices: Vec::new(),
            calendars: vec![DayCalendar::WEEKDAYS, DayCalendar::ALL],
            default_calendar: DayCalendar::WEEKDAYS,
        }
    }

    /// Adds an op; a second op of the same name replaces the first (so a test or a
    /// pipeline can override one).
    pub fn add_op(&mut self, op: &'static dyn Op) -> &mut Self {
        self.ops.retain(|o| o.name() != op.name());
        self.ops.push(op);
        self
    }

    pub fn add_choice(&mut self, choice: &'static dyn OpChoice) -> &mut Self {
        self.choices.retain(|c| c.name() != choice.name());
        self.choices.push(choice);
        self
    }

    /// Adds a calendar rules can name; `default` makes it the calendar of `on_calendar`
    /// checks that name none.
    pub fn add_calendar(&mut self, calendar: DayCalendar, default: bool) -> &mut Self {
        self.calendars.retain(|c| *c != calendar);
        self.calendars.push(calendar);
        if default {
            self.default_calendar = calendar;
        }
        self
    }

    /// Every registered op.
    pub fn ops(&self) -> impl Iterator<Item = &'static dyn Op> + '_ {
        self.ops.iter().copied()
    }

    /// The op to run a rule of `op = name`.
    pub fn find(&self, name: &str) -> Option<&'static dyn Op> {
        self.ops.iter().copied().find(|o| o.name() == name)
    }
}

impl Catalog for Registry {
    fn op(&self, name: &str) -> Option<&dyn OpSpec> {
        self.find(name).map(|o| o as &dyn OpSpec)
    }

    fn op_names(&self) -> Vec<&'static str> {
        self.ops.iter().map(|o| o.name()).collect()
    }

    fn choice(&self, name: &str) -> Option<&dyn OpChoice> {
        self.choices
            .iter()
            .copied()
            .find(|c| c.name() == name)
            .map(|c| c as &dyn OpChoice)
    }

    fn choices(&self) -> Vec<&dyn OpChoice> {
        self.choices.iter().map(|c| *c as &dyn OpChoice).collect()
    }

    fn calendar(&self, name: &str) -> Option<DayCalendar> {
        self.calendars.iter().copied().find(|c| c.name() == name)
    }

    fn calendar_names(&self) -> Vec<&'static str> {
        self.calendars.iter().map(|c| c.name()).collect()
    }

    fn default_calendar(&self) -> DayCalendar {
        self.default_calendar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_registers_every_built_in_op_the_market_choice_and_jpx() {
        let r = crate::registry();
        for name in [
            "files",
            "sql",
            "command",
            "synthetic_market",
            "jquants",
            "jquants_files",
            "features",
            "labels",
            "train",
            "predict",
            "evaluate",
            "performance",
        ] {
            assert!(r.find(name).is_some(), "op {name} is not registered");
        }
        assert_eq!(&r.op_names()[..3], ["files", "sql", "command"]);
        assert!(r.choice("market").is_some());
        assert_eq!(r.calendar_names(), ["weekdays", "all", "jpx"]);
        assert_eq!(r.default_calendar().name(), "jpx");
    }

    #[test]
    fn a_later_registration_replaces_one_of_the_same_name() {
        let mut r = Registry::new();
        assert_eq!(r.default_calendar(), DayCalendar::WEEKDAYS);
        r.add_op(&crate::ops::sql::SqlOp)
            .add_op(&crate::ops::files::FilesOp);
        r.add_op(&crate::ops::sql::SqlOp);
        assert_eq!(r.op_names(), ["files", "sql"]);
        r.add_calendar(DayCalendar::ALL, true);
        assert_eq!(r.calendar_names(), ["weekdays", "all"]);
        assert_eq!(r.default_calendar(), DayCalendar::ALL);
        assert!(r.find("nope").is_none() && r.choice("market").is_none());
    }
}
