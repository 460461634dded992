//! The generic ops, which know nothing of any pipeline: `files` (import CSV or parquet),
//! `sql` (a polars SQL query over the inputs) and `command` (an external program).

pub mod command;
pub mod command_tracking;
pub mod files;
pub mod sql;

use crate::op::Registry;

pub fn register(registry: &mut Registry) {
    registry
        .add_op(&files::FilesOp)
        .add_op(&sql::SqlOp)
        .add_op(&command::CommandOp);
}
