//! Re-seeding of dead atoms for [`super::GramSolver`] (METHODS.md §1.8), across processes when
//! the fit is distributed.

use super::super::init::Factors;
use super::{GramSolver, Rule, RESEED_COOLDOWN};
use crate::real::Real;

impl<T: Real> GramSolver<'_, T> {
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
