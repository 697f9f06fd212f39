//! Deep NMF-type models (METHODS.md §4): hierarchical NMF and Deep NMF fine-tuning ([`hnmf`]),
//! Neural NMF (NNLS layers with an exact backward pass, [`neural`]), and [`DeepModel`], the
//! layer stack as a model of the protocol.

pub mod hnmf;
pub mod model;
pub mod neural;
pub mod table;

pub use model::DeepModel;
