//! The evaluation protocol (METHODS.md §7), the same for every model of the
//! [`PartModel`](crate::protocol::PartModel) protocol.

pub mod metrics;
pub mod morphology;
