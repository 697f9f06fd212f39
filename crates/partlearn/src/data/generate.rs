//! Generated data sets for tests and benchmarks (`partlearn data generate`):
//!
//! - [`topics`]: a planted topic model — sparse term counts of `docs × terms` at a target
//!   density, the shape of a bag-of-words corpus (METHODS.md §11.1's sparse benchmark).
//! - [`lowrank`]: a dense planted non-negative low-rank matrix plus noise.
//!
//! Documents are generated in fixed blocks, each from its own seeded stream, so the same seed
//! gives the same matrix for any thread count.

use faer::Mat;
use rayon::prelude::*;

use super::Csr;
use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// Documents per generation block (each block has its own random stream).
const BLOCK: usize = 1024;

/// The planted topic model of [`topics`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopicsSpec {
    /// Documents (rows, samples).
    pub docs: usize,
    /// Terms (columns, features).
    pub terms: usize,
    /// Target fraction of non-zero entries, in (0, 1].
    pub density: f64,
    /// Planted topics.
    pub topics: usize,
    /// Seed.
    pub seed: u64,
}

/// A skewed weight (`Exp(1)³`): a few large entries and many small ones, like the draws of a
/// Dirichlet with a small concentration.
fn skewed(r: &mut Rng) -> f64 {
    let e = -(1.0 - r.uniform()).ln();
    e * e * e
}

/// Term counts of `docs` documents from `topics` topics (samples as rows). Each topic is a
/// distribution over the terms with skewed weights ([`skewed`]) on its own random half of the
/// vocabulary; each document mixes the topics with skewed weights and draws
/// `round(density·terms·1.1)` tokens (a token: a topic from the mixture, then a term from the
/// topic); repeated terms add up to counts, so the density lands near the target (the actual
/// value is `Csr::density`). Memory: the CSR output (`≈ 8·nnz` bytes in f32), checked first.
pub fn topics<T: Real>(s: &TopicsSpec) -> Result<Csr<T>> {
    for (name, v, what) in [
        ("docs", s.docs, "document"),
        ("terms", s.terms, "term"),
        ("topics", s.topics, "topic"),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, v, format!("give at least one {what}")));
        }
    }
    if !(s.density > 0.0 && s.density <= 1.0) {
        return Err(Error::invalid(
            "density",
            s.density,
            "give a fraction in (0, 1], e.g. 0.001",
        ));
    }
    let tokens = ((s.density * s.terms as f64 * 1.1).round() as usize).max(1);
    let bytes = (s.docs as f64) * (tokens as f64) * (std::mem::size_of::<T>() + 4 + 4) as f64
        + (s.topics as f64) * (s.terms as f64) * 8.0;
    crate::linalg::check_memory("docs", s.docs, bytes)?;
    let mut rng = Rng::new(s.seed);
    // Cumulative term distributions of the topics.
    let cdfs: Vec<Vec<f64>> = (0..s.topics)
        .map(|_| {
            let mut acc = 0.0;
            (0..s.terms)
                .map(|_| {
                    if rng.uniform() < 0.5 {
                        acc += skewed(&mut rng);
                    }
                    acc
                })
                .collect()
        })
        .collect();
    let draw = |cdf: &[f64], r: &mut Rng| -> usize {
        let total = cdf[cdf.len() - 1];
        let u = r.uniform() * total;
        cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
    };
    let blocks: Vec<usize> = (0..s.docs).step_by(BLOCK).collect();
    let rows: Vec<Vec<(Vec<u32>, Vec<T>)>> = blocks
        .par_iter()
        .map(|&d0| {
            let mut r = Rng::new(s.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(d0 as u64 + 1)));
            let mut terms: Vec<u32> = Vec::with_capacity(tokens);
            (d0..(d0 + BLOCK).min(s.docs))
                .map(|_| {
                    let mut mix = 0.0;
                    let theta: Vec<f64> = (0..s.topics)
                        .map(|_| {
                            mix += skewed(&mut r);
                            mix
                        })
                        .collect();
                    terms.clear();
                    for _ in 0..tokens {
                        let t = draw(&theta, &mut r);
                        terms.push(draw(&cdfs[t], &mut r) as u32);
                    }
                    terms.sort_unstable();
                    let (mut idx, mut val) = (Vec::new(), Vec::new());
                    for &c in &terms {
                        match (idx.last(), val.last_mut()) {
                            (Some(&l), Some(v)) if l == c => *v += T::one(),
                            _ => {
                                idx.push(c);
                                val.push(T::one());
                            }
                        }
                    }
                    (idx, val)
                })
                .collect()
        })
        .collect();
    let mut indptr = Vec::with_capacity(s.docs + 1);
    indptr.push(0);
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for block in rows {
        for (idx, val) in block {
            indices.extend_from_slice(&idx);
            data.extend_from_slice(&val);
            indptr.push(data.len());
        }
    }
    Csr::from_parts(s.docs, s.terms, indptr, indices, data)
}

/// Checks the shape and noise of a planted low-rank matrix: `n`, `m` ≥ 1, `1 ≤ k ≤ min(n, m)`
/// (a larger `k` is not the rank of an `n × m` matrix), finite `noise ≥ 0`; [`lowrank`] and
/// [`lowrank_blocks`] check it first (a front end may too, before it opens its output).
pub fn check_lowrank(n: usize, m: usize, k: usize, noise: f64) -> Result<()> {
    for (name, v) in [("n", n), ("m", m), ("k", k)] {
        if v == 0 {
            return Err(Error::invalid(name, v, "give `n`, `m` and `k` ≥ 1"));
        }
    }
    if k > n.min(m) {
        return Err(Error::invalid(
            "k",
            k,
            format!(
                "the rank of a {n} × {m} matrix is at most {}: give `k` ≤ min(`n`, `m`)",
                n.min(m)
            ),
        ));
    }
    if !(noise >= 0.0 && noise.is_finite()) {
        return Err(Error::invalid("noise", noise, "give a finite noise level ≥ 0"));
    }
    Ok(())
}

/// A dense planted `n × m` matrix `C·A + noise·|N(0,1)|` of rank `k ≤ min(n, m)` (samples as
/// rows): `C` and `A` uniform in [0, 1) with about 30 % zeros.
pub fn lowrank<T: Real>(n: usize, m: usize, k: usize, noise: f64, seed: u64) -> Result<Mat<T>> {
    check_lowrank(n, m, k, noise)?;
    let bytes =
        (n as f64) * (m as f64) * std::mem::size_of::<T>() as f64 + (n as f64 + m as f64) * (k as f64) * 8.0;
    crate::linalg::check_memory("n", n, bytes)?;
    let mut r = Rng::new(seed);
    let mut f = |_, _| if r.uniform() < 0.3 { 0.0 } else { r.uniform() };
    let c = Mat::<f64>::from_fn(n, k, &mut f);
    let a = Mat::<f64>::from_fn(k, m, &mut f);
    let mut x = crate::linalg::try_mat_from_fn(n, m, |_, _| T::zero(), "generated matrix")?;
    for i in 0..n {
        for j in 0..m {
            let mut v = 0.0;
            for t in 0..k {
                v += c[(i, t)] * a[(t, j)];
            }
            x[(i, j)] = T::from_f64(v + noise * r.normal().abs());
        }
    }
    Ok(x)
}

/// [`lowrank`] generated `BLOCK` rows at a time and handed to `sink` (`len × m`, samples as
/// rows, in row order), so that any `n` fits in memory (`O(BLOCK·m + k·m)`): `A` comes from the
/// seed, each block's codes and noise from its own seeded stream (the same matrix for any
/// thread count; a different one than [`lowrank`]'s for the same seed).
pub fn lowrank_blocks<T: Real>(
    n: usize,
    m: usize,
    k: usize,
    noise: f64,
    seed: u64,
    sink: &mut dyn FnMut(faer::MatRef<'_, T>) -> Result<()>,
) -> Result<()> {
    check_lowrank(n, m, k, noise)?;
    let bytes = ((BLOCK as f64) + (k as f64)) * (m as f64) * 16.0;
    crate::linalg::check_memory("m", m, bytes)?;
    let mut r = Rng::new(seed);
    let entry = |r: &mut Rng| if r.uniform() < 0.3 { 0.0 } else { r.uniform() };
    let a = Mat::<f64>::from_fn(k, m, |_, _| entry(&mut r));
    let mut d0 = 0;
    while d0 < n {
        let len = BLOCK.min(n - d0);
        let mut r = Rng::new(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(d0 as u64 + 1)));
        let c = Mat::<f64>::from_fn(len, k, |_, _| entry(&mut r));
        let mut x = Mat::<f64>::zeros(len, m);
        crate::linalg::matmul(
            x.as_mut(),
            faer::Accum::Replace,
            c.as_ref(),
            a.as_ref(),
            1.0,
            faer::Par::Seq,
        );
        let xt = Mat::<T>::from_fn(len, m, |i, j| T::from_f64(x[(i, j)] + noise * r.normal().abs()));
        sink(xt.as_ref())?;
        d0 += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_hits_the_density_and_is_seeded() {
        let s = TopicsSpec {
            docs: 3000,
            terms: 2000,
            density: 0.01,
            topics: 10,
            seed: 7,
        };
        let a: Csr<f32> = topics(&s).unwrap();
        assert_eq!((a.nrows(), a.ncols()), (3000, 2000));
        assert!((a.density() - 0.01).abs() < 0.004, "density {}", a.density());
        a.validate_nonnegative().unwrap();
        let b: Csr<f32> = crate::linalg::with_threads(2, || topics(&s)).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(topics::<f32>(&TopicsSpec { density: 0.0, ..s }).is_err());
    }

    #[test]
    fn lowrank_blocks_are_low_rank_and_cover_every_row() {
        let mut rows = Vec::new();
        lowrank_blocks::<f64>(2500, 30, 3, 0.0, 1, &mut |b| {
            rows.push(b.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            rows.iter().map(|b| b.nrows()).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        let x = Mat::<f64>::from_fn(2500, 30, |i, j| rows[i / 1024][(i % 1024, j)]);
        let svd = crate::linalg::truncated_svd(x.as_ref(), 5, &mut Rng::new(0), faer::Par::Seq).unwrap();
        assert!(svd.s[3] < 1e-8 * svd.s[0]);
    }

    #[test]
    fn lowrank_names_the_bad_dimension_and_caps_k() {
        let option = |r: Result<Mat<f32>>| match r {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("{other:?}"),
        };
        assert_eq!(option(lowrank(0, 5, 2, 0.0, 0)), "n");
        assert_eq!(option(lowrank(5, 0, 2, 0.0, 0)), "m");
        assert_eq!(option(lowrank(5, 4, 0, 0.0, 0)), "k");
        assert_eq!(option(lowrank(30, 20, 21, 0.0, 0)), "k");
        assert!(lowrank::<f32>(30, 20, 20, 0.0, 0).is_ok());
        let t = |docs, terms, topics| TopicsSpec {
            docs,
            terms,
            density: 0.1,
            topics,
            seed: 0,
        };
        for (s, name) in [
            (t(0, 5, 2), "docs"),
            (t(5, 0, 2), "terms"),
            (t(5, 5, 0), "topics"),
        ] {
            assert!(matches!(topics::<f32>(&s), Err(Error::InvalidOption { option, .. }) if option == name));
        }
    }

    #[test]
    fn lowrank_is_low_rank_plus_noise() {
        let x: Mat<f64> = lowrank(40, 30, 3, 0.0, 1).unwrap();
        let svd = crate::linalg::truncated_svd(x.as_ref(), 5, &mut Rng::new(0), faer::Par::Seq).unwrap();
        assert!(svd.s[3] < 1e-8 * svd.s[0]);
    }
}
