//! Market data: the JPX trading calendar ([`calendar`]), the TSE sector scheme and market
//! segments ([`sectors`]), the embedded synthetic market ([`synthetic`], the default
//! source when no J-Quants key is set), the J-Quants API v2 client ([`jquants`]), daily
//! bars in the `raw_stock_data` schema ([`bars`]), and the J-Quants source's restatements
//! after splits and revisions ([`splits`]).

pub mod bars;
pub mod calendar;
pub mod checkpoints;
pub mod jquants;
pub mod sectors;
pub mod splits;
pub mod synthetic;
