//! A top-down start for Neural NMF (`partlearn fit neural-nmf --init top-down`): starting layers
//! fitted to NMFs of `X` itself at every rank `k_i`, deepest layer last.
//!
//! METHODS.md §4.3 starts the layers at random (`U[0,1)`, the reference) and leaves other starts
//! open; [`hnmf_start`](super::hnmf_start) starts from the hierarchy of §4.1, where each layer
//! factors the previous layer's codes. This start is partlearn's choice, not the reference's.
//! A layer of the hierarchy groups the previous codes by their size, not by what they
//! reconstruct: on toy-hierarchy (§5.1) Neural NMF from the hierarchy stays at a relative error
//! of 0.354 with two layers, from random starts two in three stall at 0.325, while an NMF of `X`
//! at rank 4 reaches the truncated-SVD bound 0.2813. So every layer is fitted to the NMF of `X`
//! at its rank:
//!
//! - `A⁽⁰⁾ = W₀`, the atoms (`m × k₀`) of an NMF `X ≈ W₀H₀` at rank `k₀`;
//! - for `i ≥ 1`, with `S⁽ⁱ⁻¹⁾` the codes the forward pass computes through the layers so far
//!   and `H_i` (`k_i × n`) the codes of an NMF of `X` at rank `k_i`,
//!   `A⁽ⁱ⁾ = argmin_{A ≥ 0} ‖S⁽ⁱ⁻¹⁾ − A H_i‖_F` (NNLS, row by row), so that the layer's codes
//!   `q(S⁽ⁱ⁻¹⁾, A⁽ⁱ⁾)` start near `H_i`;
//! - every column of every layer is scaled to the mean entry ½ of the reference's `U[0,1)` start
//!   (the network computes the same function) so that the reference's learning rates carry over.
//!
//! Every NMF is HALS from NNDSVDa (deterministic: restarts from this start differ only in the
//! classifier), [`TOP_DOWN_START_ITERATIONS`] iterations.

use faer::{Mat, MatRef};

use super::ValidNeuralParams;
use crate::engine::Observer;
use crate::error::Result;
use crate::linalg::nnls::{nnls, NnlsOptions};
use crate::nmf::{self, InitMethod, NmfParams, Solver};
use crate::real::Real;

/// Iterations of each NMF of [`top_down_start`].
pub const TOP_DOWN_START_ITERATIONS: usize = 200;

/// Starting layers (`A⁽ⁱ⁾`, `k_{i−1} × k_i`, `A⁽⁰⁾` is `m × k₀`) for
/// [`train_from`](super::train_from), fitted to NMFs of `x` (`n × m`, samples as rows) at every
/// rank of `params` (see the module documentation); the threads of `params`. Reports the
/// iterations of every NMF to `observer` (the count restarts at 0 with each rank).
///
/// ```
/// use partlearn::deep::neural::{top_down_start, train_from, NeuralParams};
/// use partlearn::engine::Silent;
/// use partlearn::faer::Mat;
///
/// let x = Mat::<f64>::from_fn(20, 8, |j, i| ((i + 3 * j) % 5) as f64 + 0.5);
/// let params = NeuralParams::new(vec![4, 2]).epochs(20).lr(0.1).check()?;
/// let start = top_down_start(x.as_ref(), &params, &mut Silent)?;
/// assert_eq!(start.iter().map(|a| a.shape()).collect::<Vec<_>>(), [(8, 4), (4, 2)]);
/// let fit = train_from(x.as_ref(), Some(&start), &params, None, &mut Silent)?;
/// assert!(fit.history[20].objective <= fit.history[0].objective);
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn top_down_start<T: Real>(
    x: MatRef<'_, T>,
    params: &ValidNeuralParams,
    observer: &mut (dyn Observer + Send),
) -> Result<Vec<Mat<T>>> {
    let o = params.params();
    params.check_shape(x.nrows(), x.ncols())?;
    let mut layers: Vec<Mat<T>> = Vec::with_capacity(o.ranks.len());
    let opts = NnlsOptions::default();
    // The codes of the layers so far, `S⁽ⁱ⁻¹⁾` (`k_{i−1} × n`), as the forward pass computes them.
    let mut codes: Option<Mat<T>> = None;
    for &k in &o.ranks {
        let nmf_params = NmfParams::new(k)
            .solver(Solver::Hals)
            .init(InitMethod::Nndsvda)
            .max_iter(TOP_DOWN_START_ITERATIONS)
            .seed(o.seed)
            .threads(o.threads)
            .check()?;
        let fit = nmf::factorize_with(x, &nmf_params, None, observer)?;
        let (layer, input) = match &codes {
            // The atoms as columns, `m × k`; the layer's input is `X` (`m × n`).
            None => (fit.model.components().transpose().to_owned(), x.transpose()),
            // `S⁽ⁱ⁻¹⁾ ≈ A H_i`, `H_i` the NMF's codes (`n × k` as rows): `A` by NNLS on the rows.
            Some(s) => {
                let (at, _) = nnls(fit.codes(), s.transpose(), &opts, o.threads)?;
                (at.transpose().to_owned(), s.as_ref())
            }
        };
        let layer = reference_scale(layer);
        let (next, _) = nnls(layer.as_ref(), input, &opts, o.threads)?;
        layers.push(layer);
        codes = Some(next);
    }
    Ok(layers)
}

/// `a` with every non-zero column scaled to the mean entry ½ of the reference's `U[0,1)` start,
/// so that its learning rates carry over (the network computes the same function: the layer's
/// codes and the next layer, fitted to them, take the inverse scale).
fn reference_scale<T: Real>(mut a: Mat<T>) -> Mat<T> {
    let rows = a.nrows().max(1) as f64;
    for j in 0..a.ncols() {
        let mean = (0..a.nrows()).map(|i| Real::to_f64(a[(i, j)])).sum::<f64>() / rows;
        if mean > 0.0 {
            let f = T::from_f64(0.5 / mean);
            for i in 0..a.nrows() {
                a[(i, j)] *= f;
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deep::neural::{train_from, NeuralParams};
    use crate::engine::Silent;

    /// On toy-hierarchy, two layers from this start approach the rank-4 SVD bound (0.2813)
    /// within 500 epochs, where the hierarchical start is far from it (it stalls at 0.354).
    #[test]
    fn top_down_start_reaches_the_rank_4_bound_on_toy_hierarchy() {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let x = d.x();
        let p = NeuralParams::new(vec![9, 4]).epochs(500).check().unwrap();
        let start = top_down_start(x, &p, &mut Silent).unwrap();
        assert_eq!(start[0].shape(), (87, 9));
        assert_eq!(start[1].shape(), (9, 4));
        assert!(start
            .iter()
            .all(|a| a.col_iter().all(|c| c.iter().all(|v| *v >= 0.0))));
        let fit = train_from(x, Some(&start), &p, None, &mut Silent).unwrap();
        let hier = crate::deep::neural::hnmf_start(x, &p, &mut Silent).unwrap();
        let h = train_from(x, Some(&hier), &p, None, &mut Silent).unwrap();
        // At the start 0.322 against 0.496; after 500 epochs 0.2828 against 0.390.
        let (td, hn) = (fit.history[0].rel_error, h.history[0].rel_error);
        assert!(td < 0.33 && hn > 0.45, "{td} {hn}");
        let (td, hn) = (fit.history[500].rel_error, h.history[500].rel_error);
        assert!(td < 0.2835 && hn > 0.35, "{td} {hn}");
    }
}
