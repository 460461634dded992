//! Read commands over the lake and the rules: `status`, `graph`, `history` / `stats` and
//! the run list, SLA evaluation, lineage (`why`) with its rendering, and one asset as a
//! whole (the web UI's asset page). Nothing here writes.

pub mod asset;
pub mod explain;
pub mod graph;
pub mod history;
pub mod sla;
pub mod status;
