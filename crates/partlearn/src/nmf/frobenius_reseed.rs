//! Atom maintenance for [`super::GramSolver`] (METHODS.md §1.8), across processes when the fit
//! is distributed: re-seeding of dead atoms, and the rebalancing of atoms whose scale drifted
//! between `W` and `H`.

use super::super::init::Factors;
use super::{GramSolver, Rule, RESEED_COOLDOWN};
use crate::real::Real;

/// An atom is rebalanced when `‖h_j‖² / ‖w_j‖²` is above 2⁴⁰ ≈ 1.1e12 or below its inverse
/// (a factor 2²⁰ ≈ 1e6 between the norms): far outside what the atoms of healthy fits show (no
/// atom is rebalanced by ANLS or HALS on Fashion-MNIST, `-k 40`), well before the drift
/// reaches the range of `f32`.
pub(crate) const BALANCE_AT_LOG2: f64 = 40.0;

/// Columns per partial sum of [`row_sq`].
const ROW_SQ_CHUNK: usize = 4096;

/// `‖m_i‖²` of every row of `m` (`k × N`), in `f64`: partial sums over fixed chunks of
/// [`ROW_SQ_CHUNK`] columns (in parallel with `parallel`), added in chunk order, so the result
/// does not depend on the number of threads. (The codes of a million samples are 200 MB: one
/// thread read them in 9 ms, twice per HALS iteration.)
fn row_sq<T: Real>(m: &faer::Mat<T>, k: usize, parallel: bool) -> Vec<f64> {
    use rayon::prelude::*;
    let chunk = |c: usize| -> Vec<f64> {
        let mut sq = vec![0.0; k];
        for col in c * ROW_SQ_CHUNK..((c + 1) * ROW_SQ_CHUNK).min(m.ncols()) {
            for (s, &v) in sq.iter_mut().zip(m.col_as_slice(col)) {
                let v = v.to_f64();
                *s += v * v;
            }
        }
        sq
    };
    let chunks = m.ncols().div_ceil(ROW_SQ_CHUNK);
    let parts: Vec<Vec<f64>> = if parallel && chunks > 1 {
        (0..chunks).into_par_iter().map(chunk).collect()
    } else {
        (0..chunks).map(chunk).collect()
    };
    let mut sq = vec![0.0; k];
    for p in &parts {
        sq.iter_mut().zip(p).for_each(|(s, &v)| *s += v);
    }
    sq
}

impl<T: Real> GramSolver<'_, T> {
    /// Dead atoms are re-seeded and drifting scales rebalanced: HALS and ANLS without penalties
    /// (a penalty can make a zero atom optimal, and fixes the scale).
    pub(super) fn maintains_atoms(&self) -> bool {
        self.rule != Rule::Mu && self.codes_pen.is_zero() && self.atoms_pen.is_zero()
    }

    /// Scale ambiguity (METHODS.md §1.8, `WH = (WD)(D⁻¹H)`): where the passive-set systems are
    /// singular (more atoms than samples, e.g. `-k 120` on 96 Swimmer images) the exact NNLS
    /// solves are not unique, and an atom can shrink towards zero while its codes grow without
    /// bound (atoms at 1e-23 of the mean squared norm with codes near 1e10 within 4 iterations,
    /// then `inf`; or a Gram diagonal spanning 0 to 1.8e33, where a dual tolerance relative to
    /// the largest cross term no longer sees the small atoms). Atom `j` with squared norms
    /// `a_j = ‖w_j‖²`, `c_j = ‖h_j‖²` is rescaled when `|log₂(c_j / a_j)| >`
    /// [`BALANCE_AT_LOG2`]: `w_j ← s w_j`, `h_j ← h_j / s` with `s = 2^round(log₂(c_j / a_j) / 4)`,
    /// which makes the two norms equal to within a factor 2. `WH` and the objective do not
    /// change; powers of two make the scaling exact, so `Q`, `T`, `P` and `R` are scaled in
    /// place (where stale, they are recomputed before use anyway). The norms are computed in
    /// `f64` from the factors and summed over processes (`k` numbers each), so every process
    /// picks the same `s` (reading the Gram diagonals `Q_jj`, `T_jj` instead — in `f32` for
    /// `f32` data, and `Q` stale after a rejected extrapolation — let the error of
    /// `anls_with_more_atoms_than_samples_rebalances_and_fits` rise to 0.65). Runs before each
    /// factor's update, where [`Self::maintains_atoms`].
    pub(super) fn balance_atoms(&mut self, f: &mut Factors<T>) {
        if !self.maintains_atoms() {
            return;
        }
        let k = self.q.nrows();
        let parallel = self.parallel();
        let (mut a, mut c) = (row_sq(&f.wt, k, parallel), row_sq(&f.h, k, parallel));
        self.part.sum_features(&mut a);
        self.part.sum_samples(&mut c);
        // Exponents of `s` (0: leave the atom); zero atoms or codes are left to the re-seeding.
        let e: Vec<i32> = a
            .iter()
            .zip(&c)
            .map(|(&aj, &cj)| {
                let l = cj.log2() - aj.log2();
                if l.is_finite() && l.abs() > BALANCE_AT_LOG2 {
                    (l / 4.0).round() as i32
                } else {
                    0
                }
            })
            .collect();
        if e.iter().all(|&v| v == 0) {
            return;
        }
        let s: Vec<T> = e.iter().map(|&v| T::from_f64(2f64.powi(v))).collect();
        let inv: Vec<T> = e.iter().map(|&v| T::from_f64(2f64.powi(-v))).collect();
        let scale_rows = |m: &mut faer::Mat<T>, by: &[T]| {
            for col in 0..m.ncols() {
                for (v, &b) in m.col_as_slice_mut(col).iter_mut().zip(by) {
                    *v = *v * b;
                }
            }
        };
        scale_rows(&mut f.wt, &s);
        scale_rows(&mut f.h, &inv);
        scale_rows(&mut self.p, &s);
        scale_rows(&mut self.r, &inv);
        for j in 0..k {
            for i in 0..k {
                self.q[(i, j)] = self.q[(i, j)] * s[i] * s[j];
                self.t[(i, j)] = self.t[(i, j)] * inv[i] * inv[j];
            }
        }
        self.rebalanced += e.iter().filter(|&&v| v != 0).count() as u64;
    }

    /// Dead atoms (METHODS.md §1.8): under ANLS an all-zero atom stays zero forever (its Gram
    /// row is zero, so its exact codes are zero, so its atom update is zero); under HALS an atom
    /// that is all zero *and* has all-zero codes does (both coordinate updates are skipped on a
    /// zero Gram diagonal). Detected from the Gram diagonals, which are the squared norms:
    /// `(WᵀW)_jj = 0` (and `(HHᵀ)_jj = 0` for HALS). Each dead atom is replaced by the sample with
    /// the largest residual `‖x_i − W h_i‖²` (computed from `P`, `Q` and the sample norms),
    /// largest first, and its codes are set to zero. `WH` does not change, so the objective does
    /// not rise; `P` and `Q` are refreshed. Only without penalties: under L1/L2 a zero atom can be
    /// the penalty's own optimum, and re-seeding it would raise the penalized objective. (An atom
    /// that is not zero but unused is not dead for HALS: it can come back, and re-seeding it was
    /// measured to hurt, e.g. on swimmer.)
    pub(super) fn reseed_dead_atoms(&mut self, f: &mut Factors<T>) {
        let (k, n) = (f.wt.nrows(), f.h.ncols());
        let dead: Vec<usize> = (0..k)
            .filter(|&j| {
                self.q[(j, j)] == T::zero() && (self.rule == Rule::Anls || self.t[(j, j)] == T::zero())
            })
            .filter(|&j| self.last_reseed[j].is_none_or(|it| self.iters >= it + RESEED_COOLDOWN))
            .collect();
        if dead.is_empty() || self.part.n_total == 0 {
            return;
        }
        // ‖x_i‖² of every sample held here (summed over the processes holding its other
        // features on a 2-D grid).
        let mut sample_sq: Vec<f64> = (0..n).map(|i| self.x.sample_sq(i)).collect();
        self.part.sum_features(&mut sample_sq);
        let residual = |i: usize| -> f64 {
            let (mut hp, mut hqh) = (0.0, 0.0);
            for a in 0..k {
                let ha = f.h[(a, i)].to_f64();
                if ha == 0.0 {
                    continue;
                }
                hp += ha * self.p[(a, i)].to_f64();
                let qh: f64 = (0..k)
                    .map(|b| self.q[(a, b)].to_f64() * f.h[(b, i)].to_f64())
                    .sum();
                hqh += ha * qh;
            }
            sample_sq[i] - 2.0 * hp + hqh
        };
        let off = self.part.offset;
        let mut r: Vec<(f64, usize)> = (0..n).map(|i| (residual(i), off + i)).collect();
        let order = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        r.sort_by(order);
        if self.part.is_distributed() {
            // The largest residuals of all processes: each block of samples contributes its
            // best `dead.len()` in its own slot of a buffer summed over the processes holding
            // the other samples (the others hold zeros), then all merge.
            let (d, p, me) = (dead.len(), self.part.grid.rows, self.part.position().0);
            let mut buf = vec![0.0; 3 * d * p];
            for (s, &(res, i)) in r.iter().take(d).enumerate() {
                let at = 3 * (me * d + s);
                buf[at..at + 3].copy_from_slice(&[1.0, res, i as f64]);
            }
            self.part.sum_samples(&mut buf);
            r = buf
                .chunks_exact(3)
                .filter(|c| c[0] == 1.0)
                .map(|c| (c[1], c[2] as usize))
                .collect();
            r.sort_by(order);
        }
        let m = f.wt.ncols();
        for (&j, &(res, i)) in dead.iter().zip(&r) {
            // Nothing left to explain (e.g. all-zero data): leave the atom as it is.
            if !(res > 0.0) {
                break;
            }
            if self.part.is_distributed() {
                // The process holding sample i sends it to all (the others add zeros).
                let mut row = vec![0.0; m];
                if (off..off + n).contains(&i) {
                    self.x.sample_into_row(i - off, &mut f.wt, j);
                    row.iter_mut()
                        .enumerate()
                        .for_each(|(p, v)| *v = f.wt[(j, p)].to_f64());
                }
                self.part.sum_samples(&mut row);
                for (p, v) in row.iter().enumerate() {
                    f.wt[(j, p)] = T::from_f64(*v);
                }
            } else {
                self.x.sample_into_row(i, &mut f.wt, j);
            }
            for c in 0..n {
                f.h[(j, c)] = T::zero();
            }
            self.reseeded += 1;
            self.last_reseed[j] = Some(self.iters);
        }
        self.atoms_gram(f.wt.as_ref());
        self.codes_cross(f.wt.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::fit_loop::Iterate;
    use super::super::super::init::Factors;
    use super::super::super::options::Penalty;
    use super::super::{GramSolver, Rule};
    use crate::rng::Rng;
    use faer::{Mat, Par};

    /// The rows' squared norms are the same on one and two threads and match a direct sum.
    #[test]
    fn row_norms_do_not_depend_on_the_threads() {
        let mut r = Rng::new(9);
        let n = 3 * super::ROW_SQ_CHUNK + 11;
        let h = Mat::<f32>::from_fn(5, n, |_, _| r.uniform() as f32);
        let seq = super::row_sq(&h, 5, false);
        let two = crate::linalg::with_threads(2, || super::row_sq(&h, 5, true)).unwrap();
        assert_eq!(seq, two);
        for (i, &v) in seq.iter().enumerate() {
            let direct: f64 = (0..n).map(|j| (h[(i, j)] as f64).powi(2)).sum();
            assert!((v - direct).abs() <= 1e-12 * direct, "{v} {direct}");
        }
    }

    /// An atom unbalanced by `2^±30` is balanced back by an exact power of two: `WH`, `Q` and
    /// `T` keep their bits (up to the scaling), the other atoms are untouched.
    #[test]
    fn balancing_rescales_only_the_drifted_atom_and_keeps_wh() {
        let mut r = Rng::new(4);
        let (m, n, k) = (30, 20, 4);
        let x = Mat::<f64>::from_fn(m, n, |_, _| r.uniform());
        let mut f = Factors {
            wt: Mat::<f64>::from_fn(k, m, |_, _| r.uniform() + 0.1),
            h: Mat::<f64>::from_fn(k, n, |_, _| r.uniform() + 0.1),
        };
        let (w0, h0) = (f.wt.clone(), f.h.clone());
        for p in 0..m {
            f.wt[(1, p)] *= 2f64.powi(-30);
        }
        for i in 0..n {
            f.h[(1, i)] *= 2f64.powi(30);
        }
        let wh = |f: &Factors<f64>| f.wt.transpose() * &f.h;
        let before = wh(&f);
        let mut s = GramSolver::new(
            x.as_ref(),
            k,
            Rule::Anls,
            Penalty::default(),
            Penalty::default(),
            Par::Seq,
        );
        s.initial(&mut f);
        s.balance_atoms(&mut f);
        assert_eq!(s.rebalanced, 1);
        let after = wh(&f);
        for j in 0..n {
            for i in 0..m {
                assert_eq!(before[(i, j)].to_bits(), after[(i, j)].to_bits());
            }
        }
        // Atom 1's norms were within 2² of each other: it is back to its bits exactly.
        assert_eq!(f.wt, w0);
        assert_eq!(f.h, h0);
        let q = f.wt.as_ref() * f.wt.transpose();
        let t = f.h.as_ref() * f.h.transpose();
        for j in 0..k {
            for i in 0..k {
                assert_eq!(s.q[(i, j)].to_bits(), q[(i, j)].to_bits());
                assert_eq!(s.t[(i, j)].to_bits(), t[(i, j)].to_bits());
            }
        }
        // Balanced atoms are left alone.
        s.balance_atoms(&mut f);
        assert_eq!(s.rebalanced, 1);
        assert_eq!(f.wt, w0);
    }
}
