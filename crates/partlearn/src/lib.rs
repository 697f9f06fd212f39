//! partlearn: part-based representations of non-negative data — the NMF family and sparse
//! non-negative auto-encoders — and one evaluation protocol that measures how part-based they are.
//!
//! Every method is called the same way: parameters are built with a builder and checked
//! (`XParams::new(..).….check()?`, which returns a `ValidXParams` with private fields), then a
//! fit takes a borrowed `n_samples × n_features` matrix (samples as rows, numpy's C order used
//! without a copy) and returns the factors, the history of the objective, typed warnings and
//! why it stopped:
//!
//! ```
//! use partlearn::faer::Mat;
//! use partlearn::nmf::{self, NmfParams, Solver};
//!
//! let x = Mat::<f32>::from_fn(100, 30, |i, j| ((i * 7 + j * 3) % 11) as f32);
//! let fit = nmf::factorize(x.as_ref(), &NmfParams::new(5).solver(Solver::Anls).check()?)?;
//! println!("{} iterations, rel. error {:.4}, {:?}", fit.n_iter, fit.rel_error, fit.stop_reason);
//! # Ok::<(), partlearn::Error>(())
//! ```
//!
//! The modules:
//!
//! - [`engine`]: the one fit loop of every iterative method — history, stopping rules, typed
//!   warnings, the [`engine::Observer`] (progress, early stop) and the process-wide interrupt.
//! - [`nmf`]: NMF by MU (any β), HALS and ANLS ([`nmf::factorize`]), optionally compressed
//!   on a randomized sketch ([`nmf::compress`]), Hoyer's sparse NMF
//!   ([`nmf::sparse::factorize_sparse`]), semi-supervised NMF ([`nmf::ssnmf`]), online
//!   (mini-batch) NMF on rows streamed from files larger than memory ([`nmf::online`],
//!   [`data::rows`]).
//! - [`dist`]: data-parallel NMF over several processes (MPI with the `mpi` feature).
//! - [`deep`]: hierarchical NMF, Deep NMF fine-tuning and Neural NMF.
//! - [`autoencoder`]: sparse non-negative auto-encoders (shallow and asymmetric).
//! - [`protocol`]: what every fitted model offers (atoms, encode = transform, decode);
//!   [`eval`] measures any model through it ([`eval::evaluate()`]).
//! - [`data`]: data sets (Fashion-MNIST, Swimmer, toy-hierarchy, NPY/CSV/IDX files);
//!   [`linalg`]: the one place that calls faer (thread settings and the exact NNLS solver are
//!   public; GEMMs with an explicit thread count are internal);
//!   [`io`], [`figures`], [`report`], [`sweep`]: files, figures, reports.
//!
//! Conventions: samples are rows in every public API (`X` is `n_samples × n_features`, codes
//! `n × k`, atoms `k × n_features`, as scikit-learn's `components_`); METHODS.md writes samples
//! as columns, and the solvers work on that transposed layout internally (through transposed
//! views: no copy). The layer matrices of the deep models (`A⁽ⁱ⁾`, `k_{i−1} × k_i`) and the
//! classifiers (`B`, `n_classes × k`) keep METHODS.md's layout. One seeded
//! [`rng::Rng`] drives every random choice: the same seed gives the same bits with 1 or 2
//! threads. The library never prints.

#![warn(missing_docs)]

pub mod autoencoder;
pub mod bench;
pub mod data;
pub mod deep;
pub mod dist;
pub mod engine;
pub mod error;
pub mod eval;
pub mod figures;
pub mod io;
pub mod linalg;
pub mod nmf;
pub mod npy;
pub mod optim;
pub(crate) mod params;
pub(crate) mod plot;
pub mod protocol;
pub mod real;
pub mod report;
pub mod rng;
pub mod select;
pub mod sparseness;
pub mod study;
pub mod sweep;

pub use error::{Error, Result};
pub use faer;
pub use real::Real;
pub use rng::Rng;
