//! HALS and ANLS with missing entries (METHODS.md §11.2): every code `h_j` is solved against its
//! own observed features `Ωⱼ`, every atom row `w_i` against its own observed samples, each with
//! its own Gram.
//!
//! For one side (codes: `F = H`, the fixed factor `O = Wᵀ`, columns = samples; atoms: `F = Wᵀ`,
//! `O = H`, columns = features) and its column `c`: the cross term is a plain product with the
//! zero-filled data, `C = O·X₀` (`k × N`), and the Gram is formed from whichever of the hidden
//! or observed sets is smaller, as a small GEMM of the gathered columns of `O`:
//! `G_c = OOᵀ − O_{Ω̄}O_{Ω̄}ᵀ` or `G_c = O_Ω O_Ωᵀ` (cost `O(min(|Ω|, |Ω̄|)·k²)` per column).
//! Then HALS runs coordinate-descent sweeps on `min_{f ≥ 0} ½fᵀG_c f − fᵀc_c` (at most the
//! inner count, stopped by Gillis–Glineur's δ rule, as unmasked HALS), and ANLS solves it
//! exactly by block principal pivoting ([`linalg::nnls::solve_gram`], warm-started from the
//! current support). Every column is an independent problem written to its own slot, so the
//! result has the same bits for any thread count. The objective costs no pass over `X`:
//! `‖M_c ⊙ (x_c − O f_c)‖² = ‖x_c‖² − 2f_cᵀc_c + f_cᵀG_c f_c`, summed in column order.
//! Not done here (unlike unmasked ANLS/HALS): extrapolation and dead-atom re-seeding.

use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::super::fit_loop::{Eval, Iterate};
use super::super::init::Factors;
use super::super::options::Penalty;
use super::mask::Mask;
use crate::linalg;
use crate::real::Real;

/// Columns per parallel task.
const TASK_COLS: usize = 64;

/// How one side's columns are updated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SideRule {
    /// Only evaluate the per-column errors.
    Evaluate,
    /// Coordinate-descent sweeps (HALS): at most `sweeps`, δ rule of Gillis & Glineur.
    Cd { sweeps: usize, delta: f64 },
    /// Exact NNLS by block principal pivoting (ANLS, masked encode).
    Exact,
}

/// Work counters of one side's update.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SideStats {
    pub column_sweeps: u64,
    pub nnls_rounds: usize,
}

/// One side of a masked factor update (module doc). `f` is `k × N`, `full = OOᵀ`, `cross = O·X₀`
/// (`k × N`), `other = O` (`k × M`); `flags(c)` are column `c`'s observed flags over `O`'s
/// columns and `hidden[c]` their count of `false`; `x_sq[c] = ‖x_c‖²` over the observed entries.
/// Returns the per-column squared errors after the update and the work done.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_side<'m, T: Real>(
    mut f: MatMut<'_, T>,
    full: MatRef<'_, T>,
    cross: MatRef<'_, T>,
    other: MatRef<'_, T>,
    flags: &(dyn Fn(usize) -> &'m [bool] + Sync),
    hidden: &[usize],
    x_sq: &[f64],
    rule: SideRule,
    pen: Penalty,
    par: Par,
) -> (Vec<f64>, SideStats) {
    let k = f.nrows();
    let n_other = other.ncols();
    let task = |c0: usize, mut fc: MatMut<'_, T>| -> (Vec<f64>, SideStats) {
        let mut g = Mat::<T>::zeros(k, k);
        let mut sub = Mat::<T>::zeros(k, k);
        let mut gathered = Mat::<T>::zeros(k, n_other.div_ceil(2).max(1));
        let mut idx = Vec::with_capacity(n_other);
        let mut rhs = Mat::<T>::zeros(k, 1);
        let mut col = vec![T::zero(); k];
        let mut grad = vec![T::zero(); k];
        let mut errs = Vec::with_capacity(fc.ncols());
        let mut stats = SideStats::default();
        for jj in 0..fc.ncols() {
            let c = c0 + jj;
            // G_c from the smaller of the hidden and observed sets.
            let fl = flags(c);
            let complement = 2 * hidden[c] <= n_other;
            idx.clear();
            idx.extend((0..n_other).filter(|&s| fl[s] != complement));
            g.copy_from(full);
            if !idx.is_empty() {
                let mut gv = gathered.as_mut().subcols_mut(0, idx.len());
                for (t, &s) in idx.iter().enumerate() {
                    for a in 0..k {
                        gv[(a, t)] = other[(a, s)];
                    }
                }
                linalg::gram(sub.as_mut(), gathered.as_ref().subcols(0, idx.len()), Par::Seq);
                if complement {
                    for b in 0..k {
                        for a in 0..k {
                            g[(a, b)] -= sub[(a, b)];
                        }
                    }
                } else {
                    g.copy_from(&sub);
                }
            } else if !complement {
                g.fill(T::zero());
            }
            for a in 0..k {
                col[a] = fc[(a, jj)];
            }
            match rule {
                SideRule::Evaluate => {}
                SideRule::Cd { sweeps, delta } => {
                    let cc: Vec<T> = (0..k).map(|a| cross[(a, c)]).collect();
                    let done = cd_column(&g, &cc, &mut col, &mut grad, pen, sweeps, delta);
                    stats.column_sweeps += done as u64;
                }
                SideRule::Exact => {
                    let l2 = T::from_f64(pen.l2);
                    let l1 = T::from_f64(pen.l1);
                    for a in 0..k {
                        rhs[(a, 0)] = cross[(a, c)] - l1;
                    }
                    if pen.l2 != 0.0 {
                        sub.copy_from(&g);
                        for a in 0..k {
                            sub[(a, a)] += l2;
                        }
                    }
                    let gram = if pen.l2 != 0.0 { sub.as_ref() } else { g.as_ref() };
                    let opts = linalg::nnls::NnlsOptions::default();
                    let mut out = fc.as_mut().subcols_mut(jj, 1);
                    // Errors only come from non-finite inputs; the fit loop then reports the
                    // non-finite objective.
                    if let Ok(s) =
                        linalg::nnls::solve_gram(gram, rhs.as_ref(), out.as_mut(), true, &opts, Par::Seq)
                    {
                        stats.nnls_rounds = stats.nnls_rounds.max(s.rounds);
                    }
                    for a in 0..k {
                        col[a] = out[(a, 0)];
                    }
                }
            }
            // ‖x_c‖² − 2 fᵀc + fᵀ G f.
            let mut e = x_sq[c];
            for a in 0..k {
                let fa = col[a].to_f64();
                if fa == 0.0 {
                    continue;
                }
                let mut gf = 0.0;
                for b in 0..k {
                    gf += g[(a, b)].to_f64() * col[b].to_f64();
                }
                e += fa * (gf - 2.0 * cross[(a, c)].to_f64());
            }
            errs.push(e);
            for a in 0..k {
                fc[(a, jj)] = col[a];
            }
        }
        (errs, stats)
    };
    let parts: Vec<(Vec<f64>, SideStats)> = if matches!(par, Par::Seq) {
        let n = f.ncols();
        let mut out = Vec::new();
        let mut c0 = 0;
        while c0 < n {
            let w = TASK_COLS.min(n - c0);
            out.push(task(c0, f.as_mut().subcols_mut(c0, w)));
            c0 += w;
        }
        out
    } else {
        f.par_col_chunks_mut(TASK_COLS)
            .enumerate()
            .map(|(t, fc)| task(t * TASK_COLS, fc))
            .collect()
    };
    let mut errs = Vec::with_capacity(hidden.len());
    let mut stats = SideStats::default();
    for (e, s) in parts {
        errs.extend(e);
        stats.column_sweeps += s.column_sweeps;
        stats.nnls_rounds = stats.nnls_rounds.max(s.nnls_rounds);
    }
    (errs, stats)
}

/// Coordinate-descent sweeps on `min_{f ≥ 0} ½fᵀGf − fᵀc + l1·Σf + ½l2‖f‖²` (the HALS update
/// of one column, METHODS.md §1.4): each coordinate is minimized exactly, so the objective never
/// rises. At most `sweeps`; stops when a sweep moves `f` by at most `delta` times the first
/// sweep's move (Gillis & Glineur), or not at all. Returns the sweeps done.
fn cd_column<T: Real>(
    g: &Mat<T>,
    c: &[T],
    f: &mut [T],
    grad: &mut [T],
    pen: Penalty,
    sweeps: usize,
    delta: f64,
) -> usize {
    let k = f.len();
    let (l1, l2) = (T::from_f64(pen.l1), T::from_f64(pen.l2));
    for a in 0..k {
        let ga = g.col_as_slice(a);
        let mut s = l1 + l2 * f[a] - c[a];
        for b in 0..k {
            s += ga[b] * f[b];
        }
        grad[a] = s;
    }
    let mut first = 0.0;
    for s in 0..sweeps {
        let mut moved = 0.0;
        for a in 0..k {
            let d = g[(a, a)] + l2;
            if d.is_nan() || d <= T::zero() {
                continue;
            }
            let new = (f[a] - grad[a] / d).max(T::zero());
            let step = new - f[a];
            if step != T::zero() {
                let ga = g.col_as_slice(a);
                for b in 0..k {
                    grad[b] += step * ga[b];
                }
                grad[a] += l2 * step;
                f[a] = new;
                moved += step.to_f64() * step.to_f64();
            }
        }
        if s == 0 {
            first = moved;
        }
        if moved == 0.0 || (s > 0 && moved <= delta * delta * first) {
            return s + 1;
        }
    }
    sweeps
}

/// The HALS / ANLS update rule of [`MaskedGram`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum MaskedRule {
    /// HALS: at most `inner_codes` / `inner_atoms` CD sweeps per column, δ rule.
    Hals {
        inner_codes: usize,
        inner_atoms: usize,
        delta: f64,
    },
    /// ANLS: exact NNLS per column.
    Anls,
}

/// Masked HALS / ANLS inside the shared fit loop (module doc).
pub(crate) struct MaskedGram<'a, T: Real> {
    x0: MatRef<'a, T>,
    mask: &'a Mask,
    rule: MaskedRule,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: Par,
    q: Mat<T>,
    p: Mat<T>,
    t: Mat<T>,
    r: Mat<T>,
    /// `‖x_j‖²` over the observed entries, per sample and per feature.
    sample_sq: Vec<f64>,
    feature_sq: Vec<f64>,
    /// Work counters.
    pub column_sweeps: u64,
    pub nnls_rounds: u64,
}

impl<'a, T: Real> MaskedGram<'a, T> {
    /// `x0` is `m × n` (samples as columns, hidden entries 0).
    pub fn new(
        x0: MatRef<'a, T>,
        mask: &'a Mask,
        k: usize,
        rule: MaskedRule,
        codes_pen: Penalty,
        atoms_pen: Penalty,
        par: Par,
    ) -> Self {
        let (m, n) = (x0.nrows(), x0.ncols());
        let sample_sq = (0..n)
            .map(|j| (0..m).map(|i| x0[(i, j)].to_f64().powi(2)).sum())
            .collect();
        let feature_sq = (0..m)
            .map(|i| (0..n).map(|j| x0[(i, j)].to_f64().powi(2)).sum())
            .collect();
        MaskedGram {
            x0,
            mask,
            rule,
            codes_pen,
            atoms_pen,
            par,
            q: Mat::zeros(k, k),
            p: Mat::zeros(k, n),
            t: Mat::zeros(k, k),
            r: Mat::zeros(k, m),
            sample_sq,
            feature_sq,
            column_sweeps: 0,
            nnls_rounds: 0,
        }
    }

    /// Codes update for the current atoms.
    fn codes(&mut self, f: &mut Factors<T>, rule: SideRule) -> Vec<f64> {
        linalg::gram(self.q.as_mut(), f.wt.as_ref(), self.par);
        linalg::matmul(
            self.p.as_mut(),
            Accum::Replace,
            f.wt.as_ref(),
            self.x0,
            T::one(),
            self.par,
        );
        let mask = self.mask;
        let (errs, s) = solve_side(
            f.h.as_mut(),
            self.q.as_ref(),
            self.p.as_ref(),
            f.wt.as_ref(),
            &|j| mask.sample_flags(j),
            mask.hidden_per_sample(),
            &self.sample_sq,
            rule,
            self.codes_pen,
            self.par,
        );
        self.column_sweeps += s.column_sweeps;
        self.nnls_rounds += s.nnls_rounds as u64;
        errs
    }

    /// Atoms update (or evaluation) for the current codes; returns the evaluation after it.
    fn atoms(&mut self, f: &mut Factors<T>, rule: SideRule) -> Eval {
        linalg::gram(self.t.as_mut(), f.h.as_ref(), self.par);
        linalg::matmul(
            self.r.as_mut(),
            Accum::Replace,
            f.h.as_ref(),
            self.x0.transpose(),
            T::one(),
            self.par,
        );
        let mask = self.mask;
        let (errs, s) = solve_side(
            f.wt.as_mut(),
            self.t.as_ref(),
            self.r.as_ref(),
            f.h.as_ref(),
            &|i| mask.feature_flags(i),
            mask.hidden_per_feature(),
            &self.feature_sq,
            rule,
            self.atoms_pen,
            self.par,
        );
        self.column_sweeps += s.column_sweeps;
        self.nnls_rounds += s.nnls_rounds as u64;
        eval(&errs, self.codes_pen, self.atoms_pen, f)
    }
}

/// The evaluation from per-column squared errors (summed in column order) and the penalties.
pub(crate) fn eval<T: Real>(errs: &[f64], codes_pen: Penalty, atoms_pen: Penalty, f: &Factors<T>) -> Eval {
    let sq_error = errs.iter().sum::<f64>().max(0.0);
    let pen = |p: Penalty, m: MatRef<'_, T>| {
        if p.is_zero() {
            0.0
        } else {
            let (s, s2) = super::super::frobenius::sums(m);
            p.value(s, s2)
        }
    };
    Eval {
        objective: 0.5 * sq_error + pen(codes_pen, f.h.as_ref()) + pen(atoms_pen, f.wt.as_ref()),
        sq_error,
    }
}

impl<T: Real> Iterate<T> for MaskedGram<'_, T> {
    /// The work counters (the factors determine everything else).
    fn state(&self) -> serde_json::Value {
        serde_json::json!([self.column_sweeps, self.nnls_rounds])
    }

    fn set_state(&mut self, state: &serde_json::Value) -> crate::error::Result<()> {
        let (sweeps, rounds): (u64, u64) = serde_json::from_value(state.clone()).map_err(|e| {
            crate::Error::invalid(
                "resume",
                "checkpoint",
                format!("unreadable solver state ({e}); the checkpoint is damaged"),
            )
        })?;
        self.column_sweeps = sweeps;
        self.nnls_rounds = rounds;
        Ok(())
    }

    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.atoms(f, SideRule::Evaluate)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        let (codes, atoms) = match self.rule {
            MaskedRule::Hals {
                inner_codes,
                inner_atoms,
                delta,
            } => (
                SideRule::Cd {
                    sweeps: inner_codes,
                    delta,
                },
                SideRule::Cd {
                    sweeps: inner_atoms,
                    delta,
                },
            ),
            MaskedRule::Anls => (SideRule::Exact, SideRule::Exact),
        };
        self.codes(f, codes);
        self.atoms(f, atoms)
    }
}
