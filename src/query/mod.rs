//! Read commands over the lake and the rules: `status`, `graph`, `history` / `stats`, SLA
//! evaluation, and lineage (`why`) with its rendering. Nothing here writes.

pub mod explain;
pub mod graph;
pub mod history;
pub mod sla;
pub mod status;
