//! ATFT-GAT-FAN, the CPU reference (MODEL.md): every block's forward and backward pass
//! written by hand, generic over [`real::Real`] so the same code trains in `f32` and is
//! gradient-checked in `f64`. The CUDA kernels are checked against these functions.
//!
//! # Layout (the one place it is written down)
//!
//! - **Tensors** are flat `Vec<T>` / `&[T]`, row-major, with their shape passed as plain
//!   dimensions. A day's batch is `n` stocks; per-stock sequences are `[n × t × c]`
//!   (stock-major, then time, then channel).
//! - **Weights** are input-major: a dense layer is `y = x·W + b` with `W` of `in × out`.
//! - **Parameters** of the whole model are one flat buffer; each block owns a contiguous
//!   range whose pieces are taken in a fixed order by [`params::Carve`]. The order is
//!   listed on each block's shape type (`n_params` gives the range's length), and the
//!   gradient buffer has the same layout. The whole model's block order is on
//!   [`network::Network`]; its last two ranges are the linear paths (`skip`
//!   `[horizons × (features + masks)]`, `graph_skip` `[horizons × edge_dim × (features +
//!   masks)]`), empty in models stored before them.
//! - **Graph**: CSR by destination with `edge_dim` features per edge (`[ρ, same_sector]`,
//!   plus `[λ, partner]` with lead-lag partners): see [`graph`] for the exact definition.
//! - **Block API**: `<block>_forward(shape, params, inputs…) -> (output, cache)` and
//!   `<block>_backward(shape, params, &cache, d_output, grads) -> d_input`, where the
//!   backward pass *adds* into `grads` (so a parameter used in several places, or over
//!   several days, accumulates) and returns the input's gradient as a new buffer.
//! - **Determinism**: reductions over rows go through [`linalg`] in fixed chunks and a
//!   fixed order, never through the thread count.

pub mod attention;
pub mod dataset;
pub mod fan;
pub mod gat;
pub mod gpu;
pub mod graph;
pub mod grn;
pub mod heads;
pub mod layers;
pub mod linalg;
pub mod loss;
pub mod lstm;
pub mod metrics;
pub mod network;
pub mod optim;
pub mod params;
pub mod real;
pub mod ridge;
pub mod store;
pub mod train;
pub mod walk_forward;

#[cfg(test)]
pub mod gradcheck;
