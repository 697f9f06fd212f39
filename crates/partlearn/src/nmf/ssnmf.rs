//! Semi-supervised NMF (METHODS.md §3; Lee, Yoo & Choi 2010, Haddock et al. 2020):
//! `min_{A,S,B ≥ 0} D₁(W⊙X ‖ W⊙AS) + λ·D₂(L⊙Y ‖ L⊙BS)`, each divergence Frobenius (`‖·‖²`) or
//! I-divergence, `W` a data mask (missing entries = 0), `Y` one-hot labels (`c × n`), `L` the
//! label mask (a column of ones where the label is known). Samples are columns (`X` is `m × n`).
//!
//! Multiplicative updates in the order A, B, S with ε = 1e-10 in the denominators. For a
//! Frobenius term the gradient splits as `2(den − num)`, for an I-divergence as `den − num`; the
//! S-update mixes the two terms with these factors (so for two Frobenius terms it is
//! `S ⊙ (AᵀW⊙X + λBᵀL⊙Y) ⊘ (AᵀW⊙AS + λBᵀL⊙BS)`), which keeps each block update a
//! majorize-minimize step: the objective never increases (tested for all four models).

use std::time::Instant;

use faer::{Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use crate::engine::{
    self, Clock, Eval, IterRecord, Observer, Resume, StopReason, StopRules, Warning, Within,
};
use crate::error::{Error, Result};
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

/// A divergence of one term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Divergence {
    /// `‖P − Q‖²_F`.
    Frobenius,
    /// `Σ P log(P/Q) − P + Q` (generalized Kullback–Leibler).
    Kl,
}

impl std::str::FromStr for Divergence {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "frobenius" | "fro" => Ok(Divergence::Frobenius),
            "kl" | "i-divergence" | "kullback-leibler" => Ok(Divergence::Kl),
            _ => Err(Error::invalid("divergence", s, "use frobenius or kl")),
        }
    }
}

/// Options of [`fit_ssnmf`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SsnmfOptions {
    pub k: usize,
    /// Weight of the label term.
    pub lambda: f64,
    pub data_loss: Divergence,
    pub label_loss: Divergence,
    pub max_iter: usize,
    /// Windowed relative-decrease rule of [`StopRules`] (default 1e-4, ssnmf's).
    pub tol: f64,
    /// Time budget in seconds.
    #[serde(default)]
    pub max_seconds: Option<f64>,
    pub seed: u64,
    #[serde(skip)]
    pub threads: usize,
}

impl Default for SsnmfOptions {
    fn default() -> Self {
        SsnmfOptions {
            k: 10,
            lambda: 1.0,
            data_loss: Divergence::Frobenius,
            label_loss: Divergence::Frobenius,
            max_iter: 1000,
            tol: 1e-4,
            max_seconds: None,
            seed: 0,
            threads: 1,
        }
    }
}

impl SsnmfOptions {
    /// The engine's stopping rules of these options.
    pub fn stop_rules(&self) -> StopRules {
        StopRules::max_iter(self.max_iter)
            .with_tol(self.tol)
            .with_max_seconds(self.max_seconds)
    }
}

/// Labels for semi-supervision: one class per sample, and whether it is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    pub classes: Vec<u32>,
    pub known: Vec<bool>,
}

impl Labels {
    /// Number of classes (largest label + 1).
    pub fn n_classes(&self) -> usize {
        self.classes.iter().max().map_or(0, |&c| c as usize + 1)
    }
}

/// A fitted SSNMF: `A` (`m × k`), `S` (`k × n`), `B` (`c × k`).
#[derive(Clone, Debug)]
pub struct SsnmfFit<T: Real> {
    pub a: Mat<T>,
    pub s: Mat<T>,
    pub b: Mat<T>,
    pub options: SsnmfOptions,
    pub history: Vec<IterRecord>,
    pub stop_reason: StopReason,
    /// E.g. max_iter reached before the tolerance was met.
    pub warnings: Vec<Warning>,
}

const EPS: f64 = 1e-10;

use linalg::mul as mm;

/// One term `D(M⊙P ‖ M⊙Q)` with `Q = F G`: its value and the numerator/denominator of the
/// multiplicative update of `G` (`Fᵀ·num`, `Fᵀ·den` follow) and the elementwise parts.
struct Term<T: Real> {
    /// `M⊙P` (Frobenius) or `M⊙P/Q` (I-divergence).
    num: Mat<T>,
    /// `M⊙Q` (Frobenius) or `M` (I-divergence).
    den: Mat<T>,
    value: f64,
}

fn term<T: Real>(
    div: Divergence,
    p: MatRef<'_, T>,
    q: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
) -> Term<T> {
    let (r, c) = (p.nrows(), p.ncols());
    let w = |i: usize, j: usize| mask.map_or(T::one(), |m| m[(i, j)]);
    let mut value = 0.0;
    let (mut num, mut den) = (Mat::<T>::zeros(r, c), Mat::<T>::zeros(r, c));
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
    Term { num, den, value }
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

/// One-hot `Y` (`c × n`) and label mask `L` (columns of ones where known).
fn one_hot<T: Real>(labels: &Labels, c: usize) -> (Mat<T>, Mat<T>) {
    let n = labels.classes.len();
    let y = Mat::from_fn(c, n, |i, j| {
        if labels.classes[j] as usize == i {
            T::one()
        } else {
            T::zero()
        }
    });
    let l = Mat::from_fn(c, n, |_, j| if labels.known[j] { T::one() } else { T::zero() });
    (y, l)
}

/// The objective `D₁ + λD₂` at `(A, S, B)`.
pub fn objective<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    a: MatRef<'_, T>,
    s: MatRef<'_, T>,
    b: MatRef<'_, T>,
    o: &SsnmfOptions,
) -> f64 {
    let (y, l) = one_hot::<T>(labels, b.nrows());
    let par = Par::Seq;
    let d = term(o.data_loss, x, mm(a, s, par).as_ref(), mask).value;
    let t = term(o.label_loss, y.as_ref(), mm(b, s, par).as_ref(), Some(l.as_ref())).value;
    d + o.lambda * t
}

/// The weight λ of a label term (SSNMF, and Deep NMF's fine-tuning): finite and ≥ 0.
pub fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::invalid("lambda", lambda, "must be a finite number ≥ 0"));
    }
    Ok(())
}

fn validate<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    o: &SsnmfOptions,
) -> Result<()> {
    let (m, n) = (x.nrows(), x.ncols());
    if o.k == 0 || o.k > m.min(n) {
        return Err(Error::invalid(
            "k",
            o.k,
            format!("must be in 1..={} (min(n_samples, n_features))", m.min(n)),
        ));
    }
    check_lambda(o.lambda)?;
    if o.max_iter == 0 {
        return Err(Error::invalid("max-iter", 0, "run at least one iteration"));
    }
    o.stop_rules().validate()?;
    if labels.classes.len() != n || labels.known.len() != n {
        return Err(Error::ShapeMismatch {
            what: "labels".into(),
            expected: format!("{n} labels and mask entries (one per sample)"),
            found: format!(
                "{} labels, {} mask entries",
                labels.classes.len(),
                labels.known.len()
            ),
            hint: "give one label and one mask entry per sample".into(),
        });
    }
    if !labels.known.iter().any(|&k| k) {
        return Err(Error::invalid(
            "label mask",
            "all zeros",
            "it marks no sample as labelled; give 1 for the samples whose label is known",
        ));
    }
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
                        "data mask",
                        format!("{} at sample {j}, feature {i}", v.to_f64()),
                        "give 0 (missing) or 1 (observed) entries",
                    ));
                }
                observed |= v == T::one();
            }
        }
        if !observed {
            return Err(Error::invalid(
                "data mask",
                "all zeros",
                "it observes no entry; give 1 where the data is observed",
            ));
        }
    }
    crate::data::validate_nonnegative(x)
}

/// Fits SSNMF to `x` (`m × n`, samples as columns) with `labels` and an optional data mask
/// (`m × n`, 1 = observed), reporting each iteration to `observer`.
pub fn fit_ssnmf<T: Real>(
    x: MatRef<'_, T>,
    mask: Option<MatRef<'_, T>>,
    labels: &Labels,
    o: &SsnmfOptions,
    observer: &mut (dyn Observer + Send),
) -> Result<SsnmfFit<T>> {
    validate(x, mask, labels, o)?;
    let start = Instant::now();
    let (m, n, k, c) = (x.nrows(), x.ncols(), o.k, labels.n_classes().max(1));
    let mut rng = Rng::new(o.seed);
    let mut a = Mat::<T>::from_fn(m, k, |_, _| T::from_f64(rng.uniform()));
    let mut s = Mat::<T>::from_fn(k, n, |_, _| T::from_f64(rng.uniform()));
    let mut b = Mat::<T>::from_fn(c, k, |_, _| T::from_f64(rng.uniform()));
    let (y, l) = one_hot::<T>(labels, c);
    let par = linalg::par(o.threads);
    let stop = o.stop_rules();
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
    };
    let out = engine::run(
        &mut method,
        &stop,
        Resume::default(),
        Clock::since(start),
        observer,
    )?;
    Ok(SsnmfFit {
        a,
        s,
        b,
        options: o.clone(),
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
    o: &'a SsnmfOptions,
    par: Par,
    x_norm: f64,
}

impl<T: Real> Ssnmf<'_, T> {
    fn eval(&self) -> Eval {
        let (x, o, par) = (self.x, self.o, self.par);
        let (m, n) = (x.nrows(), x.ncols());
        let ap = mm(self.a.as_ref(), self.s.as_ref(), par);
        let d = term(o.data_loss, x, ap.as_ref(), self.mask);
        let t = term(
            o.label_loss,
            self.y.as_ref(),
            mm(self.b.as_ref(), self.s.as_ref(), par).as_ref(),
            Some(self.l.as_ref()),
        );
        let sq: f64 = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| (x[(i, j)] - ap[(i, j)]).to_f64().powi(2))
            .sum();
        let rel = if self.x_norm > 0.0 {
            sq.sqrt() / self.x_norm
        } else {
            0.0
        };
        Eval::new(d.value + o.lambda * t.value, rel)
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

    fn step(&mut self, _iter: usize, _within: &mut Within<'_>) -> Result<Option<Eval>> {
        let (x, o, par, mask) = (self.x, self.o, self.par, self.mask);
        let (k, n) = (self.s.nrows(), self.s.ncols());
        let lam = T::from_f64(o.lambda);
        let (fd, fl) = (
            T::from_f64(factor(o.data_loss)),
            T::from_f64(factor(o.label_loss)),
        );
        let (a, s, b) = (&mut *self.a, &mut *self.s, &mut *self.b);
        // A ← A ⊙ (num_d Sᵀ) ⊘ (den_d Sᵀ)
        let d = term(o.data_loss, x, mm(a.as_ref(), s.as_ref(), par).as_ref(), mask);
        mu(
            a,
            &mm(d.num.as_ref(), s.transpose(), par),
            &mm(d.den.as_ref(), s.transpose(), par),
        );
        // B ← B ⊙ (num_l Sᵀ) ⊘ (den_l Sᵀ)
        let t = term(
            o.label_loss,
            self.y.as_ref(),
            mm(b.as_ref(), s.as_ref(), par).as_ref(),
            Some(self.l.as_ref()),
        );
        mu(
            b,
            &mm(t.num.as_ref(), s.transpose(), par),
            &mm(t.den.as_ref(), s.transpose(), par),
        );
        // S ← S ⊙ (f_d Aᵀnum_d + λ f_l Bᵀnum_l) ⊘ (f_d Aᵀden_d + λ f_l Bᵀden_l)
        let d = term(o.data_loss, x, mm(a.as_ref(), s.as_ref(), par).as_ref(), mask);
        let t = term(
            o.label_loss,
            self.y.as_ref(),
            mm(b.as_ref(), s.as_ref(), par).as_ref(),
            Some(self.l.as_ref()),
        );
        let mut num = mm(a.transpose(), d.num.as_ref(), par);
        let mut den = mm(a.transpose(), d.den.as_ref(), par);
        let (tn, td) = (
            mm(b.transpose(), t.num.as_ref(), par),
            mm(b.transpose(), t.den.as_ref(), par),
        );
        for j in 0..n {
            for i in 0..k {
                num[(i, j)] = fd * num[(i, j)] + lam * fl * tn[(i, j)];
                den[(i, j)] = fd * den[(i, j)] + lam * fl * td[(i, j)];
            }
        }
        mu(s, &num, &den);
        Ok(Some(self.eval()))
    }
}

/// `argmax_c (B S)_{c,j}` for every column of `s`.
pub fn predict_from_codes<T: Real>(b: MatRef<'_, T>, s: MatRef<'_, T>) -> Vec<u32> {
    let z = mm(b, s, Par::Seq);
    (0..z.ncols())
        .map(|j| (0..z.nrows()).fold(0, |best, i| if z[(i, j)] > z[(best, j)] { i } else { best }) as u32)
        .collect()
}

impl<T: Real> SsnmfFit<T> {
    /// In-sample predictions `argmax(BS)` for every training sample.
    pub fn predict_in_sample(&self) -> Vec<u32> {
        predict_from_codes(self.b.as_ref(), self.s.as_ref())
    }

    /// Codes of new samples `x_new` (`m × n'`) with `A` fixed: NNLS (block principal pivoting)
    /// for a Frobenius data term, multiplicative updates on `S` for the I-divergence.
    pub fn encode(&self, x_new: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        match self.options.data_loss {
            Divergence::Frobenius => Ok(linalg::nnls::nnls(
                self.a.as_ref(),
                x_new,
                &linalg::nnls::NnlsOptions::default(),
                threads,
            )?
            .0),
            Divergence::Kl => {
                let par = linalg::par(threads);
                let mut s = Mat::<T>::from_fn(self.a.ncols(), x_new.ncols(), |_, _| T::one());
                let ones = Mat::<T>::from_fn(x_new.nrows(), x_new.ncols(), |_, _| T::one());
                let den = mm(self.a.transpose(), ones.as_ref(), par);
                for _ in 0..500 {
                    let t = term(
                        Divergence::Kl,
                        x_new,
                        mm(self.a.as_ref(), s.as_ref(), par).as_ref(),
                        None,
                    );
                    mu(&mut s, &mm(self.a.transpose(), t.num.as_ref(), par), &den);
                }
                Ok(s)
            }
        }
    }

    /// Predicted classes of new samples (`m × n'`).
    pub fn predict(&self, x_new: MatRef<'_, T>, threads: usize) -> Result<Vec<u32>> {
        let s = self.encode(x_new, threads)?;
        Ok(predict_from_codes(self.b.as_ref(), s.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Silent;

    fn toy_labels(level: &str, known: &[usize]) -> (Mat<f64>, Labels) {
        let d = crate::data::named::toy_hierarchy::<f64>(0);
        let classes = d.extra_labels.iter().find(|(n, _)| n == level).unwrap().1.clone();
        let mut k = vec![false; classes.len()];
        for &j in known {
            k[j] = true;
        }
        (d.xt().to_owned(), Labels { classes, known: k })
    }

    #[test]
    fn objective_never_increases_for_the_four_models_with_masks() {
        let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
        let mut rng = Rng::new(9);
        let w = Mat::<f64>::from_fn(
            x.nrows(),
            x.ncols(),
            |_, _| if rng.uniform() < 0.9 { 1.0 } else { 0.0 },
        );
        for dl in [Divergence::Frobenius, Divergence::Kl] {
            for ll in [Divergence::Frobenius, Divergence::Kl] {
                let o = SsnmfOptions {
                    k: 4,
                    lambda: 3.0,
                    data_loss: dl,
                    label_loss: ll,
                    max_iter: 150,
                    tol: 0.0,
                    ..SsnmfOptions::default()
                };
                let f = fit_ssnmf(x.as_ref(), Some(w.as_ref()), &labels, &o, &mut Silent).unwrap();
                for h in f.history.windows(2) {
                    assert!(
                        h[1].objective <= h[0].objective * (1.0 + 1e-10),
                        "{dl:?}/{ll:?}: {} → {} at {}",
                        h[0].objective,
                        h[1].objective,
                        h[1].iter
                    );
                }
                let direct = objective(
                    x.as_ref(),
                    Some(w.as_ref()),
                    &labels,
                    f.a.as_ref(),
                    f.s.as_ref(),
                    f.b.as_ref(),
                    &o,
                );
                assert!((direct - f.history.last().unwrap().objective).abs() <= 1e-9 * direct.abs().max(1.0));
            }
        }
    }

    #[test]
    fn predicts_the_unlabeled_toy_hierarchy_columns() {
        let (x, labels) = toy_labels("labels4", &crate::data::named::TOY_HIERARCHY_L40);
        let o = SsnmfOptions {
            k: 4,
            lambda: 1.0,
            max_iter: 2000,
            tol: 1e-6,
            ..SsnmfOptions::default()
        };
        let f = fit_ssnmf(x.as_ref(), None, &labels, &o, &mut Silent).unwrap();
        let pred = f.predict_in_sample();
        let unknown: Vec<usize> = (0..90).filter(|&j| !labels.known[j]).collect();
        let acc =
            unknown.iter().filter(|&&j| pred[j] == labels.classes[j]).count() as f64 / unknown.len() as f64;
        assert!(acc >= 0.9, "in-sample accuracy on unlabeled columns {acc}");
        // Out of sample: the training columns encoded again by NNLS give the same classes.
        let out = f.predict(x.as_ref(), 1).unwrap();
        let agree = out.iter().zip(&labels.classes).filter(|(a, b)| a == b).count() as f64 / 90.0;
        assert!(agree >= 0.9, "out-of-sample accuracy {agree}");
    }

    #[test]
    fn bad_input_is_refused() {
        let (x, labels) = toy_labels("labels4", &[0, 1]);
        let o = SsnmfOptions {
            k: 4,
            ..SsnmfOptions::default()
        };
        let short = Labels {
            classes: labels.classes[..10].to_vec(),
            known: labels.known[..10].to_vec(),
        };
        assert!(fit_ssnmf(x.as_ref(), None, &short, &o, &mut Silent).is_err());
        assert!(fit_ssnmf(
            x.as_ref(),
            None,
            &labels,
            &SsnmfOptions { k: 0, ..o.clone() },
            &mut Silent
        )
        .is_err());
        assert!(fit_ssnmf(
            x.as_ref(),
            None,
            &labels,
            &SsnmfOptions {
                lambda: -1.0,
                ..o.clone()
            },
            &mut Silent
        )
        .is_err());
        let w = Mat::<f64>::ones(3, 3);
        assert!(fit_ssnmf(x.as_ref(), Some(w.as_ref()), &labels, &o, &mut Silent).is_err());
        assert!("hellinger".parse::<Divergence>().is_err());
        // A tol that is not a finite number ≥ 0, masks that mark nothing or hold other values.
        let err = |mask: Option<&Mat<f64>>, labels: &Labels, o: &SsnmfOptions| {
            fit_ssnmf(x.as_ref(), mask.map(|m| m.as_ref()), labels, o, &mut Silent)
                .unwrap_err()
                .to_string()
        };
        for tol in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(err(None, &labels, &SsnmfOptions { tol, ..o.clone() }).contains("invalid tol"));
        }
        let none = Labels {
            known: vec![false; labels.known.len()],
            ..labels.clone()
        };
        assert!(err(None, &none, &o).contains("label mask"));
        let mut w = Mat::<f64>::ones(x.nrows(), x.ncols());
        w[(2, 3)] = 0.5;
        assert!(err(Some(&w), &labels, &o).contains("sample 3, feature 2"));
        let zeros = Mat::<f64>::zeros(x.nrows(), x.ncols());
        assert!(err(Some(&zeros), &labels, &o).contains("observes no entry"));
    }
}
