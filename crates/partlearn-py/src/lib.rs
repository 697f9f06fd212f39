//! `partlearn._native`: the Rust side of the Python package. Each function takes numpy arrays
//! (float32 or float64, borrowed without a copy), releases the GIL while the library computes,
//! and returns new arrays of the input's dtype in plain dicts. The scikit-learn estimators in
//! `python/partlearn` wrap them; this module holds no method logic of its own.

mod ae;
mod convert;
mod data;
mod deep;
mod metrics;
mod model;
mod nmf;
mod online;
mod run;
mod select;
mod ssnmf;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(nmf::nmf_fit, m)?)?;
    m.add_function(wrap_pyfunction!(nmf::sparse_nmf_fit, m)?)?;
    m.add_function(wrap_pyfunction!(nmf::nmf_transform, m)?)?;
    m.add_function(wrap_pyfunction!(online::minibatch_nmf_fit, m)?)?;
    m.add_function(wrap_pyfunction!(online::minibatch_nmf_partial_fit, m)?)?;
    m.add_function(wrap_pyfunction!(ssnmf::ssnmf_fit, m)?)?;
    m.add_function(wrap_pyfunction!(ssnmf::ssnmf_predict, m)?)?;
    m.add_function(wrap_pyfunction!(ssnmf::ssnmf_classifier, m)?)?;
    m.add_function(wrap_pyfunction!(deep::layers_fit, m)?)?;
    m.add_function(wrap_pyfunction!(deep::neural_fit, m)?)?;
    m.add_function(wrap_pyfunction!(deep::deep_layer_codes, m)?)?;
    m.add_function(wrap_pyfunction!(deep::deep_model_info, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_transform, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_decode, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_info, m)?)?;
    m.add_function(wrap_pyfunction!(ae::ae_params, m)?)?;
    m.add_function(wrap_pyfunction!(ae::ae_fit, m)?)?;
    m.add_function(wrap_pyfunction!(ae::ae_trainer_from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(ae::ae_trainer_from_model, m)?)?;
    m.add_class::<ae::AeTrainer>()?;
    m.add_function(wrap_pyfunction!(data::load_data, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::hoyer_rows, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::morphology, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::max_approximation_error, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::svm_protocol, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(run::nmf_model_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(run::nmf_model_parts, m)?)?;
    m.add_function(wrap_pyfunction!(run::read_run, m)?)?;
    m.add_function(wrap_pyfunction!(run::save_run, m)?)?;
    m.add_function(wrap_pyfunction!(select::select_k, m)?)?;
    Ok(())
}
