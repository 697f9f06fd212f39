//! Hoyer's sparseness measure (METHODS.md §2.1) and the projection onto a sparseness level
//! (§2.2), used by sparse NMF (§2.3) and by the evaluation's sparsity metric (§7.2).
//!
//! `S(x) = (√n − ‖x‖₁/‖x‖₂) / (√n − 1)` is 1 for a vector with one non-zero entry and 0 for a
//! vector whose entries all have the same magnitude. It is undefined for `x = 0` and for `n = 1`;
//! [`hoyer`] returns `None` there and every caller states what it does with such vectors.

use faer::MatRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::real::Real;

/// `S(x)`, or `None` for the zero vector and for `n = 1` (where `√n − 1 = 0`).
pub fn hoyer<T: Real>(x: &[T]) -> Option<f64> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let (l1, l2) = norms(x);
    if l2 == 0.0 {
        return None;
    }
    let rn = (n as f64).sqrt();
    Some(((rn - l1 / l2) / (rn - 1.0)).clamp(0.0, 1.0))
}

/// The reference implementation's variant (METHODS.md §7.2): `‖x‖₂ + 1e-7` in the denominator,
/// so a zero code scores `√n/(√n − 1)` (> 1) instead of being undefined. Only for comparing with
/// published numbers.
pub fn hoyer_reference<T: Real>(x: &[T]) -> f64 {
    let n = x.len() as f64;
    let (l1, l2) = norms(x);
    let rn = n.sqrt();
    (rn - l1 / (l2 + 1e-7)) / (rn - 1.0)
}

/// `(‖x‖₁, ‖x‖₂)` in f64.
fn norms<T: Real>(x: &[T]) -> (f64, f64) {
    let (mut l1, mut l2) = (0.0f64, 0.0f64);
    for v in x {
        let v = Real::to_f64(*v);
        l1 += v.abs();
        l2 += v * v;
    }
    (l1, l2.sqrt())
}

/// Mean Hoyer sparsity of the rows of a matrix (the per-sample code sparsity of §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoyerSummary {
    /// Mean of `S(code)` over the non-zero codes (zero codes have no sparsity; they are counted
    /// in `zero_codes` instead of being given a value).
    pub mean: f64,
    /// Standard deviation over the non-zero codes.
    pub std: f64,
    /// Number of all-zero codes (excluded from `mean`).
    pub zero_codes: usize,
    /// The reference's mean (`‖x‖₂ + 1e-7`, zero codes included with `√k/(√k − 1)`), for
    /// comparison with the published numbers of §6.7.
    pub mean_reference: f64,
}

/// [`HoyerSummary`] of the rows of `codes` (`n × k`, samples as rows). With `k = 1` every code
/// is counted as zero-sparsity-undefined; the means are then NaN-free zeros.
pub fn mean_hoyer_rows<T: Real>(codes: MatRef<'_, T>) -> HoyerSummary {
    let (n, k) = (codes.nrows(), codes.ncols());
    let mut row = vec![T::zero(); k];
    let (mut sum, mut sum_sq, mut count, mut zero, mut reference) = (0.0, 0.0, 0usize, 0usize, 0.0);
    for i in 0..n {
        for (j, r) in row.iter_mut().enumerate() {
            *r = codes[(i, j)];
        }
        match hoyer(&row) {
            Some(s) => {
                sum += s;
                sum_sq += s * s;
                count += 1;
            }
            None => zero += 1,
        }
        if k >= 2 {
            reference += hoyer_reference(&row);
        }
    }
    let mean = if count > 0 { sum / count as f64 } else { 0.0 };
    let var = if count > 0 {
        (sum_sq / count as f64 - mean * mean).max(0.0)
    } else {
        0.0
    };
    HoyerSummary {
        mean,
        std: var.sqrt(),
        zero_codes: zero,
        mean_reference: if n > 0 && k >= 2 {
            reference / n as f64
        } else {
            0.0
        },
    }
}

/// `‖x‖₁` of a vector of length `n` with sparseness `s` and `‖x‖₂ = l2` (§2.1):
/// `l2·(√n − (√n − 1)s)`.
pub fn l1_for(n: usize, s: f64, l2: f64) -> f64 {
    let rn = (n as f64).sqrt();
    l2 * (rn - (rn - 1.0) * s)
}

/// What [`project`] did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionInfo {
    /// Rounds of the zero-set loop (≤ n).
    pub rounds: usize,
    /// The requested `L1` was infeasible for this `L2` and length and was clamped into
    /// `[L2, √n·L2]` (sparseness 1 and 0).
    pub clamped: bool,
    /// The input had all entries equal to the hyperplane's midpoint, so the direction away from
    /// it was undefined; a deterministic perturbation (the first entry) was used.
    pub perturbed: bool,
}

/// The closest `v ≥ 0` to `s` with `‖v‖₁ = l1` and `‖v‖₂ = l2` (Hoyer 2004, METHODS.md §2.2),
/// written to `out`. Computed in f64. `l2 > 0` and finite inputs are required; an infeasible
/// `l1` is clamped (see [`ProjectionInfo::clamped`]).
pub fn project<T: Real>(s: &[T], l1: f64, l2: f64, out: &mut [T]) -> Result<ProjectionInfo> {
    let n = s.len();
    if out.len() != n {
        return Err(Error::ShapeMismatch {
            what: "projection output".into(),
            expected: format!("{n} entries"),
            found: format!("{}", out.len()),
            hint: "give an output as long as the input".into(),
        });
    }
    if n == 0 {
        return Err(Error::invalid("s", "[]", "the vector is empty"));
    }
    if !(l2 > 0.0 && l2.is_finite() && l1.is_finite()) {
        return Err(Error::invalid(
            if l1.is_finite() { "l2" } else { "l1" },
            format!("L1 = {l1}, L2 = {l2}"),
            "need a finite L1 and a finite L2 > 0",
        ));
    }
    if let Some(i) = s.iter().position(|v| !Real::to_f64(*v).is_finite()) {
        return Err(Error::invalid(
            "s",
            format!("entry {i} = {}", s[i]),
            "the vector has a non-finite entry",
        ));
    }
    let nf = n as f64;
    let (lo, hi) = (l2, nf.sqrt() * l2);
    let clamped = !(lo..=hi).contains(&l1);
    let l1 = l1.clamp(lo, hi);
    let mut info = ProjectionInfo {
        rounds: 0,
        clamped,
        perturbed: false,
    };
    if n == 1 {
        out[0] = T::from_f64(l2);
        return Ok(info);
    }
    let x: Vec<f64> = s.iter().map(|v| Real::to_f64(*v)).collect();
    let total: f64 = x.iter().sum();
    // Step 1: onto the hyperplane Σv = L1.
    let mut v: Vec<f64> = x.iter().map(|xi| xi + (l1 - total) / nf).collect();
    let mut zero = vec![false; n];
    loop {
        info.rounds += 1;
        let free = zero.iter().filter(|z| !**z).count() as f64;
        // Step 2: midpoint of the free entries, direction w = v − m.
        let mid = l1 / free;
        let mut w: Vec<f64> = (0..n).map(|i| if zero[i] { 0.0 } else { v[i] - mid }).collect();
        let mut a: f64 = w.iter().map(|wi| wi * wi).sum();
        if a <= 1e-30 * l2 * l2 {
            // v sits at the midpoint: any direction inside the free set works; take the first
            // free coordinate (deterministic).
            let first = (0..n).find(|&i| !zero[i]).unwrap_or(0);
            for (i, wi) in w.iter_mut().enumerate() {
                *wi = if zero[i] {
                    0.0
                } else if i == first {
                    1.0 - 1.0 / free
                } else {
                    -1.0 / free
                };
            }
            a = w.iter().map(|wi| wi * wi).sum();
            info.perturbed = true;
        }
        // Step 3: ‖m + α w‖² = L2², α ≥ 0 (from the midpoint, where the root is well defined).
        let m: Vec<f64> = (0..n).map(|i| if zero[i] { 0.0 } else { mid }).collect();
        let b = 2.0 * (0..n).map(|i| w[i] * m[i]).sum::<f64>();
        let c = m.iter().map(|mi| mi * mi).sum::<f64>() - l2 * l2;
        let disc = (b * b - 4.0 * a * c).max(0.0);
        let alpha = (-b + disc.sqrt()) / (2.0 * a);
        for i in 0..n {
            v[i] = m[i] + alpha * w[i];
        }
        // Step 4: done when non-negative.
        if v.iter().all(|&vi| vi >= 0.0) || info.rounds > n {
            break;
        }
        // Step 5: zero the negative entries and re-project the rest onto Σv = L1.
        for i in 0..n {
            if v[i] < 0.0 {
                zero[i] = true;
            }
        }
        let free = zero.iter().filter(|z| !**z).count() as f64;
        let sum: f64 = (0..n).filter(|&i| !zero[i]).map(|i| v[i]).sum();
        for i in 0..n {
            v[i] = if zero[i] { 0.0 } else { v[i] + (l1 - sum) / free };
        }
    }
    for (o, vi) in out.iter_mut().zip(&v) {
        *o = T::from_f64(vi.max(0.0));
    }
    Ok(info)
}

/// Projects `s` to sparseness `target` with `‖v‖₂ = l2` (§2.1's `L1 = l2(√n − (√n−1)s)`).
/// `target` must be in `[0, 1]`.
pub fn project_to_sparseness<T: Real>(
    s: &[T],
    target: f64,
    l2: f64,
    out: &mut [T],
) -> Result<ProjectionInfo> {
    if !(0.0..=1.0).contains(&target) {
        return Err(Error::invalid(
            "sparseness",
            target,
            "Hoyer sparseness targets lie in [0, 1] (0 = all entries equal, 1 = one non-zero)",
        ));
    }
    project(s, l1_for(s.len(), target, l2), l2, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_values() {
        let mut e1 = vec![0.0f64; 100];
        e1[3] = 2.5;
        assert_eq!(hoyer(&e1), Some(1.0));
        assert!(hoyer(&[1.0f64; 100]).unwrap().abs() < 1e-12);
        assert_eq!(hoyer(&[0.0f64; 5]), None);
        assert_eq!(hoyer(&[3.0f64]), None);
        assert!((l1_for(100, 0.6, 1.0) - 4.6).abs() < 1e-12);
        assert!((l1_for(10_000, 0.6, 1.0) - 40.6).abs() < 1e-9);
        // The reference variant scores a zero code above 1.
        assert!((hoyer_reference(&[0.0f64; 100]) - 10.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn summary_excludes_zero_codes_and_reports_them() {
        let codes = faer::Mat::<f64>::from_fn(3, 4, |i, j| match i {
            0 => [1.0, 0.0, 0.0, 0.0][j],
            1 => 1.0,
            _ => 0.0,
        });
        let s = mean_hoyer_rows(codes.as_ref());
        assert_eq!(s.zero_codes, 1);
        assert!((s.mean - 0.5).abs() < 1e-12);
        assert!((s.std - 0.5).abs() < 1e-12);
        let want_ref = (hoyer_reference(&[1.0, 0.0, 0.0, 0.0]) + hoyer_reference(&[1.0; 4]) + 2.0) / 3.0;
        assert!((s.mean_reference - want_ref).abs() < 1e-9);
    }

    fn check(out: &[f64], l1: f64, l2: f64) {
        assert!(out.iter().all(|v| *v >= 0.0));
        let (a, b) = norms(out);
        assert!((a - l1).abs() <= 1e-9 * l1.max(1.0), "L1 {a} vs {l1}");
        assert!((b - l2).abs() <= 1e-9 * l2.max(1.0), "L2 {b} vs {l2}");
    }

    #[test]
    fn all_equal_and_infeasible_inputs() {
        let s = vec![0.3f64; 10];
        let mut out = vec![0.0; 10];
        let info = project_to_sparseness(&s, 0.7, 1.0, &mut out).unwrap();
        assert!(info.perturbed);
        check(&out, l1_for(10, 0.7, 1.0), 1.0);
        assert!((hoyer(&out).unwrap() - 0.7).abs() < 1e-9);
        // L1 beyond √n·L2 (sparseness < 0) is clamped to the all-equal vector.
        let info = project(&[1.0f64, 2.0, 3.0], 10.0, 1.0, &mut out[..3]).unwrap();
        assert!(info.clamped);
        assert!(hoyer(&out[..3]).unwrap() < 1e-9);
        let info = project(&[1.0f64, 2.0, 3.0], 0.5, 1.0, &mut out[..3]).unwrap();
        assert!(info.clamped);
        assert!((hoyer(&out[..3]).unwrap() - 1.0).abs() < 1e-9);
        assert!(project_to_sparseness(&[1.0f64, 2.0], 1.5, 1.0, &mut out[..2]).is_err());
        assert!(project(&[1.0f64, f64::NAN], 1.0, 1.0, &mut out[..2]).is_err());
        assert!(project(&[1.0f64, 2.0], 1.0, 0.0, &mut out[..2]).is_err());
        let one = project(&[5.0f64], 1.0, 2.0, &mut out[..1]).unwrap();
        assert_eq!(out[0], 2.0);
        assert!(!one.perturbed);
    }

    #[test]
    fn projection_is_the_closest_feasible_point() {
        let mut r = crate::rng::Rng::new(7);
        for _ in 0..20 {
            let n = 6;
            let s: Vec<f64> = (0..n).map(|_| r.uniform() - 0.2).collect();
            let mut p = vec![0.0; n];
            project_to_sparseness(&s, 0.5, 1.0, &mut p).unwrap();
            let d = |v: &[f64]| v.iter().zip(&s).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            let best = d(&p);
            // Random feasible points: project random vectors (they satisfy the constraints).
            for _ in 0..200 {
                let q: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
                let mut f = vec![0.0; n];
                project_to_sparseness(&q, 0.5, 1.0, &mut f).unwrap();
                assert!(d(&f) >= best - 1e-9, "found a closer feasible point");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn projection_hits_the_target_exactly_and_is_idempotent(
            s in proptest::collection::vec(-1.0f64..2.0, 2..60),
            target in 0.0f64..0.99,
            l2 in 0.1f64..10.0,
        ) {
            let n = s.len();
            let mut out = vec![0.0; n];
            let info = project_to_sparseness(&s, target, l2, &mut out).unwrap();
            prop_assert!(!info.clamped);
            prop_assert!(info.rounds <= n + 1);
            check(&out, l1_for(n, target, l2), l2);
            prop_assert!((hoyer(&out).unwrap() - target).abs() < 1e-9);
            let mut again = vec![0.0; n];
            project_to_sparseness(&out, target, l2, &mut again).unwrap();
            for (a, b) in out.iter().zip(&again) {
                prop_assert!((a - b).abs() < 1e-9 * l2);
            }
        }
    }
}
