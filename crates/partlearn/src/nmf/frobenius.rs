//! Frobenius-loss solvers that work on Gram matrices and cross terms: HALS with accelerated inner
//! repetitions (METHODS.md §1.4) and multiplicative updates (§1.2), both with the L1/L2 penalties
//! of §1.5.
//!
//! Per iteration: codes with `Q = WᵀW`, `P = WᵀX` (or `(WᵀU)B` from a sketch `X ≈ UB`, see
//! [`super::compress`]); atoms with `T = HHᵀ`, `R = HXᵀ` (always on `X`). The objective
//! then costs no pass over `X`: `‖X − WH‖² = ‖X‖² − 2⟨Wᵀ, R⟩ + ⟨WᵀW, T⟩`, and the new `WᵀW` is
//! the next iteration's `Q`.

use faer::{Accum, Mat, MatMut, MatRef, Par};

use super::cd::{self, SweepRule};
use super::compress::Sketch;
use super::data_op::XRef;
use super::fit_loop::{Eval, Iterate};
use super::init::Factors;
use super::options::Penalty;
use crate::dist::Part;
use crate::engine::{StopReason, TOL_EVERY};
use crate::linalg;
use crate::real::Real;

#[path = "frobenius_mu.rs"]
mod mu;
#[path = "frobenius_reseed.rs"]
mod reseed;
use mu::mu_frobenius_step;

/// The factor update used inside [`GramSolver`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Rule {
    /// HALS: coordinate-descent sweeps, at most `inner_codes` / `inner_atoms` per factor, stopped
    /// early by the `delta` rule of Gillis & Glineur.
    Hals {
        inner_codes: usize,
        inner_atoms: usize,
        delta: f64,
    },
    /// Lee–Seung multiplicative updates with the floor `ε` of METHODS.md §1.2.
    Mu,
    /// Exact NNLS for each factor by block principal pivoting (ANLS, §1.3), warm-started from
    /// the current factor's support. Penalties enter as `G + l2·I` and `C − l1`.
    Anls,
}

/// ANLS: coordinate-descent sweeps that predict each column's passive set before the exact
/// block-principal-pivoting solve. With bordered updates (`nnls`) a wrong prediction costs less,
/// and 3 sweeps beat 4 in each of four alternating `bench nnls` pairs (CD + BPP after 6 and 15
/// iterations: 0.122/0.126 s against 0.125/0.126, 0.133/0.138 against 0.142/0.143).
pub const ANLS_PREDICT_SWEEPS: usize = 3;

/// When ANLS predicts the passive sets by [`ANLS_PREDICT_SWEEPS`] CD sweeps, decided per factor
/// from the factorizations per column of its previous exact solve, with hysteresis: the
/// prediction starts on, goes off once a solve with it needs at most this many factorizations
/// per column (the prediction and the warm start were right almost everywhere), and comes back
/// when a solve without it needs more than [`ANLS_PREDICT_ON_ABOVE`]. With bordered updates a
/// start from the previous support alone is cheap to correct once the codes settle, and the
/// sweeps then cost more than they save. Measured inside the fit (Fashion-MNIST, 60000 × 784,
/// k = 100, 2 threads, extrapolation on; a temporary probe, not shipped, timed both variants
/// of every codes update on the same state, alternating their order, two runs each):
///
/// | iteration | 4 | 8 | 12 | 16 | 20 | 25 | 30 |
/// |---|---|---|---|---|---|---|---|
/// | CD + BPP, s | 0.143 | 0.147 | 0.134 | 0.154 | 0.157 | 0.180 | 0.185 |
/// | BPP alone, s | 0.150 | 0.161 | 0.143 | 0.162 | 0.147 | 0.166 | 0.153 |
/// | factorizations / column with CD | 2.14 | 1.22 | 1.09 | 1.06 | 1.054 | 1.043 | 1.031 |
/// | factorizations / column without | 3.14 | 1.71 | 1.36 | 1.27 | 1.21 | 1.16 | 1.11 |
///
/// The crossover is near iteration 18 there, where the solves with CD need ≈ 1.05
/// factorizations per column. A second run timing 3, 2 and 0 sweeps the same way confirmed it:
/// no sweeps were 7–13 % faster from iteration 21 on, and 2 sweeps were no better than 3
/// before. (`bench nnls`, whose single step follows an exact atoms update of the final codes,
/// put it near iteration 5: its warm start is better than the fit's.)
pub(crate) const ANLS_PREDICT_OFF_AT_MOST: f64 = 1.05;
/// Factorizations per column of a solve without the prediction above which it comes back on
/// ([`ANLS_PREDICT_OFF_AT_MOST`]).
pub(crate) const ANLS_PREDICT_ON_ABOVE: f64 = 1.5;

/// ANLS's passive-set prediction: `sweeps` plain coordinate-descent sweeps on
/// `min_{F ≥ 0} ½ tr(FᵀGF) − tr(CᵀF)` from `from` (or the current `f`) into `f` (the block
/// principal pivoting that follows makes the solution exact whatever the prediction was).
pub(crate) fn anls_predict<T: Real>(
    from: Option<MatRef<'_, T>>,
    f: MatMut<'_, T>,
    g: MatRef<'_, T>,
    c: MatRef<'_, T>,
    sweeps: usize,
    parallel: bool,
) -> cd::SweepStats {
    let rule = SweepRule {
        max_sweeps: sweeps,
        delta: 0.0,
        tol: 0.0,
        floor: 0.0,
    };
    cd::sweep_from(from, f, g, c, 0.0, 0.0, rule, parallel)
}

/// Iterations before an atom re-seeded in vain is re-seeded again (the search for the worst
/// sample costs `O(n·k²)`).
pub(crate) const RESEED_COOLDOWN: usize = 20;

/// Lower bound of MU iterates (METHODS.md §1.2: keeps them strictly positive).
pub(crate) const MU_FLOOR: f64 = 1e-16;

/// Extrapolation with restarts (Ang & Gillis 2019, "Accelerating nonnegative matrix
/// factorization algorithms using extrapolation"), in a monotone form: after the codes update
/// `H⁺`, the atoms are updated for `Ĥ = [H⁺ + β(H⁺ − H)]₊`; the pair is kept if its objective is
/// below the previous one, otherwise the iteration restarts from `H⁺` with a plain atoms update
/// (so the reported objective never increases). `β` grows by γ = 1.05 (capped by `β̄`, which
/// grows by γ̄ = 1.01 up to 1) after a success and shrinks by η = 1.5 after a failure (`β̄ ← β`);
/// β₀ = 0.5. Extrapolating the atoms too was measured and dropped: after HALS's inner sweeps on
/// the atoms, the extrapolated atoms never lowered the objective (0 of 110 tries on Fashion-MNIST).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Extrapolation {
    pub beta: f64,
    pub beta_max: f64,
    /// Accepted and rejected extrapolations so far.
    pub accepted: u64,
    pub rejected: u64,
}

impl Default for Extrapolation {
    fn default() -> Self {
        Extrapolation {
            beta: 0.5,
            beta_max: 1.0,
            accepted: 0,
            rejected: 0,
        }
    }
}

/// Workspaces and settings of a Frobenius fit; allocated once.
pub(crate) struct GramSolver<'a, T: Real> {
    /// The data, dense or sparse ([`XRef`]).
    x: XRef<'a, T>,
    x_sq: f64,
    rule: Rule,
    codes_pen: Penalty,
    atoms_pen: Penalty,
    par: Par,
    q: Mat<T>,
    p: Mat<T>,
    t: Mat<T>,
    r: Mat<T>,
    /// MU only: `G·F` for the codes and the atoms.
    gh: Mat<T>,
    gw: Mat<T>,
    /// Column sweeps done (for the benchmark's flop count).
    pub column_sweeps: u64,
    /// ANLS: NNLS exchange rounds (slowest column of each solve), summed.
    pub nnls_rounds: u64,
    /// ANLS: whether the next codes / atoms solve predicts its passive sets
    /// ([`ANLS_PREDICT_OFF_AT_MOST`]).
    anls_predict: [bool; 2],
    /// ANLS and HALS: atoms found dead (all zero, or unused) and re-seeded with a sample.
    pub reseeded: u64,
    /// ANLS and HALS: atoms rescaled between `W` and `H` (`balance_atoms`).
    pub rebalanced: u64,
    /// Iterations done, and the iteration of each atom's last re-seeding (an atom re-seeded in
    /// vain is not tried again for [`RESEED_COOLDOWN`] iterations).
    iters: usize,
    last_reseed: Vec<Option<usize>>,
    /// ANLS with penalties: the penalized Gram and cross terms.
    pen_g: Mat<T>,
    pen_c: Mat<T>,
    /// Extrapolation state and workspaces: the atoms at the start of the iteration, and the
    /// codes update `H⁺` (written here, so that the codes at the start of the iteration stay in
    /// place for the extrapolation, without a copy).
    pub extrapolation: Option<Extrapolation>,
    prev_wt: Option<Mat<T>>,
    plus_h: Option<Mat<T>>,
    /// Objective of the current factors.
    last_objective: f64,
    /// `P = WᵀX` is already computed for the current atoms (by [`Iterate::projected_gradient`]).
    p_fresh: bool,
    /// Gradient workspaces of the projected-gradient rule (allocated on first use).
    grad: Option<Factors<T>>,
    /// Compression ([`super::compress`]): the sketch `X ≈ UB` the codes' cross term is formed
    /// from, and the `k × l` workspace `WᵀU`; `None` for exact iterations.
    sketch: Option<Sketch<T>>,
    wu: Mat<T>,
    /// Compression: `‖B‖²` (= `‖UUᵀX‖²`) and the `k × l` workspace `HBᵀ`.
    b_sq: f64,
    hb: Mat<T>,
    /// The rows of `X` this process holds and the processes' communicator ([`crate::dist`]):
    /// `T`, `R`, `‖X‖²` and the codes' terms of the objective are summed over processes.
    part: Part<'a>,
}

impl<'a, T: Real> GramSolver<'a, T> {
    /// `x` is `m × n` (samples as columns; dense or sparse), `k` the rank.
    pub fn new(
        x: impl Into<XRef<'a, T>>,
        k: usize,
        rule: Rule,
        codes_pen: Penalty,
        atoms_pen: Penalty,
        par: Par,
    ) -> Self {
        let x = x.into();
        let (m, n) = (x.nrows(), x.ncols());
        let mu = rule == Rule::Mu;
        GramSolver {
            x,
            x_sq: x.frob_sq(),
            rule,
            codes_pen,
            atoms_pen,
            par,
            q: Mat::zeros(k, k),
            p: Mat::zeros(k, n),
            t: Mat::zeros(k, k),
            r: Mat::zeros(k, m),
            gh: if mu { Mat::zeros(k, n) } else { Mat::zeros(0, 0) },
            gw: if mu { Mat::zeros(k, m) } else { Mat::zeros(0, 0) },
            column_sweeps: 0,
            nnls_rounds: 0,
            anls_predict: [true; 2],
            reseeded: 0,
            rebalanced: 0,
            iters: 0,
            last_reseed: vec![None; k],
            pen_g: Mat::zeros(0, 0),
            pen_c: Mat::zeros(0, 0),
            extrapolation: None,
            prev_wt: None,
            plus_h: None,
            last_objective: f64::INFINITY,
            p_fresh: false,
            grad: None,
            sketch: None,
            wu: Mat::zeros(0, 0),
            b_sq: 0.0,
            hb: Mat::zeros(0, 0),
            part: Part::single(n),
        }
    }

    /// Runs on this process's block of samples `part` (1-D row distribution, [`crate::dist`]):
    /// every reduction goes through `part.comm`. Not with a sketch.
    pub fn with_part(mut self, part: Part<'a>) -> Self {
        self.part = part;
        self.x_sq = part.sum1_all(self.x_sq);
        self
    }

    /// Sums `mats` and `extra` over the processes holding the other samples (`over_samples`:
    /// the codes' terms `T`, `R`) or the other features (the atoms' terms `Q`, `P`) of this
    /// process's block (nothing in one process: same bits as before).
    fn reduce(&self, mats: &mut [&mut Mat<T>], extra: &mut [f64], over_samples: bool) {
        let needed = if over_samples {
            self.part.splits_samples()
        } else {
            self.part.splits_features()
        };
        if !needed {
            return;
        }
        let len: usize = mats.iter().map(|m| m.nrows() * m.ncols()).sum::<usize>() + extra.len();
        let mut buf = Vec::with_capacity(len);
        for m in mats.iter() {
            for j in 0..m.ncols() {
                buf.extend(m.col_as_slice(j).iter().map(|&v| v.to_f64()));
            }
        }
        buf.extend_from_slice(extra);
        if over_samples {
            self.part.sum_samples(&mut buf);
        } else {
            self.part.sum_features(&mut buf);
        }
        let mut it = buf.iter();
        for m in mats.iter_mut() {
            for j in 0..m.ncols() {
                for v in m.col_as_slice_mut(j) {
                    *v = T::from_f64(*it.next().unwrap_or(&0.0));
                }
            }
        }
        for (e, v) in extra.iter_mut().zip(it) {
            *e = *v;
        }
    }

    /// `T = HHᵀ` and `R = HXᵀ` (exact or sketched) from the local codes, summed over processes.
    fn atoms_terms(&mut self, h: MatRef<'_, T>, exact: bool) {
        linalg::gram(self.t.as_mut(), h, self.par);
        if exact {
            self.exact_atoms_cross(h);
        } else {
            self.atoms_cross(h);
        }
        let (mut t, mut r) = (
            std::mem::replace(&mut self.t, Mat::new()),
            std::mem::replace(&mut self.r, Mat::new()),
        );
        self.reduce(&mut [&mut t, &mut r], &mut [], true);
        (self.t, self.r) = (t, r);
    }

    /// `Q = WᵀW` from this process's atoms' entries, summed over the processes holding the
    /// other features.
    fn atoms_gram(&mut self, wt: MatRef<'_, T>) {
        linalg::gram(self.q.as_mut(), wt, self.par);
        if self.part.splits_features() {
            let mut q = std::mem::replace(&mut self.q, Mat::new());
            self.reduce(&mut [&mut q], &mut [], false);
            self.q = q;
        }
    }

    /// Forms the codes' cross term from `sketch` instead of `X` until
    /// [`Self::end_compression`] ([`super::compress`]).
    pub fn with_sketch(mut self, sketch: Sketch<T>) -> Self {
        self.wu = Mat::zeros(self.q.nrows(), sketch.u.ncols());
        self.hb = Mat::zeros(self.q.nrows(), sketch.u.ncols());
        self.b_sq = linalg::frob_sq(sketch.b.as_ref());
        self.sketch = Some(sketch);
        self
    }

    /// Exact iterations from now on (the polish after the compressed ones).
    pub fn end_compression(&mut self) {
        self.sketch = None;
        self.wu = Mat::zeros(0, 0);
        self.hb = Mat::zeros(0, 0);
        self.p_fresh = false;
    }

    /// `P = WᵀX`, or `(WᵀU)·B` with a sketch (`O(k·l·(m + n))` instead of `O(k·m·n)`).
    fn codes_cross(&mut self, wt: MatRef<'_, T>) {
        match &self.sketch {
            Some(s) => {
                linalg::matmul(
                    self.wu.as_mut(),
                    Accum::Replace,
                    wt,
                    s.u.as_ref(),
                    T::one(),
                    self.par,
                );
                linalg::matmul(
                    self.p.as_mut(),
                    Accum::Replace,
                    self.wu.as_ref(),
                    s.b.as_ref(),
                    T::one(),
                    self.par,
                );
            }
            None => {
                self.x.codes_cross(self.p.as_mut(), wt, self.par);
                if self.part.splits_features() {
                    let mut p = std::mem::replace(&mut self.p, Mat::new());
                    self.reduce(&mut [&mut p], &mut [], false);
                    self.p = p;
                }
            }
        }
    }

    /// `R = HXᵀ`, or `(HBᵀ)·Uᵀ` with a sketch: the cross term of `X̂ = UB`, so that both
    /// updates are exact steps on `‖X̂ − WH‖²` (and the atoms stay non-negative without a
    /// projection).
    fn atoms_cross(&mut self, h: MatRef<'_, T>) {
        match &self.sketch {
            Some(s) => {
                linalg::matmul(
                    self.hb.as_mut(),
                    Accum::Replace,
                    h,
                    s.b.transpose(),
                    T::one(),
                    self.par,
                );
                linalg::matmul(
                    self.r.as_mut(),
                    Accum::Replace,
                    self.hb.as_ref(),
                    s.u.transpose(),
                    T::one(),
                    self.par,
                );
            }
            None => self.exact_atoms_cross(h),
        }
    }

    /// `R = HXᵀ` on the full `X`.
    fn exact_atoms_cross(&mut self, h: MatRef<'_, T>) {
        self.x.atoms_cross(self.r.as_mut(), h, self.par);
    }

    /// Turns on extrapolation ([`Extrapolation`]).
    pub fn with_extrapolation(mut self) -> Self {
        let (k, m, n) = (self.q.nrows(), self.x.nrows(), self.x.ncols());
        self.extrapolation = Some(Extrapolation::default());
        self.prev_wt = Some(Mat::zeros(k, m));
        self.plus_h = Some(Mat::zeros(k, n));
        self
    }

    fn parallel(&self) -> bool {
        !matches!(self.par, Par::Seq)
    }

    /// Evaluation with `T`, `R` from the current codes and `Q` from the current atoms: of
    /// `‖X̂ − WH‖²` with a sketch (`‖X̂‖² = ‖B‖²`), of `‖X − WH‖²` without.
    fn eval(&self, f: &Factors<T>) -> Eval {
        let data_sq = if self.sketch.is_some() {
            self.b_sq
        } else {
            self.x_sq
        };
        self.eval_on(data_sq, f)
    }

    /// [`Self::eval`] with `‖X‖²` (or `‖X̂‖²`) given.
    fn eval_on(&self, data_sq: f64, f: &Factors<T>) -> Eval {
        let wr = self
            .part
            .sum1_features(linalg::inner(f.wt.as_ref(), self.r.as_ref()));
        let sq_error = (data_sq - 2.0 * wr + linalg::inner(self.q.as_ref(), self.t.as_ref())).max(0.0);
        Eval {
            objective: 0.5 * sq_error + self.penalties(f),
            sq_error,
        }
    }

    /// Penalty terms of the objective (METHODS.md §1.5); the codes' part summed over the
    /// processes holding the other samples, the atoms' over those holding the other features.
    fn penalties(&self, f: &Factors<T>) -> f64 {
        let codes = if self.codes_pen.is_zero() {
            0.0
        } else {
            let (s, s2) = sums(f.h.as_ref());
            let mut b = [s, s2];
            self.part.sum_samples(&mut b);
            self.codes_pen.value(b[0], b[1])
        };
        let atoms = if self.atoms_pen.is_zero() {
            0.0
        } else {
            let (s, s2) = sums(f.wt.as_ref());
            let mut b = [s, s2];
            self.part.sum_features(&mut b);
            self.atoms_pen.value(b[0], b[1])
        };
        codes + atoms
    }

    /// One factor's update. With extrapolation the codes update reads the current codes `f.h`
    /// and writes `H⁺` into `plus_h` ([`Self::extrapolated_step`] then forms `Ĥ` in `f.h`).
    fn update(&mut self, codes: bool, f: &mut Factors<T>) {
        let parallel = self.parallel();
        let mut from = None;
        let (target, g, c, pen, work) = if codes {
            let target = match self.plus_h.as_mut() {
                Some(plus) => {
                    from = Some(f.h.as_ref());
                    plus.as_mut()
                }
                None => f.h.as_mut(),
            };
            (
                target,
                self.q.as_ref(),
                self.p.as_ref(),
                self.codes_pen,
                &mut self.gh,
            )
        } else {
            (
                f.wt.as_mut(),
                self.t.as_ref(),
                self.r.as_ref(),
                self.atoms_pen,
                &mut self.gw,
            )
        };
        match self.rule {
            Rule::Hals {
                inner_codes,
                inner_atoms,
                delta,
            } => {
                let rule = SweepRule {
                    max_sweeps: if codes { inner_codes } else { inner_atoms },
                    delta,
                    tol: 0.0,
                    floor: 0.0,
                };
                let s = cd::sweep_from(from, target, g, c, pen.l1, pen.l2, rule, parallel);
                self.column_sweeps += s.column_sweeps;
            }
            Rule::Anls => {
                let (g, c) = if pen.is_zero() {
                    (g, c)
                } else {
                    // G + l2·I and C − l1 (METHODS.md §1.5's CD form, exact for NNLS).
                    self.pen_g.resize_with(g.nrows(), g.ncols(), |i, j| g[(i, j)]);
                    self.pen_g.copy_from(g);
                    for i in 0..g.nrows() {
                        self.pen_g[(i, i)] = self.pen_g[(i, i)] + T::from_f64(pen.l2);
                    }
                    self.pen_c.resize_with(c.nrows(), c.ncols(), |_, _| T::zero());
                    let l1 = T::from_f64(pen.l1);
                    super::beta::for_cols(self.pen_c.as_mut(), parallel, |j, col| {
                        for (i, v) in col.iter_mut().enumerate() {
                            *v = c[(i, j)] - l1;
                        }
                    });
                    (self.pen_g.as_ref(), self.pen_c.as_ref())
                };
                // While the passive sets move a lot (the first iterations), a few
                // coordinate-descent sweeps (cheap, vectorized) predict them; later BPP starts
                // from the current factor's support alone ([`ANLS_PREDICT_OFF_AT_MOST`]). BPP
                // makes the solution exact whatever the start.
                let mut target = target;
                let slot = usize::from(!codes);
                let opts = linalg::nnls::NnlsOptions::default();
                let n = target.ncols().max(1) as f64;
                let ncols = target.ncols() as f64;
                let solved = if self.anls_predict[slot] {
                    let sw = anls_predict(from, target.as_mut(), g, c, ANLS_PREDICT_SWEEPS, parallel);
                    self.column_sweeps += sw.column_sweeps;
                    linalg::nnls::solve_gram(g, c, target, true, &opts, self.par)
                } else {
                    match from {
                        Some(src) => linalg::nnls::solve_gram_from(g, c, src, target, &opts, self.par),
                        None => linalg::nnls::solve_gram(g, c, target, true, &opts, self.par),
                    }
                };
                // Errors only come from non-finite inputs, which the fit loop reports as a
                // non-finite objective (and stops).
                if let Ok(s) = solved {
                    self.nnls_rounds += s.rounds as u64;
                    let spread = if codes {
                        self.part.splits_samples()
                    } else {
                        self.part.splits_features()
                    };
                    let per_column = if spread {
                        // The factor is spread over processes: one decision for all.
                        let mut b = [s.factorizations as f64, ncols];
                        if codes {
                            self.part.sum_samples(&mut b);
                        } else {
                            self.part.sum_features(&mut b);
                        }
                        b[0] / b[1].max(1.0)
                    } else {
                        s.factorizations as f64 / n
                    };
                    self.anls_predict[slot] = if self.anls_predict[slot] {
                        per_column > ANLS_PREDICT_OFF_AT_MOST
                    } else {
                        per_column > ANLS_PREDICT_ON_ABOVE
                    };
                }
            }
            Rule::Mu => {
                let mut target = target;
                if let Some(src) = from {
                    target.copy_from(src);
                }
                linalg::matmul(
                    work.as_mut(),
                    Accum::Replace,
                    g,
                    target.as_ref(),
                    T::one(),
                    self.par,
                );
                mu_frobenius_step(target, c, work.as_ref(), pen, parallel);
            }
        }
    }

    /// `h ← [plus + β(plus − h)]₊` in place (floored at the MU floor for MU), over column
    /// slices.
    fn extrapolate(&self, h: &mut Mat<T>, plus: &Mat<T>, beta: f64) {
        let floor = if self.rule == Rule::Mu {
            T::from_f64(MU_FLOOR)
        } else {
            T::zero()
        };
        let b = T::from_f64(beta);
        super::beta::for_cols(h.as_mut(), self.parallel(), |j, col| {
            for (v, &c) in col.iter_mut().zip(plus.col_as_slice(j)) {
                *v = (c + b * (c - *v)).max(floor);
            }
        });
    }

    /// Atoms update for the current codes: `T = HHᵀ`, `R = HXᵀ` (or its sketched form), sweeps,
    /// `Q = WᵀW`, evaluation.
    fn atoms_step(&mut self, f: &mut Factors<T>) -> Eval {
        self.atoms_terms(f.h.as_ref(), false);
        // (The codes update can unbalance an atom again: a small atom gets large codes.)
        self.balance_atoms(f);
        self.update(false, f);
        self.atoms_gram(f.wt.as_ref());
        self.eval(f)
    }

    /// The iteration with extrapolation ([`Extrapolation`]); `f.h` holds the codes `H` at the
    /// start of the iteration, `plus_h` the new codes `H⁺` and `prev_wt` the atoms at the start.
    fn extrapolated_step(&mut self, f: &mut Factors<T>) -> Eval {
        let (Some(mut ex), Some(prev_wt), Some(mut plus)) =
            (self.extrapolation, self.prev_wt.take(), self.plus_h.take())
        else {
            return self.atoms_step(f);
        };
        // Codes: Ĥ = [H⁺ + β(H⁺ − H)]₊ replaces H, and the atoms are updated for Ĥ.
        self.extrapolate(&mut f.h, &plus, ex.beta);
        let mut e = self.atoms_step(f);
        if e.objective < self.last_objective {
            ex.accepted += 1;
            ex.beta = (ex.beta * 1.05).min(ex.beta_max);
            ex.beta_max = (ex.beta_max * 1.01).min(1.0);
        } else {
            // Restart from the plain codes H⁺ and the previous atoms: a plain, monotone step.
            ex.rejected += 1;
            ex.beta_max = ex.beta;
            ex.beta /= 1.5;
            std::mem::swap(&mut f.h, &mut plus);
            f.wt.copy_from(&prev_wt);
            e = self.atoms_step(f);
        }
        self.prev_wt = Some(prev_wt);
        self.plus_h = Some(plus);
        self.extrapolation = Some(ex);
        e
    }
}

/// What a checkpoint keeps of a [`GramSolver`] ([`Iterate::state`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct GramState {
    iters: usize,
    last_reseed: Vec<Option<usize>>,
    anls_predict: [bool; 2],
    extrapolation: Option<Extrapolation>,
    column_sweeps: u64,
    nnls_rounds: u64,
    reseeded: u64,
    #[serde(default)]
    rebalanced: u64,
}

impl<T: Real> Iterate<T> for GramSolver<'_, T> {
    fn state(&self) -> serde_json::Value {
        let g = GramState {
            iters: self.iters,
            last_reseed: self.last_reseed.clone(),
            anls_predict: self.anls_predict,
            extrapolation: self.extrapolation,
            column_sweeps: self.column_sweeps,
            nnls_rounds: self.nnls_rounds,
            reseeded: self.reseeded,
            rebalanced: self.rebalanced,
        };
        serde_json::to_value(g).unwrap_or(serde_json::Value::Null)
    }

    fn set_state(&mut self, state: &serde_json::Value) -> crate::error::Result<()> {
        let damaged = |why: String| {
            crate::Error::invalid(
                "resume",
                "checkpoint",
                format!("{why}; the checkpoint is damaged"),
            )
        };
        let g: GramState = serde_json::from_value(state.clone())
            .map_err(|e| damaged(format!("unreadable solver state ({e})")))?;
        if g.last_reseed.len() != self.last_reseed.len()
            || g.extrapolation.is_some() != self.extrapolation.is_some()
        {
            return Err(damaged(
                "the solver state does not match the fit's options".into(),
            ));
        }
        self.iters = g.iters;
        self.last_reseed = g.last_reseed;
        self.anls_predict = g.anls_predict;
        self.extrapolation = g.extrapolation;
        self.column_sweeps = g.column_sweeps;
        self.nnls_rounds = g.nnls_rounds;
        self.reseeded = g.reseeded;
        self.rebalanced = g.rebalanced;
        Ok(())
    }

    /// The exact evaluation; with a sketch, the extrapolation's reference is the compressed
    /// objective (what the iterations compare).
    fn initial(&mut self, f: &mut Factors<T>) -> Eval {
        self.atoms_gram(f.wt.as_ref());
        self.atoms_terms(f.h.as_ref(), true);
        let e = self.eval_on(self.x_sq, f);
        self.last_objective = e.objective;
        if self.sketch.is_some() {
            self.atoms_cross(f.h.as_ref());
            self.last_objective = self.eval(f).objective;
        }
        e
    }

    /// Compressed iterations are evaluated exactly every [`TOL_EVERY`] iterations (where the
    /// tolerance is tested) and at the last: the exact `‖X − WH‖²` needs `R = HXᵀ` on the full
    /// `X`, the product the compression saves.
    fn exact_every(&self) -> usize {
        if self.sketch.is_some() {
            TOL_EVERY
        } else {
            1
        }
    }

    /// `R = HXᵀ` on the full `X` (replacing the sketched `R`, which the next iteration
    /// recomputes) and the Gram identity with `Q`, `T` current.
    fn exact(&mut self, f: &mut Factors<T>) -> Eval {
        self.exact_atoms_cross(f.h.as_ref());
        let mut r = std::mem::replace(&mut self.r, Mat::new());
        self.reduce(&mut [&mut r], &mut [], true);
        self.r = r;
        self.eval_on(self.x_sq, f)
    }

    fn agree(&mut self, reason: Option<StopReason>, checkpoint_due: bool) -> (Option<StopReason>, bool) {
        agree(self.part, reason, checkpoint_due)
    }

    fn iterate(&mut self, f: &mut Factors<T>) -> Eval {
        // Codes: Q = WᵀW and T = HHᵀ are current (from `initial` or the previous iteration).
        self.balance_atoms(f);
        if !std::mem::take(&mut self.p_fresh) {
            self.codes_cross(f.wt.as_ref());
        }
        self.iters += 1;
        if self.maintains_atoms() {
            self.reseed_dead_atoms(f);
        }
        if let Some(prev_wt) = self.prev_wt.as_mut() {
            prev_wt.copy_from(&f.wt);
        }
        self.update(true, f);
        let e = if self.extrapolation.is_some() {
            self.extrapolated_step(f)
        } else {
            self.atoms_step(f)
        };
        self.last_objective = e.objective;
        e
    }

    /// `∇_H = QH − P + l1 + l2·H` and `∇_{Wᵀ} = T·Wᵀ − R + l1 + l2·Wᵀ` at the current factors
    /// (`Q`, `T`, `R` are current after every step; `P` is computed here and reused by the next
    /// iteration, so the rule costs two `k×k` by `k×N` products per iteration). MU iterates at
    /// the floor [`MU_FLOOR`] count as being at the bound.
    fn projected_gradient(&mut self, f: &Factors<T>) -> Option<f64> {
        if self.sketch.is_some() {
            return None;
        }
        let (k, m, n) = (self.q.nrows(), self.x.nrows(), self.x.ncols());
        if !self.p_fresh {
            self.codes_cross(f.wt.as_ref());
            self.p_fresh = true;
        }
        let mut g = self.grad.take().unwrap_or_else(|| Factors {
            wt: Mat::zeros(k, m),
            h: Mat::zeros(k, n),
        });
        // g ← P − QH and R − TWᵀ: the negated smooth gradients.
        g.h.copy_from(&self.p);
        linalg::matmul(
            g.h.as_mut(),
            Accum::Add,
            self.q.as_ref(),
            f.h.as_ref(),
            -T::one(),
            self.par,
        );
        g.wt.copy_from(&self.r);
        linalg::matmul(
            g.wt.as_mut(),
            Accum::Add,
            self.t.as_ref(),
            f.wt.as_ref(),
            -T::one(),
            self.par,
        );
        let bound = if self.rule == Rule::Mu { MU_FLOOR } else { 0.0 };
        let codes_sq =
            self.part
                .sum1_samples(projected_sq(f.h.as_ref(), g.h.as_ref(), self.codes_pen, bound));
        let atoms_sq =
            self.part
                .sum1_features(projected_sq(f.wt.as_ref(), g.wt.as_ref(), self.atoms_pen, bound));
        let sq = codes_sq + atoms_sq;
        self.grad = Some(g);
        Some(sq.sqrt())
    }
}

/// `Σ (∇ᴾ)²` for factor `f` with gradient `−neg + l1 + l2·f` (`neg` = the negated gradient of
/// the smooth part; METHODS.md §1.6: `∇ᴾ = ∇` where `f > bound`, `min(0, ∇)` at the bound).
/// Column partial sums are added in column order, so the result does not depend on threads.
pub(crate) fn projected_sq<T: Real>(f: MatRef<'_, T>, neg: MatRef<'_, T>, pen: Penalty, bound: f64) -> f64 {
    let mut total = 0.0;
    for j in 0..f.ncols() {
        let mut s = 0.0;
        for i in 0..f.nrows() {
            let x = f[(i, j)].to_f64();
            let g = -neg[(i, j)].to_f64() + pen.l1 + pen.l2 * x;
            let p = if x > bound { g } else { g.min(0.0) };
            s += p * p;
        }
        total += s;
    }
    total
}

/// The stopping decision of every process in `part`: the most urgent reason any of them has
/// (interrupted, then time limit, early stopping, converged, max_iter), and whether any of them
/// asks for a checkpoint (one sum of 6 numbers); both unchanged in one process.
pub(crate) fn agree(
    part: Part<'_>,
    reason: Option<StopReason>,
    checkpoint_due: bool,
) -> (Option<StopReason>, bool) {
    if !part.is_distributed() {
        return (reason, checkpoint_due);
    }
    const URGENCY: [StopReason; 5] = [
        StopReason::Interrupted,
        StopReason::TimeLimit,
        StopReason::EarlyStopped,
        StopReason::Converged,
        StopReason::MaxIter,
    ];
    // The five reasons, then "a checkpoint is due" (asked by the process with the clock).
    let mut flags = [0.0; 6];
    if let Some(r) = reason {
        if let Some(i) = URGENCY.iter().position(|&u| u == r) {
            flags[i] = 1.0;
        }
    }
    flags[5] = f64::from(u8::from(checkpoint_due));
    part.comm.sum(&mut flags);
    let reason = URGENCY.iter().zip(flags).find(|(_, f)| *f > 0.0).map(|(&u, _)| u);
    (reason, flags[5] > 0.0)
}

/// `(Σ f, Σ f²)` in f64, column by column (thread-independent).
pub(crate) fn sums<T: Real>(f: MatRef<'_, T>) -> (f64, f64) {
    let (mut s, mut s2) = (0.0, 0.0);
    for j in 0..f.ncols() {
        for i in 0..f.nrows() {
            let v = f[(i, j)].to_f64();
            s += v;
            s2 += v * v;
        }
    }
    (s, s2)
}
