//! The evaluation protocol (METHODS.md §7), the same for every model of the
//! [`PartModel`](crate::protocol::PartModel) protocol.
//!
//! [`evaluate()`] (re-exported here with its options and results) encodes a data set with a
//! model and computes every metric: [`metrics`] (reconstruction MSE and relative error, §7.1),
//! Hoyer sparsity of the codes ([`crate::sparseness`], §7.2), the linear-SVM protocol on the
//! codes ([`svm`], §7.3) and the max-approximation error to dilation ([`morphology`],
//! §7.4–7.5); [`evaluate::figures`] draws the panels of the report from the same matrices.
//! [`masked`] evaluates NMF models on data with missing entries (errors over the observed
//! entries). [`distributed`] evaluates data spread over processes, [`sparse`] sparse data (streamed by
//! blocks of rows for NMF models). [`posthoc`] scores codes by the post-hoc least-squares classifier of §5.1 (the layer models'
//! accuracies).

pub mod distributed;
pub mod evaluate;
pub mod masked;
pub mod metrics;
pub mod morphology;
pub mod posthoc;
pub mod sparse;
pub mod svm;

pub use evaluate::{
    evaluate, evaluate_codes, max_approx_errors, EvalOptions, Evaluation, MaxApproxErrors, Metrics,
};
pub use svm::SvmProtocolOptions;
