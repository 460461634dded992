//! Market data: the JPX calendar, the TSE sector scheme and the embedded synthetic market
//! (the default source when no J-Quants key is set).

pub mod bars;
pub mod calendar;
pub mod jquants;
pub mod sectors;
pub mod splits;
pub mod synthetic;
