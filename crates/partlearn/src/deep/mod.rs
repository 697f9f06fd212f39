//! Deep NMF-type models (METHODS.md §4): Neural NMF (NNLS layers with an exact backward pass).

pub mod model;
pub mod neural;

pub use model::DeepModel;
