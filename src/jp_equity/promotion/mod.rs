//! Champion and challenger: a model asset's promotion policy (`[promotion]`), its
//! sequential test ([`sequential`]) and its decisions ([`policy`]).
pub mod policy;
pub mod sequential;
