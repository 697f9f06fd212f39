//! Initializations of the factors (METHODS.md §1.1): random (scaled), NNDSVD and its a/ar
//! variants, custom. Factors are returned in the solvers' layout: atoms `Wt` (`k × m`) and codes
//! `H` (`k × n`), samples as columns.

use faer::{Mat, MatRef, Par};

use super::data_op::XRef;
use super::options::{InitMethod, Resolved};
use crate::dist::Part;
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

/// The two factors in the solvers' layout.
#[derive(Clone, Debug)]
pub(crate) struct Factors<T: Real> {
    /// Atoms as rows: `k × n_features`.
    pub wt: Mat<T>,
    /// Codes as columns: `k × n_samples`.
    pub h: Mat<T>,
}

/// User-given starting factors (`--init custom`), in the public convention.
#[derive(Clone, Debug)]
pub struct CustomInit<T: Real> {
    /// `k × n_features`, one atom per row.
    pub atoms: Mat<T>,
    /// `n_samples × k`; when absent the codes start at the constant `sqrt(mean(X)/k)`
    /// (scikit-learn's MU transform start), which the first code update replaces.
    pub codes: Option<Mat<T>>,
}

/// Entries of NNDSVD factors below this are set to zero (scikit-learn's `eps`).
const NNDSVD_EPS: f64 = 1e-6;

/// Mean of all entries of `x`, accumulated in f64.
pub(crate) fn mean<T: Real>(x: MatRef<'_, T>) -> f64 {
    let mut s = 0.0;
    for j in 0..x.ncols() {
        for i in 0..x.nrows() {
            s += x[(i, j)].to_f64();
        }
    }
    s / (x.nrows() * x.ncols()).max(1) as f64
}

/// Builds the starting factors for `x` (`m × n`, samples as columns; dense or sparse). The
/// NNDSVD variants take their leading `k` singular triplets from `svd` when given (compression
/// computes `k + oversample` of them once, for its sketch too).
pub(crate) fn initialize_from<'a, T: Real>(
    x: impl Into<XRef<'a, T>>,
    v: &Resolved,
    custom: Option<&CustomInit<T>>,
    svd: Option<&linalg::TruncatedSvd<T>>,
    rng: &mut Rng,
    par: Par,
) -> Result<Factors<T>> {
    let x = x.into();
    initialize_part(x, v, custom, svd, rng, par, Part::single(x.ncols()))
}

/// [`initialize_from`] for this process's block of samples `part` ([`crate::dist`]): the random
/// start draws the whole codes matrix in the one-process order and keeps its own columns, so it
/// equals the one-process start (each process draws `k·n_total` numbers, `O(k·n)` time, no
/// `O(k·n)` memory); NNDSVD and NNDSVD-a take the SVD of the whole data across processes
/// ([`svd_part`]). NNDSVD-ar and custom starts are refused by the caller.
pub(crate) fn initialize_part<T: Real>(
    x: XRef<'_, T>,
    v: &Resolved,
    custom: Option<&CustomInit<T>>,
    svd: Option<&linalg::TruncatedSvd<T>>,
    rng: &mut Rng,
    par: Par,
    part: Part<'_>,
) -> Result<Factors<T>> {
    let (m, n, k) = (x.nrows(), x.ncols(), v.opts.k);
    let m_total = if part.splits_features() { part.m_total } else { m };
    let avg = if part.is_distributed() {
        part.sum1_all(x.mean() * (n * m) as f64) / (part.n_total * m_total).max(1) as f64
    } else {
        x.mean()
    };
    match v.init {
        InitMethod::Random | InitMethod::Auto => {
            let scale = (avg / k as f64).sqrt();
            // Codes first, then atoms (fixed order: part of the seed contract); column-major.
            rng.skip_normals(k * part.offset);
            let h = Mat::from_fn(k, n, |_, _| T::from_f64(scale * rng.normal().abs()));
            rng.skip_normals(k * part.n_total.saturating_sub(part.offset + n));
            // The atoms' entries of this process's features (all of them on a 1-D grid).
            rng.skip_normals(k * part.feature_offset);
            let wt = Mat::from_fn(k, m, |_, _| T::from_f64(scale * rng.normal().abs()));
            rng.skip_normals(k * m_total.saturating_sub(part.feature_offset + m));
            Ok(Factors { wt, h })
        }
        InitMethod::Nndsvd | InitMethod::Nndsvda | InitMethod::Nndsvdar => {
            let mut f = match svd {
                _ if part.is_distributed() => nndsvd_part(x, k, avg, rng, par, part)?,
                Some(svd) => nndsvd_from(x, svd, k, rng),
                None => nndsvd(x, k, rng, par)?,
            };
            let fill = |val: &mut T, rng: &mut Rng| {
                if *val == T::zero() {
                    *val = match v.init {
                        InitMethod::Nndsvda => T::from_f64(avg),
                        InitMethod::Nndsvdar => T::from_f64(avg * rng.normal().abs() / 100.0),
                        _ => T::zero(),
                    };
                }
            };
            for mat in [&mut f.wt, &mut f.h] {
                for j in 0..mat.ncols() {
                    for val in mat.col_as_slice_mut(j) {
                        fill(val, rng);
                    }
                }
            }
            Ok(f)
        }
        InitMethod::Custom => {
            let c = custom.ok_or_else(|| {
                Error::invalid(
                    "init",
                    "custom",
                    "give the starting atoms, `custom` (k × n_features)",
                )
            })?;
            check_factor(c.atoms.as_ref(), (k, m), "custom init atoms", "k × n_features")?;
            let wt = c.atoms.clone();
            let h = match &c.codes {
                Some(codes) => {
                    check_factor(codes.as_ref(), (n, k), "custom init codes", "n_samples × k")?;
                    codes.transpose().to_owned()
                }
                None => {
                    let v0 = T::from_f64((avg / k as f64).sqrt());
                    Mat::from_fn(k, n, |_, _| v0)
                }
            };
            Ok(Factors { wt, h })
        }
    }
}

fn check_factor<T: Real>(f: MatRef<'_, T>, shape: (usize, usize), what: &str, layout: &str) -> Result<()> {
    if f.shape() != shape {
        return Err(Error::ShapeMismatch {
            what: what.into(),
            expected: format!("{} × {} ({layout})", shape.0, shape.1),
            found: format!("{} × {}", f.nrows(), f.ncols()),
            hint: format!("save it as a {layout} array for this data and k"),
        });
    }
    for j in 0..f.ncols() {
        for i in 0..f.nrows() {
            let val = f[(i, j)];
            if !val.is_finite() || val < T::zero() {
                return Err(Error::invalid(
                    "init",
                    "custom",
                    format!(
                        "{what} entry ({i}, {j}) is {}; starting factors must be finite and ≥ 0",
                        val.to_f64()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// NNDSVD (Boutsidis & Gallopoulos 2008), METHODS.md §1.1 steps 1–4: a truncated SVD, then for
/// each pair the dominant of the positive or negative parts. Ties take the positive part.
///
/// Guard (§1.1): a component with a zero singular value (k above the numerical rank of `X`, e.g.
/// swimmer, rank 13, with k = 17) or whose positive and negative parts both vanish gets the
/// random start `sqrt(mean(X)/k)·|N(0,1)|` instead of zeros. Measured on swimmer: with constant
/// (nndsvda-filled) extra atoms HALS stalled at relative error 0.21–0.27 with merged limbs; with
/// random extra atoms it recovers all 16 limb parts.
///
/// On sparse data the SVD is the randomized range finder on SpMM products
/// ([`linalg::spmm`]), `O(nnz·(k + 10))` per product, so NNDSVD never densifies either.
pub(crate) fn nndsvd<'a, T: Real>(
    x: impl Into<XRef<'a, T>>,
    k: usize,
    rng: &mut Rng,
    par: Par,
) -> Result<Factors<T>> {
    let x = x.into();
    let svd = match x {
        XRef::Dense(x) => linalg::truncated_svd(x, k, rng, par)?,
        XRef::Sparse(s) => linalg::spmm::truncated_svd_sparse(s.rows, s.cols(), k, rng, par)?,
    };
    Ok(nndsvd_from(x, &svd, k, rng))
}

/// [`nndsvd`] on this process's samples `part` ([`crate::dist`]; `avg` is the mean of all of
/// `X`), from the leading singular triplets of the whole data ([`svd_part`]); the norms of the
/// codes' side come from the local samples and summed squares ([`nndsvd_with`]).
fn nndsvd_part<T: Real>(
    x: XRef<'_, T>,
    k: usize,
    avg: f64,
    rng: &mut Rng,
    par: Par,
    part: Part<'_>,
) -> Result<Factors<T>> {
    let svd = svd_part(x, k, rng, par, part)?;
    Ok(nndsvd_with(x, &svd, k, avg, rng, part))
}

/// The leading `k` singular triplets of the data of which this process holds the samples
/// `part` (`U` replicated, `V`'s rows of the samples held here), by one of two paths:
/// - **exact** (dense data with `n_features ≤ min(n_samples, 2048)`, where the one-process
///   [`linalg::truncated_svd`] eigen-decomposes the features' Gram): the Gram `X Xᵀ = Σ_r X_rX_rᵀ`
///   (`m × m`) is summed over processes and eigen-decomposed on each, `V_r = X_rᵀ U Σ⁻¹`
///   ([`linalg::svd_from_gram`]); equal to the one-process SVD up to rounding;
/// - **randomized** otherwise (sparse data, more features than samples, both sides above
///   2048, or features split over a 2-D grid): the range finder across processes, [`linalg::range::randomized_svd_part`]. It
///   equals the one-process randomized path ([`linalg::randomized_svd`], the one
///   [`linalg::truncated_svd`] takes when both sides exceed 2048) up to rounding; where the
///   one-process fit takes the exact path instead, the two starts differ by the range
///   finder's error (none on data of rank ≤ `k + 10`); so do they on sparse data, whose
///   one-process SVD ([`linalg::spmm::truncated_svd_sparse`]) draws `Ω` in the other order.
pub(crate) fn svd_part<T: Real>(
    x: XRef<'_, T>,
    k: usize,
    rng: &mut Rng,
    par: Par,
    part: Part<'_>,
) -> Result<linalg::TruncatedSvd<T>> {
    let m = x.nrows();
    match x.dense() {
        Some(xd) if !part.splits_features() && m <= part.n_total && linalg::svd_is_exact(m, part.n_total) => {
            let mut g = Mat::<T>::zeros(m, m);
            linalg::gram(g.as_mut(), xd, par);
            part.sum_mat_samples(&mut g);
            let kk = k.min(m).min(part.n_total);
            let (u, s, v) = linalg::svd_from_gram(xd, g.as_ref(), kk, par)?;
            Ok(linalg::TruncatedSvd { u, s, v })
        }
        _ => linalg::range::randomized_svd_part(x, k, rng, par, part),
    }
}

/// [`nndsvd`] from the leading singular triplets `svd` of `x` (at least `k` of them, or fewer
/// when the rank is lower: the missing ones get the random start).
pub(crate) fn nndsvd_from<T: Real>(
    x: XRef<'_, T>,
    svd: &linalg::TruncatedSvd<T>,
    k: usize,
    rng: &mut Rng,
) -> Factors<T> {
    nndsvd_with(x, svd, k, x.mean(), rng, Part::single(x.ncols()))
}

/// [`nndsvd_from`] for the samples `part` (the norms of the codes' side summed over
/// processes; a random component draws all `n_total` codes in order and keeps its own).
pub(crate) fn nndsvd_with<T: Real>(
    x: XRef<'_, T>,
    svd: &linalg::TruncatedSvd<T>,
    k: usize,
    avg: f64,
    rng: &mut Rng,
    part: Part<'_>,
) -> Factors<T> {
    let (m, n) = (x.nrows(), x.ncols());
    let mut wt = Mat::<T>::zeros(k, m);
    let mut h = Mat::<T>::zeros(k, n);
    let scale = (avg / k as f64).sqrt();
    let m_total = if part.splits_features() { part.m_total } else { m };
    let mut random_component = |j: usize, wt: &mut Mat<T>, h: &mut Mat<T>| {
        rng.skip_normals(part.feature_offset);
        for i in 0..m {
            wt[(j, i)] = T::from_f64(scale * rng.normal().abs());
        }
        rng.skip_normals(m_total.saturating_sub(part.feature_offset + m));
        rng.skip_normals(part.offset);
        for i in 0..n {
            h[(j, i)] = T::from_f64(scale * rng.normal().abs());
        }
        rng.skip_normals(part.n_total.saturating_sub(part.offset + n));
    };
    for j in 0..k {
        if j >= svd.s.len() || svd.s[j] <= T::zero() {
            random_component(j, &mut wt, &mut h);
            continue;
        }
        let s = svd.s[j].to_f64();
        let u: Vec<f64> = (0..m).map(|i| svd.u[(i, j)].to_f64()).collect();
        let vv: Vec<f64> = (0..n).map(|i| svd.v[(i, j)].to_f64()).collect();
        let (uu, vsel, scale) = if j == 0 {
            (
                u.iter().map(|a| a.abs()).collect::<Vec<f64>>(),
                vv.iter().map(|a| a.abs()).collect::<Vec<f64>>(),
                s.sqrt(),
            )
        } else {
            let pos = |a: &[f64]| a.iter().map(|&t| t.max(0.0)).collect::<Vec<_>>();
            let neg = |a: &[f64]| a.iter().map(|&t| (-t).max(0.0)).collect::<Vec<_>>();
            let norm = |a: &[f64]| a.iter().map(|t| t * t).sum::<f64>().sqrt();
            let (up, un, vp, vn) = (pos(&u), neg(&u), pos(&vv), neg(&vv));
            let sq = |a: &[f64]| a.iter().map(|t| t * t).sum::<f64>();
            let (nup, nun) = if part.splits_features() {
                let mut b = [sq(&up), sq(&un)];
                part.sum_features(&mut b);
                (b[0].sqrt(), b[1].sqrt())
            } else {
                (norm(&up), norm(&un))
            };
            let (nvp, nvn) = if part.is_distributed() {
                let mut b = [sq(&vp), sq(&vn)];
                part.sum_samples(&mut b);
                (b[0].sqrt(), b[1].sqrt())
            } else {
                (norm(&vp), norm(&vn))
            };
            let (mp, mn) = (nup * nvp, nun * nvn);
            let (a, b, na, nb, mm) = if mp >= mn {
                (up, vp, nup, nvp, mp)
            } else {
                (un, vn, nun, nvn, mn)
            };
            if mm <= 0.0 {
                random_component(j, &mut wt, &mut h);
                continue;
            }
            let sc = (s * mm).sqrt();
            (
                a.iter().map(|t| t / na).collect(),
                b.iter().map(|t| t / nb).collect(),
                sc,
            )
        };
        for i in 0..m {
            let val = scale * uu[i];
            wt[(j, i)] = T::from_f64(if val < NNDSVD_EPS { 0.0 } else { val });
        }
        for i in 0..n {
            let val = scale * vsel[i];
            h[(j, i)] = T::from_f64(if val < NNDSVD_EPS { 0.0 } else { val });
        }
    }
    Factors { wt, h }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmf::options::NmfParams;

    fn data(m: usize, n: usize, seed: u64) -> Mat<f64> {
        let mut r = Rng::new(seed);
        Mat::from_fn(m, n, |_, _| r.uniform())
    }

    #[test]
    fn nndsvd_is_nonnegative_and_exact_for_rank_one() {
        // Rank-one non-negative X = a bᵀ: NNDSVD with k = 1 reproduces it.
        let mut r = Rng::new(1);
        let a: Vec<f64> = (0..12).map(|_| r.uniform() + 0.1).collect();
        let b: Vec<f64> = (0..9).map(|_| r.uniform() + 0.1).collect();
        let x = Mat::<f64>::from_fn(12, 9, |i, j| a[i] * b[j]);
        let f = nndsvd(x.as_ref(), 1, &mut Rng::new(0), Par::Seq).unwrap();
        let rec = f.wt.transpose() * &f.h;
        assert!((&rec - &x).norm_max() < 1e-10);
        let x = data(30, 20, 2);
        let f = nndsvd(x.as_ref(), 6, &mut Rng::new(0), Par::Seq).unwrap();
        assert!(f
            .wt
            .col_iter()
            .chain(f.h.col_iter())
            .all(|c| c.iter().all(|&v| v >= 0.0)));
    }

    #[test]
    fn variants_fill_zeros() {
        let x = data(30, 20, 3);
        for (init, zero_ok) in [
            (InitMethod::Nndsvd, true),
            (InitMethod::Nndsvda, false),
            (InitMethod::Nndsvdar, false),
        ] {
            let v = NmfParams {
                k: 6,
                init,
                ..Default::default()
            }
            .check()
            .unwrap()
            .resolve(20, 30)
            .unwrap();
            let f = initialize_from(x.as_ref(), &v, None, None, &mut Rng::new(0), Par::Seq).unwrap();
            let zeros =
                f.wt.col_iter()
                    .chain(f.h.col_iter())
                    .flat_map(|c| c.iter().copied().collect::<Vec<_>>())
                    .filter(|&v| v == 0.0)
                    .count();
            if zero_ok {
                assert!(zeros > 0, "plain NNDSVD of random data has zeros");
            } else {
                assert_eq!(zeros, 0, "{init:?} leaves no zeros");
            }
        }
    }

    #[test]
    fn random_init_is_seeded_and_scaled() {
        let x = data(30, 20, 4);
        let v = NmfParams {
            k: 5,
            init: InitMethod::Random,
            ..Default::default()
        }
        .check()
        .unwrap()
        .resolve(20, 30)
        .unwrap();
        let a = initialize_from(x.as_ref(), &v, None, None, &mut Rng::new(9), Par::Seq).unwrap();
        let b = initialize_from(x.as_ref(), &v, None, None, &mut Rng::new(9), Par::Seq).unwrap();
        assert!(a.wt == b.wt && a.h == b.h);
        // E|N(0,1)| = sqrt(2/π): mean of entries ≈ sqrt(mean(X)/k)·0.798.
        let expect = (mean(x.as_ref()) / 5.0).sqrt() * (2.0 / std::f64::consts::PI).sqrt();
        let got = mean(a.h.as_ref());
        assert!((got - expect).abs() < 0.1 * expect, "{got} vs {expect}");
    }

    #[test]
    fn custom_init_is_checked() {
        let x = data(30, 20, 5);
        let v = NmfParams {
            k: 3,
            init: InitMethod::Custom,
            ..Default::default()
        }
        .check()
        .unwrap()
        .resolve(20, 30)
        .unwrap();
        assert!(initialize_from(x.as_ref(), &v, None, None, &mut Rng::new(0), Par::Seq).is_err());
        let bad = CustomInit {
            atoms: Mat::<f64>::zeros(3, 29),
            codes: None,
        };
        let e = initialize_from(x.as_ref(), &v, Some(&bad), None, &mut Rng::new(0), Par::Seq)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 × 30"), "{e}");
        let neg = CustomInit {
            atoms: Mat::<f64>::from_fn(3, 30, |i, _| i as f64 - 1.0),
            codes: None,
        };
        assert!(initialize_from(x.as_ref(), &v, Some(&neg), None, &mut Rng::new(0), Par::Seq).is_err());
        let ok = CustomInit {
            atoms: Mat::<f64>::ones(3, 30),
            codes: Some(Mat::ones(20, 3)),
        };
        let f = initialize_from(x.as_ref(), &v, Some(&ok), None, &mut Rng::new(0), Par::Seq).unwrap();
        assert_eq!(f.h.shape(), (3, 20));
    }
}
