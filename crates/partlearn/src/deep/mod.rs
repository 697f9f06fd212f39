//! Deep NMF-type models (METHODS.md §4): hierarchical NMF and the layer stack ([`hnmf`]), Deep
//! NMF fine-tuning ([`deep_nmf`]), the two as one pipeline with their supervision
//! ([`pipeline`]), Neural NMF (NNLS layers with an exact backward pass, [`neural`]), and
//! [`DeepModel`], the layer stack as a model of the protocol; [`table`] reproduces the Neural NMF
//! table.

pub mod deep_nmf;
pub mod hnmf;
pub mod model;
pub mod neural;
pub mod pipeline;
pub mod table;

pub use model::DeepModel;
