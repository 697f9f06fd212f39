//! Semi-supervised NMF (METHODS.md §3; Lee, Yoo & Choi 2010, Haddock et al. 2020):
//! `min_{A,S,B ≥ 0} D₁(W⊙X ‖ W⊙AS) + λ·D₂(L⊙Y ‖ L⊙BS)`, each divergence Frobenius (`‖·‖²`) or
//! I-divergence, `W` a data mask (missing entries = 0), `Y` one-hot labels (`c × n`), `L` the
//! label mask (a column of ones where the label is known). METHODS.md writes samples as columns
//! (`X` is `m × n`, `S` is `k × n`), and so does the solver; the public functions take samples as
//! rows, as the rest of the crate (`X` and the data mask `n × m`, codes `n × k`, atoms `k × m`),
//! and pass transposed views (no copy) to the solver.
//!
//! Multiplicative updates in the order A, B, S with ε = 1e-10 in the denominators. For a
//! Frobenius term the gradient splits as `2(den − num)`, for an I-divergence as `den − num`; the
//! S-update mixes the two terms with these factors (so for two Frobenius terms it is
//! `S ⊙ (AᵀW⊙X + λBᵀL⊙Y) ⊘ (AᵀW⊙AS + λBᵀL⊙BS)`), which keeps each block update a
//! majorize-minimize step: the objective never increases (tested for all four models).
//!
//! Parameters: [`SsnmfParams`] (builder) → [`SsnmfParams::check`] → [`ValidSsnmfParams`], the only
//! form [`fit_ssnmf`] accepts; the data, labels and mask are checked when fitting.

use std::collections::BTreeMap;
use std::time::Instant;

use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::data::labels::Labels;
use crate::engine::{self, Clock, Eval, IterRecord, Observer, Resume, Step, StopReason, Warning, Within};
use crate::error::{Error, Result};
use crate::io::Tensor;
use crate::linalg;
use crate::nmf::{EncodeOptions, EncodeSpec, NmfModel, Penalty};
use crate::real::Real;
use crate::rng::Rng;

mod params;
pub use params::{Divergence, SsnmfParams, ValidSsnmfParams};

/// A fitted SSNMF: the atoms ([`components`](SsnmfFit::components), `Aᵀ`, `k × m`), the codes of
/// the training samples ([`codes`](SsnmfFit::codes), `Sᵀ`, `n × k`) and the classifier
/// ([`classifier`](SsnmfFit::classifier), `B`, `c × k`).
#[derive(Clone, Debug)]
pub struct SsnmfFit<T: Real> {
    /// The dictionary `A` (`m × k`, METHODS.md's layout).
    pub(crate) a: Mat<T>,
    /// The codes `S` of the training samples (`k × n`).
    pub(crate) s: Mat<T>,
    /// The classifier `B` (`c × k`).
    pub(crate) b: Mat<T>,
    /// The parameters of the fit.
    pub params: SsnmfParams,
    /// Iteration 0 and every iteration.
    pub history: Vec<IterRecord>,
    /// Why the fit stopped.
    pub stop_reason: StopReason,
    /// E.g. max_iter reached before the tolerance was met.
    pub warnings: Vec<Warning>,
}

const EPS: f64 = 1e-10;

use linalg::mul as mm;

/// One term `D(M⊙P ‖ M⊙Q)` with `Q = F G`: returns its value and writes the numerator and
/// denominator parts of the multiplicative update of `G` (`Fᵀ·num`, `Fᵀ·den` follow):
/// `num = M⊙P`, `den = M⊙Q` (Frobenius) or `num = M⊙P/Q`, `den = M` (I-divergence).
fn term<T: Real>(
    div: Divergence,
    p: MatRef<'_, T>,
    q: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    mut num: MatMut<'_, T>,
    mut den: MatMut<'_, T>,
) -> f64 {
    let (r, c) = (p.nrows(), p.ncols());
    let w = |i: usize, j: usize| mask.map_or(T::one(), |m| m[(i, j)]);
    let mut value = 0.0;
    for j in 0..c {
        for i in 0..r {
            let (wv, pv, qv) = (w(i, j), p[(i, j)], q[(i, j)]);
            match div {
                Divergence::Frobenius => {
                    let d = (wv * (pv - qv)).to_f64();
                    value += d * d;
                    num[(i, j)] = wv * pv;
                    den[(i, j)] = wv * qv;
                }
                Divergence::Kl => {
                    let (pf, qf) = (pv.to_f64(), qv.to_f64().max(EPS));
                    if wv > T::zero() {
                        value += wv.to_f64() * (if pf > 0.0 { pf * (pf / qf).ln() } else { 0.0 } - pf + qf);
                    }
                    num[(i, j)] = wv * T::from_f64(pf / qf);
                    den[(i, j)] = wv;
                }
            }
        }
    }
    value
}

/// The value of one term (as [`term`], without its update parts).
#[cfg(test)]
fn term_value<T: Real>(
    div: Divergence,
    p: MatRef<'_, T>,
    q: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
) -> f64 {
    let (mut num, mut den) = (
        Mat::<T>::zeros(p.nrows(), p.ncols()),
        Mat::<T>::zeros(p.nrows(), p.ncols()),
    );
    term(div, p, q, mask, num.as_mut(), den.as_mut())
}

fn factor(div: Divergence) -> f64 {
    match div {
        Divergence::Frobenius => 2.0,
        Divergence::Kl => 1.0,
    }
}

/// `M ← M ⊙ num ⊘ (den + ε)`.
fn mu<T: Real>(m: &mut Mat<T>, num: &Mat<T>, den: &Mat<T>) {
    let eps = T::from_f64(EPS);
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            m[(i, j)] = m[(i, j)] * num[(i, j)] / (den[(i, j)] + eps);
        }
    }
}

/// The objective `D₁ + λD₂` at `(A, S, B)`, samples as columns (a second computation for the
/// tests).
#[cfg(test)]
pub(crate) fn objective<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    a: MatRef<'_, T>,
    s: MatRef<'_, T>,
    b: MatRef<'_, T>,
    o: &SsnmfParams,
) -> f64 {
    let (y, l) = labels.one_hot::<T>(b.nrows());
    let par = Par::Seq;
    let d = term_value(o.data_loss, x, mm(a, s, par).as_ref(), mask);
    let t = term_value(o.label_loss, y.as_ref(), mm(b, s, par).as_ref(), Some(l.as_ref()));
    d + o.lambda * t
}

/// Checks the data against checked parameters: the shape, one label per sample (at least one
/// known), a 0/1 data mask of the data's shape that observes something, entries ≥ 0.
fn check_data<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    params: &ValidSsnmfParams,
) -> Result<()> {
    let (m, n) = (x.nrows(), x.ncols());
    params.check_shape(n, m)?;
    labels.check(n)?;
    if let Some(w) = mask {
        if w.nrows() != m || w.ncols() != n {
            return Err(Error::ShapeMismatch {
                what: "data mask".into(),
                expected: format!("{n} × {m} (as the data)"),
                found: format!("{} × {}", w.ncols(), w.nrows()),
                hint: "give a 0/1 mask of the data's shape".into(),
            });
        }
        let mut observed = false;
        for j in 0..n {
            for i in 0..m {
                let v = w[(i, j)];
                if v != T::zero() && v != T::one() {
                    return Err(Error::invalid(
                        "data_mask",
                        format!("{} at sample {j}, feature {i}", v.to_f64()),
                        "give 0 (missing) or 1 (observed) entries",
                    ));
                }
                observed |= v == T::one();
            }
        }
        if !observed {
            return Err(Error::invalid(
                "data_mask",
                "all zeros",
                "it observes no entry; give 1 where the data is observed",
            ));
        }
    }
    crate::data::validate_nonnegative(x)
}

/// Fits SSNMF (METHODS.md §3) to `x` (`n × m`, samples as rows) with `labels` (one per sample)
/// and an optional data mask (`n × m`, 1 = observed), reporting iteration 0 and every iteration
/// to `observer`. The data's shape, the labels and the mask are checked here.
///
/// ```
/// use partlearn::data::labels::Labels;
/// use partlearn::faer::Mat;
/// use partlearn::nmf::ssnmf::{fit_ssnmf, SsnmfParams};
///
/// // 12 samples (rows) of 6 features in two classes; the first 4 samples are labeled.
/// let x = Mat::<f64>::from_fn(12, 6, |j, i| if (i < 3) == (j % 2 == 0) { 1.0 + (i * j) as f64 / 20.0 } else { 0.1 });
/// let labels = Labels::new((0..12).map(|j| j % 2).collect(), (0..12).map(|j| j < 4).collect())?;
/// let params = SsnmfParams::new(2).lambda(1.0).max_iter(200).check()?;
/// let fit = fit_ssnmf(x.as_ref(), None, &labels, &params, &mut partlearn::engine::Silent)?;
/// assert_eq!((fit.components().nrows(), fit.codes().nrows()), (2, 12));
/// assert_eq!(fit.predict(x.as_ref(), 1)?, fit.predict_in_sample());
/// # Ok::<(), partlearn::Error>(())
/// ```
pub fn fit_ssnmf<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    params: &ValidSsnmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<SsnmfFit<T>> {
    // The solver's layout, samples as columns: transposed views, no copy.
    fit_columns(
        x.transpose(),
        mask.map(|m| m.transpose()),
        labels,
        params,
        observer,
    )
}

/// [`fit_ssnmf`] on `x` given as samples as columns (`m × n`, the mask likewise): the layout of
/// METHODS.md and of the solver, for the layer models that hold their codes so.
pub(crate) fn fit_columns<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    params: &ValidSsnmfParams,
    observer: &mut (dyn Observer + Send),
) -> Result<SsnmfFit<T>> {
    check_data(x, mask, labels, params)?;
    let start = Instant::now();
    let o = params.params();
    let (m, n, k, c) = (x.nrows(), x.ncols(), o.k, labels.n_classes().max(1));
    let mut rng = Rng::new(o.seed);
    let a = Mat::<T>::from_fn(m, k, |_, _| T::from_f64(rng.uniform()));
    let s = Mat::<T>::from_fn(k, n, |_, _| T::from_f64(rng.uniform()));
    let b = Mat::<T>::from_fn(c, k, |_, _| T::from_f64(rng.uniform()));
    fit_from(x, mask, labels, params, (a, s, b), start, observer)
}

/// [`fit_ssnmf`] from the factors `(A, S, B)` (data and shapes checked).
fn fit_from<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    params: &ValidSsnmfParams,
    (mut a, mut s, mut b): (Mat<T>, Mat<T>, Mat<T>),
    start: Instant,
    observer: &mut (dyn Observer + Send),
) -> Result<SsnmfFit<T>> {
    let o = params.params();
    let (m, n, k, c) = (x.nrows(), x.ncols(), o.k, b.nrows());
    let (y, l) = labels.one_hot::<T>(c);
    let par = linalg::par(o.threads);
    let mut method = Ssnmf {
        x,
        mask,
        y,
        l,
        a: &mut a,
        s: &mut s,
        b: &mut b,
        o,
        par,
        x_norm: linalg::frob_sq(x).sqrt(),
        work: Work::new(m, n, k, c),
    };
    let out = engine::run(
        &mut method,
        params.stop_rules(),
        Resume::default(),
        Clock::since(start),
        observer,
    )?;
    Ok(SsnmfFit {
        a,
        s,
        b,
        params: o.clone(),
        history: out.history,
        stop_reason: out.stop_reason,
        warnings: out.warnings,
    })
}

/// SSNMF's multiplicative updates as an engine method.
struct Ssnmf<'a, T: Real> {
    x: MatRef<'a, T>,
    mask: Option<MatRef<'a, T>>,
    y: Mat<T>,
    l: Mat<T>,
    a: &'a mut Mat<T>,
    s: &'a mut Mat<T>,
    b: &'a mut Mat<T>,
    o: &'a SsnmfParams,
    par: Par,
    x_norm: f64,
    work: Work<T>,
}

/// The products and update parts of one iteration, allocated once per fit.
struct Work<T: Real> {
    /// `AS` and the data term's parts (`m × n`).
    ap: Mat<T>,
    dnum: Mat<T>,
    dden: Mat<T>,
    /// `BS` and the label term's parts (`c × n`).
    bs: Mat<T>,
    tnum: Mat<T>,
    tden: Mat<T>,
    /// Numerator and denominator of the A-update (`m × k`), the B-update (`c × k`), and the
    /// S-update with its label part (`k × n`).
    num_a: Mat<T>,
    den_a: Mat<T>,
    num_b: Mat<T>,
    den_b: Mat<T>,
    num_s: Mat<T>,
    den_s: Mat<T>,
    tn: Mat<T>,
    td: Mat<T>,
}

impl<T: Real> Work<T> {
    fn new(m: usize, n: usize, k: usize, c: usize) -> Self {
        let z = Mat::<T>::zeros;
        Work {
            ap: z(m, n),
            dnum: z(m, n),
            dden: z(m, n),
            bs: z(c, n),
            tnum: z(c, n),
            tden: z(c, n),
            num_a: z(m, k),
            den_a: z(m, k),
            num_b: z(c, k),
            den_b: z(c, k),
            num_s: z(k, n),
            den_s: z(k, n),
            tn: z(k, n),
            td: z(k, n),
        }
    }
}

/// `dst ← lhs·rhs`.
fn prod<T: Real>(dst: &mut Mat<T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>, par: Par) {
    linalg::matmul(dst.as_mut(), Accum::Replace, lhs, rhs, T::one(), par);
}

impl<T: Real> Ssnmf<'_, T> {
    /// `AS`, `BS` and both terms at the current factors (into the workspace); returns their
    /// values `(D₁, D₂)`.
    fn terms(&mut self) -> (f64, f64) {
        let (x, o, par, w) = (self.x, self.o, self.par, &mut self.work);
        prod(&mut w.ap, self.a.as_ref(), self.s.as_ref(), par);
        let d = term(
            o.data_loss,
            x,
            w.ap.as_ref(),
            self.mask,
            w.dnum.as_mut(),
            w.dden.as_mut(),
        );
        prod(&mut w.bs, self.b.as_ref(), self.s.as_ref(), par);
        let t = term(
            o.label_loss,
            self.y.as_ref(),
            w.bs.as_ref(),
            Some(self.l.as_ref()),
            w.tnum.as_mut(),
            w.tden.as_mut(),
        );
        (d, t)
    }

    fn eval(&mut self) -> Eval {
        let (d, t) = self.terms();
        let (x, ap) = (self.x, &self.work.ap);
        let (m, n) = (x.nrows(), x.ncols());
        let sq: f64 = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| (x[(i, j)] - ap[(i, j)]).to_f64().powi(2))
            .sum();
        let rel = if self.x_norm > 0.0 {
            sq.sqrt() / self.x_norm
        } else {
            0.0
        };
        Eval::new(d + self.o.lambda * t, rel)
    }
}

impl<T: Real> engine::Method for Ssnmf<'_, T> {
    fn name(&self) -> &'static str {
        "SSNMF"
    }

    fn non_finite_hint(&self) -> &'static str {
        "check the data"
    }

    fn start(&mut self) -> Result<Option<Eval>> {
        Ok(Some(self.eval()))
    }

    fn step(&mut self, _iter: usize, _within: &mut Within<'_>) -> Result<Step> {
        let (x, o, par, mask) = (self.x, self.o, self.par, self.mask);
        let (k, n) = (self.s.nrows(), self.s.ncols());
        let lam = T::from_f64(o.lambda);
        let (fd, fl) = (
            T::from_f64(factor(o.data_loss)),
            T::from_f64(factor(o.label_loss)),
        );
        let (a, s, b, w) = (&mut *self.a, &mut *self.s, &mut *self.b, &mut self.work);
        let (y, l) = (self.y.as_ref(), Some(self.l.as_ref()));
        // The workspace holds both terms at the current (A, S, B): the evaluation that ended the
        // previous iteration (or the start) computed them.
        // A ← A ⊙ (num_d Sᵀ) ⊘ (den_d Sᵀ)
        prod(&mut w.num_a, w.dnum.as_ref(), s.transpose(), par);
        prod(&mut w.den_a, w.dden.as_ref(), s.transpose(), par);
        mu(a, &w.num_a, &w.den_a);
        // B ← B ⊙ (num_l Sᵀ) ⊘ (den_l Sᵀ) (BS and its term do not depend on A)
        prod(&mut w.num_b, w.tnum.as_ref(), s.transpose(), par);
        prod(&mut w.den_b, w.tden.as_ref(), s.transpose(), par);
        mu(b, &w.num_b, &w.den_b);
        // S ← S ⊙ (f_d Aᵀnum_d + λ f_l Bᵀnum_l) ⊘ (f_d Aᵀden_d + λ f_l Bᵀden_l)
        prod(&mut w.ap, a.as_ref(), s.as_ref(), par);
        term(
            o.data_loss,
            x,
            w.ap.as_ref(),
            mask,
            w.dnum.as_mut(),
            w.dden.as_mut(),
        );
        prod(&mut w.bs, b.as_ref(), s.as_ref(), par);
        term(
            o.label_loss,
            y,
            w.bs.as_ref(),
            l,
            w.tnum.as_mut(),
            w.tden.as_mut(),
        );
        prod(&mut w.num_s, a.transpose(), w.dnum.as_ref(), par);
        prod(&mut w.den_s, a.transpose(), w.dden.as_ref(), par);
        prod(&mut w.tn, b.transpose(), w.tnum.as_ref(), par);
        prod(&mut w.td, b.transpose(), w.tden.as_ref(), par);
        let (num, den) = (&mut w.num_s, &mut w.den_s);
        for j in 0..n {
            for i in 0..k {
                num[(i, j)] = fd * num[(i, j)] + lam * fl * w.tn[(i, j)];
                den[(i, j)] = fd * den[(i, j)] + lam * fl * w.td[(i, j)];
            }
        }
        mu(s, &w.num_s, &w.den_s);
        Ok(Step::Done(self.eval()))
    }
}

/// `argmax_c (B S)_{c,j}` for every column of `s` (`k × n`; shapes consistent).
fn argmax_columns<T: Real>(b: MatRef<'_, T>, s: MatRef<'_, T>) -> Vec<u32> {
    let z = mm(b, s, Par::Seq);
    (0..z.ncols())
        .map(|j| (0..z.nrows()).fold(0, |best, i| if z[(i, j)] > z[(best, j)] { i } else { best }) as u32)
        .collect()
}

/// The predicted class `argmax_c (B h)_c` of every code `h` (row) of `codes` (`n × k`) by the
/// classifier `b` (`c × k`; METHODS.md §3, "Label prediction"). Errors when `b` has no class or
/// not one column per code entry.
pub fn predict_from_codes<T: Real>(b: MatRef<'_, T>, codes: MatRef<'_, T>) -> Result<Vec<u32>> {
    if b.ncols() != codes.ncols() || b.nrows() == 0 {
        return Err(Error::ShapeMismatch {
            what: "SSNMF classifier".into(),
            expected: format!("c × {} (c ≥ 1, one column per code entry)", codes.ncols()),
            found: format!("{} × {}", b.nrows(), b.ncols()),
            hint: "predict with the classifier fitted with these codes' dictionary".into(),
        });
    }
    Ok(argmax_columns(b, codes.transpose()))
}

/// Name of the classifier `B` (`c × k`) in an SSNMF model file ([`SsnmfFit::to_tensors`]).
pub const CLASSIFIER_TENSOR: &str = "classifier";

impl<T: Real> SsnmfFit<T> {
    /// The atoms, one per row: `Aᵀ` (`k × m`, as [`NmfModel::components`]).
    pub fn components(&self) -> MatRef<'_, T> {
        self.a.transpose()
    }

    /// The codes of the training samples, one per row: `Sᵀ` (`n × k`).
    pub fn codes(&self) -> MatRef<'_, T> {
        self.s.transpose()
    }

    /// The classifier `B` (`c × k`): a code `h` is predicted as class `argmax_c (B h)_c`.
    pub fn classifier(&self) -> MatRef<'_, T> {
        self.b.as_ref()
    }

    /// In-sample predictions `argmax(BS)` for every training sample.
    pub fn predict_in_sample(&self) -> Vec<u32> {
        argmax_columns(self.b.as_ref(), self.s.as_ref())
    }

    /// The dictionary as an NMF model (atoms `Aᵀ`, `k × m`) that encodes new samples with the
    /// data term's divergence (METHODS.md §3, "Out-of-sample"; §1.7): exact NNLS for a
    /// Frobenius data term, multiplicative updates on the codes (β = 1) for the I-divergence.
    /// It is the model of an SSNMF model file ([`SsnmfFit::to_tensors`]), so that a model read
    /// back from the file encodes as [`SsnmfFit::encode`] does.
    pub fn model(&self) -> Result<NmfModel<T>> {
        let spec = EncodeSpec {
            beta_loss: match self.params.data_loss {
                Divergence::Frobenius => 2.0,
                Divergence::Kl => 1.0,
            },
            codes_penalty: Penalty::default(),
            encode: EncodeOptions::default(),
        };
        NmfModel::new(self.a.transpose().to_owned(), spec)
    }

    /// The tensors and metadata of the fit's model file: the NMF model of [`SsnmfFit::model`]
    /// (kind `nmf`: every reader of NMF models encodes with it), the training codes `Sᵀ`
    /// (`n × k`) when `with_codes`, and the classifier `B` ([`CLASSIFIER_TENSOR`], `c × k`).
    pub fn to_tensors(
        &self,
        with_codes: bool,
        image_shape: Option<(usize, usize)>,
    ) -> Result<(Vec<Tensor>, BTreeMap<String, String>)> {
        let model = self.model()?;
        let codes = with_codes.then(|| self.codes());
        let (mut tensors, meta) = model.to_tensors(codes, image_shape)?;
        tensors.push(Tensor::from_mat(CLASSIFIER_TENSOR, self.b.as_ref()));
        Ok((tensors, meta))
    }

    /// Codes (`n' × k`) of new samples `x_new` (`n' × m`, entries ≥ 0) with `A` fixed, by the
    /// model of [`SsnmfFit::model`]: NNLS for a Frobenius data term, multiplicative updates on
    /// the codes for the I-divergence.
    pub fn encode(&self, x_new: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        self.model()?.encode(x_new, threads)
    }

    /// Predicted classes of new samples `x_new` (`n' × m`).
    pub fn predict(&self, x_new: MatRef<'_, T>, threads: usize) -> Result<Vec<u32>> {
        let codes = self.encode(x_new, threads)?;
        predict_from_codes(self.b.as_ref(), codes.as_ref())
    }
}

#[cfg(test)]
mod tests;
