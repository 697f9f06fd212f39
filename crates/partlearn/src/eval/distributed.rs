//! The evaluation protocol (METHODS.md §7) on data spread over processes by rows
//! ([`crate::dist`]): each process encodes and measures its own rows with [`evaluate_codes`];
//! the sums behind every averaged metric are added over processes (one sum of 13 numbers), and
//! the SVM protocol runs on process 0 on the gathered codes (`n × k`, the only `O(n)` message).
//! The result is the one-process evaluation of the whole data up to rounding (the codes, being
//! per sample, are the same bits, so the SVM's accuracies are identical).

use std::time::Instant;

use super::evaluate::{evaluate_codes, EvalOptions, MaxApproxErrors, Metrics};
use super::metrics::ReconstructionError;
use super::svm::{svm_protocol, SvmProtocolOptions};
use crate::data::Dataset;
use crate::dist::Part;
use crate::error::{Error, Result};
use crate::protocol::PartModel;
use crate::real::Real;
use crate::sparseness::HoyerSummary;

/// Evaluates `model` on the whole data, of which this process holds the rows `data` (the rows
/// `part.offset..` of `part.n_total`); every process calls it with the same arguments but
/// `labels`, which process 0 needs (the whole data's, `n_total` of them) for the SVM protocol
/// of `opts.svm` and the others may leave out. Returns the metrics of the whole data on every
/// process (the SVM result on process 0 only); figures are not drawn.
pub fn evaluate_part<T: Real>(
    model: &dyn PartModel<T>,
    data: &Dataset<T>,
    labels: Option<&[usize]>,
    image_shape: Option<(usize, usize)>,
    opts: &EvalOptions,
    part: Part<'_>,
) -> Result<Metrics> {
    let start = Instant::now();
    let local_opts = EvalOptions {
        svm: None,
        ..opts.clone()
    };
    let local = evaluate_codes(model, data, image_shape, &local_opts, None);
    let ev = crate::dist::agree_ok(part.comm, local)?;
    let m = ev.metrics;
    let (n, w) = (m.n_samples as f64, (m.n_samples * m.n_features) as f64);
    let x = data.x();
    let x_sq: f64 = (0..x.ncols())
        .map(|j| x.col(j).iter().map(|&v| Real::to_f64(v).powi(2)).sum::<f64>())
        .sum();
    let h = &m.hoyer;
    let count = (m.n_samples - h.zero_codes) as f64;
    let ma = m.max_approx.as_ref();
    let ma_sum = |f: fn(&MaxApproxErrors) -> f64| ma.map_or(0.0, |e| f(e) * n);
    // Σ over rows of what each average divides: squared errors (plain, clipped), ‖X‖², the
    // Hoyer sums over non-zero codes, the zero codes, the reference sum, the four
    // max-approximation sums (per image), and the rows.
    let mut sums = [
        m.reconstruction.mse * w,
        m.reconstruction.mse_clipped * w,
        x_sq,
        h.mean * count,
        (h.std * h.std + h.mean * h.mean) * count,
        count,
        h.zero_codes as f64,
        h.mean_reference * n,
        ma_sum(|e| e.vs_dilated_originals),
        ma_sum(|e| e.vs_dilated_originals_clipped),
        ma_sum(|e| e.vs_dilated_reconstructions),
        ma_sum(|e| e.vs_dilated_reconstructions_clipped),
        n,
    ];
    part.sum_all(&mut sums);
    let total = sums[12];
    let cells = total * m.n_features as f64;
    let per = |s: f64, by: f64| if by > 0.0 { s / by } else { 0.0 };
    let mean = per(sums[3], sums[5]);
    let reconstruction = ReconstructionError {
        mse: per(sums[0], cells),
        mse_clipped: per(sums[1], cells),
        rel_error: if sums[2] > 0.0_f64 {
            (sums[0] / sums[2]).sqrt()
        } else {
            0.0
        },
    };
    let hoyer = HoyerSummary {
        mean,
        std: (per(sums[4], sums[5]) - mean * mean).max(0.0).sqrt(),
        zero_codes: sums[6] as usize,
        mean_reference: per(sums[7], total),
    };
    let max_approx = ma.map(|e| MaxApproxErrors {
        structuring_element: e.structuring_element.clone(),
        vs_dilated_originals: per(sums[8], total),
        vs_dilated_originals_clipped: per(sums[9], total),
        vs_dilated_reconstructions: per(sums[10], total),
        vs_dilated_reconstructions_clipped: per(sums[11], total),
    });
    let clock = Instant::now();
    let svm = match &opts.svm {
        Some(o) => svm_on_rank_0(ev.codes.as_ref(), labels, o, opts.threads, part)?,
        None => None,
    };
    let mut seconds = m.seconds;
    seconds.svm = clock.elapsed().as_secs_f64();
    seconds.total = start.elapsed().as_secs_f64();
    Ok(Metrics {
        n_samples: total as usize,
        reconstruction,
        hoyer,
        max_approx,
        svm,
        seconds,
        ..m
    })
}

/// The SVM protocol on process 0 over every process's codes (gathered in rank order, i.e. in
/// the samples' order); `None` on the others, and on every process when process 0 has no
/// labels. Errors of process 0 are agreed.
fn svm_on_rank_0<T: Real>(
    codes: faer::MatRef<'_, T>,
    labels: Option<&[usize]>,
    o: &SvmProtocolOptions,
    threads: usize,
    part: Part<'_>,
) -> Result<Option<super::svm::SvmProtocolResult>> {
    let root = part.comm.rank() == 0;
    // Whether process 0 has labels: the others follow (no gather without an SVM).
    let has = part.sum1_all(f64::from(u8::from(root && labels.is_some())));
    if has == 0.0 {
        return Ok(None);
    }
    let k = codes.ncols();
    let local: Vec<f64> = (0..codes.nrows())
        .flat_map(|i| (0..k).map(move |j| codes[(i, j)].to_f64()))
        .collect();
    let all = part.comm.gather(&local);
    let result = match (root, labels) {
        (true, Some(y)) => {
            let n = all.len() / k.max(1);
            if y.len() != n {
                Err(Error::ShapeMismatch {
                    what: "labels".into(),
                    expected: format!("{n} (one per sample of the whole data)"),
                    found: y.len().to_string(),
                    hint: "give the labels of every sample, in the data's order".into(),
                })
            } else {
                let all = faer::Mat::<T>::from_fn(n, k, |i, j| T::from_f64(all[i * k + j]));
                let o = SvmProtocolOptions { threads, ..o.clone() };
                svm_protocol(all.as_ref(), y, &o).map(Some)
            }
        }
        _ => Ok(None),
    };
    crate::dist::agree_ok(part.comm, result)
}

#[cfg(test)]
mod tests {
    use faer::Mat;

    use super::*;
    use crate::dist::{threads, Part};
    use crate::nmf::{self, NmfParams};
    use crate::rng::Rng;

    #[test]
    fn two_and_three_ranks_give_the_one_process_metrics() {
        // 4 × 4 images with a planted part each, labels from the part.
        let (n, side) = (120, 4);
        let mut r = Rng::new(3);
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Mat::<f64>::from_fn(n, side * side, |i, j| {
            let on = (j / side) % 3 == y[i] || j % side == y[i];
            (if on { 0.8 } else { 0.0 }) + 0.2 * r.uniform()
        });
        let fit = nmf::factorize(x.as_ref(), &NmfParams::new(4).max_iter(60).check().unwrap()).unwrap();
        let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
        let whole = Dataset::from_rows(x.as_ref(), "x").with_labels(labels).unwrap();
        let opts = EvalOptions {
            svm: Some(SvmProtocolOptions {
                c_grid: 3,
                select_splits: 1,
                eval_splits: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let one = crate::eval::evaluate(&fit.model, &whole, Some((side, side)), &opts)
            .unwrap()
            .metrics;
        assert!(one.svm.is_some() && one.max_approx.is_some());
        for p in [1, 2, 3] {
            let ms = threads::run(n, p, |part: Part<'_>, rows| {
                let block = Dataset::from_rows(x.as_ref().subrows(rows.start, rows.len()), "x");
                let labels = (part.comm.rank() == 0).then_some(y.as_slice());
                evaluate_part(&fit.model, &block, labels, Some((side, side)), &opts, part).unwrap()
            });
            let m = &ms[0];
            let close = |a: f64, b: f64, what: &str| {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1e-300),
                    "P={p} {what}: {a} vs {b}"
                )
            };
            assert_eq!(m.n_samples, n);
            close(m.reconstruction.mse, one.reconstruction.mse, "mse");
            close(
                m.reconstruction.mse_clipped,
                one.reconstruction.mse_clipped,
                "mse clipped",
            );
            close(
                m.reconstruction.rel_error,
                one.reconstruction.rel_error,
                "rel error",
            );
            close(m.hoyer.mean, one.hoyer.mean, "hoyer mean");
            assert!((m.hoyer.std - one.hoyer.std).abs() < 1e-9, "P={p} hoyer std");
            close(
                m.hoyer.mean_reference,
                one.hoyer.mean_reference,
                "hoyer reference",
            );
            assert_eq!(m.hoyer.zero_codes, one.hoyer.zero_codes);
            let (a, b) = (m.max_approx.as_ref().unwrap(), one.max_approx.as_ref().unwrap());
            close(a.vs_dilated_originals, b.vs_dilated_originals, "max-approx");
            close(
                a.vs_dilated_reconstructions_clipped,
                b.vs_dilated_reconstructions_clipped,
                "max-approx rec clip",
            );
            assert_eq!(m.svm, one.svm, "P={p}: the same codes, the same SVM");
            assert!(ms[1..]
                .iter()
                .all(|o| o.svm.is_none() && o.reconstruction == m.reconstruction));
        }
    }

    #[test]
    fn labels_of_another_length_are_an_error_on_every_rank() {
        let x = Mat::<f64>::from_fn(40, 6, |i, j| ((i + j) % 4) as f64);
        let fit = nmf::factorize(x.as_ref(), &NmfParams::new(2).max_iter(10).check().unwrap()).unwrap();
        let y = vec![0usize; 39];
        let errs = threads::run(40, 2, |part: Part<'_>, rows| {
            let block = Dataset::from_rows(x.as_ref().subrows(rows.start, rows.len()), "x");
            let labels = (part.comm.rank() == 0).then_some(y.as_slice());
            evaluate_part(&fit.model, &block, labels, None, &EvalOptions::default(), part).unwrap_err()
        });
        assert!(errs[0].to_string().contains("labels"), "{}", errs[0]);
        assert!(errs[1].to_string().contains("other process"), "{}", errs[1]);
    }
}
