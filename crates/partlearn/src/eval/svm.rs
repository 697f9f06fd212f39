//! Linear SVM on codes and the report's accuracy protocol (METHODS.md §7.3).
//!
//! The classifier is liblinear's L2-regularized squared-hinge ("L2-loss") SVM, one-vs-rest,
//! trained by dual coordinate descent (Hsieh, Chang, Lin, Keerthi & Sundararajan 2008): with
//! `Q̄ = Q + D`, `Q_ij = y_i y_j x_iᵀx_j`, `D_ii = 1/(2C)`, each coordinate step is
//! `α_i ← max(0, α_i − G/Q̄_ii)` with `G = y_i wᵀx_i − 1 + D_ii α_i`, keeping `w = Σ α_i y_i x_i`;
//! a pass visits the coordinates in a seeded random order; training stops when the spread of the
//! projected gradients over a pass falls below `eps` (liblinear's rule, default 0.1) or after
//! `max_passes`. A constant feature 1 is appended (liblinear's `-B 1`; the bias is regularized
//! like the weights). Computation is in f64.
//!
//! The protocol: a stratified 80/20 split; on the 80 %, each C of a log grid is scored by the
//! mean validation accuracy over stratified shuffle splits (8 % validation), warm-starting the
//! dual from the previous C of the same split; the best C is then trained and tested on
//! stratified shuffle splits of the held-out 20 % (5 % test each), giving mean ± std accuracy.

use faer::MatRef;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// Settings of one SVM training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SvmOptions {
    /// Inverse regularization strength C (> 0).
    pub c: f64,
    /// Stop when max − min projected gradient over a pass is below this (liblinear: 0.1).
    pub eps: f64,
    /// Maximum passes over the data per binary problem.
    pub max_passes: usize,
}

impl Default for SvmOptions {
    fn default() -> Self {
        SvmOptions {
            c: 1.0,
            eps: 0.1,
            max_passes: 1000,
        }
    }
}

/// Samples as contiguous f64 rows with the bias feature appended.
struct Rows {
    d1: usize,
    data: Vec<f64>,
    sq_norms: Vec<f64>,
}

impl Rows {
    fn new<T: Real>(x: MatRef<'_, T>) -> Self {
        let (n, d) = (x.nrows(), x.ncols());
        let d1 = d + 1;
        let mut data = vec![1.0; n * d1];
        for j in 0..d {
            for i in 0..n {
                data[i * d1 + j] = x[(i, j)].to_f64();
            }
        }
        let sq_norms = (0..n)
            .map(|i| data[i * d1..(i + 1) * d1].iter().map(|v| v * v).sum())
            .collect();
        Rows { d1, data, sq_norms }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d1..(i + 1) * self.d1]
    }
}

use crate::linalg::dot_f64 as dot;

/// Dual coordinate descent for one binary problem on the samples `idx` with labels `y` (±1),
/// with liblinear's shrinking: a coordinate at `α = 0` whose gradient exceeds the previous
/// pass's largest projected gradient is set aside until the active set converges, then all
/// coordinates are checked again. `alpha` (one per entry of `idx`) and `w` are the warm start
/// and receive the solution. Returns the passes made.
fn train_binary(
    rows: &Rows,
    idx: &[usize],
    y: &[f64],
    opts: &SvmOptions,
    rng: &mut Rng,
    alpha: &mut [f64],
    w: &mut [f64],
) -> usize {
    let diag = 0.5 / opts.c;
    let all: Vec<usize> = (0..idx.len()).collect();
    let mut active = all.clone();
    // (No upper bound on α for the squared hinge, so only the lower side shrinks.)
    let mut pg_max_old = f64::INFINITY;
    for pass in 1..=opts.max_passes {
        rng.shuffle(&mut active);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut keep = Vec::with_capacity(active.len());
        for &t in &active {
            let i = idx[t];
            let x = rows.row(i);
            let g = y[t] * dot(w, x) - 1.0 + diag * alpha[t];
            let pg = if alpha[t] == 0.0 {
                if g > pg_max_old {
                    continue; // shrunk
                }
                g.min(0.0)
            } else {
                g
            };
            keep.push(t);
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg != 0.0 {
                let old = alpha[t];
                alpha[t] = (old - g / (rows.sq_norms[i] + diag)).max(0.0);
                let step = (alpha[t] - old) * y[t];
                if step != 0.0 {
                    for (wj, xj) in w.iter_mut().zip(x) {
                        *wj += step * xj;
                    }
                }
            }
        }
        let shrunk = keep.len() < idx.len();
        active = keep;
        if pg_max - pg_min < opts.eps || active.is_empty() {
            if !shrunk {
                return pass;
            }
            // Converged on the active set: check every coordinate again.
            active = all.clone();
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    opts.max_passes
}

/// A trained one-vs-rest linear SVM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSvm {
    /// Number of classes (one binary problem each).
    pub classes: usize,
    /// Weights of class `c` (last entry: bias) at `[c·(d+1) .. (c+1)·(d+1)]`.
    pub weights: Vec<f64>,
    /// Features `d` of a sample (without the bias).
    pub n_features: usize,
}

/// Dual variables of a one-vs-rest problem, for warm starts (one vector per class).
struct Duals {
    alpha: Vec<Vec<f64>>,
    w: Vec<Vec<f64>>,
}

impl Duals {
    fn new(classes: usize, n: usize, d1: usize) -> Self {
        Duals {
            alpha: vec![vec![0.0; n]; classes],
            w: vec![vec![0.0; d1]; classes],
        }
    }
}

fn train_ovr(
    rows: &Rows,
    idx: &[usize],
    y: &[usize],
    classes: usize,
    opts: &SvmOptions,
    rng: &mut Rng,
    duals: &mut Duals,
) -> LinearSvm {
    let mut weights = Vec::with_capacity(classes * rows.d1);
    for c in 0..classes {
        let yc: Vec<f64> = idx.iter().map(|&i| if y[i] == c { 1.0 } else { -1.0 }).collect();
        train_binary(rows, idx, &yc, opts, rng, &mut duals.alpha[c], &mut duals.w[c]);
        weights.extend_from_slice(&duals.w[c]);
    }
    LinearSvm {
        classes,
        weights,
        n_features: rows.d1 - 1,
    }
}

impl LinearSvm {
    /// Trains on the rows of `x` (`n × d`) with labels `y` in `0..classes`.
    pub fn fit<T: Real>(x: MatRef<'_, T>, y: &[usize], opts: &SvmOptions, seed: u64) -> Result<Self> {
        let classes = check_labels(x.nrows(), y)?;
        check_options(opts)?;
        let rows = Rows::new(x);
        let idx: Vec<usize> = (0..x.nrows()).collect();
        let mut duals = Duals::new(classes, idx.len(), rows.d1);
        Ok(train_ovr(
            &rows,
            &idx,
            y,
            classes,
            opts,
            &mut Rng::new(seed),
            &mut duals,
        ))
    }

    fn predict_row(&self, x: &[f64]) -> usize {
        let d1 = self.n_features + 1;
        (0..self.classes)
            .map(|c| dot(&self.weights[c * d1..(c + 1) * d1], x))
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |best, (c, s)| if s > best.1 { (c, s) } else { best },
            )
            .0
    }

    /// Predicted class of every row of `x`.
    pub fn predict<T: Real>(&self, x: MatRef<'_, T>) -> Result<Vec<usize>> {
        if x.ncols() != self.n_features {
            return Err(Error::ShapeMismatch {
                what: "SVM input".into(),
                expected: format!("n × {}", self.n_features),
                found: format!("{} × {}", x.nrows(), x.ncols()),
                hint: "predict on features like those the SVM was trained on".into(),
            });
        }
        let rows = Rows::new(x);
        Ok((0..x.nrows()).map(|i| self.predict_row(rows.row(i))).collect())
    }

    fn accuracy_on(&self, rows: &Rows, idx: &[usize], y: &[usize]) -> f64 {
        let right = idx
            .iter()
            .filter(|&&i| self.predict_row(rows.row(i)) == y[i])
            .count();
        right as f64 / idx.len().max(1) as f64
    }
}

fn check_labels(n: usize, y: &[usize]) -> Result<usize> {
    if y.len() != n {
        return Err(Error::ShapeMismatch {
            what: "labels".into(),
            expected: format!("{n} (one per sample)"),
            found: format!("{}", y.len()),
            hint: "give one label per sample".into(),
        });
    }
    let classes = y.iter().max().map_or(0, |m| m + 1);
    let present = present_classes(y);
    if present < 2 {
        return Err(Error::invalid(
            "labels",
            format!("{present} class"),
            "a classifier needs samples of at least two classes",
        ));
    }
    if classes > 10_000 {
        return Err(Error::invalid(
            "labels",
            classes,
            "labels must be class indices 0..C with C ≤ 10000",
        ));
    }
    Ok(classes)
}

/// Number of distinct labels in `y`.
fn present_classes(y: &[usize]) -> usize {
    let mut seen = vec![false; y.iter().max().map_or(0, |m| m + 1)];
    y.iter().for_each(|&c| seen[c] = true);
    seen.iter().filter(|s| **s).count()
}

fn check_options(o: &SvmOptions) -> Result<()> {
    if !(o.c > 0.0 && o.c.is_finite()) {
        return Err(Error::invalid("c", o.c, "must be finite and > 0"));
    }
    if !(o.eps > 0.0) {
        return Err(Error::invalid("eps", o.eps, "must be > 0"));
    }
    if o.max_passes == 0 {
        return Err(Error::invalid("max_passes", 0, "need at least one pass"));
    }
    Ok(())
}

/// Test samples of a [`stratified_split`] of `n` samples: `ceil(fraction·n)`, at least 1 and
/// at most `n − 1`.
fn test_size(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64).ceil() as usize).clamp(1, n.saturating_sub(1).max(1))
}

/// A stratified shuffle split of `idx` (labels `y`): about `fraction` of each class goes to the
/// test part (sklearn's rule: `ceil(fraction·n)` test samples in total, allotted to classes by
/// largest remainder), the rest to training. Returns `(train, test)`, each sorted.
pub(crate) fn stratified_split(
    idx: &[usize],
    y: &[usize],
    fraction: f64,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<usize>) {
    let n = idx.len();
    let n_test = test_size(n, fraction);
    let classes = idx.iter().map(|&i| y[i]).max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for &i in idx {
        by_class[y[i]].push(i);
    }
    let exact: Vec<f64> = by_class
        .iter()
        .map(|v| v.len() as f64 * n_test as f64 / n as f64)
        .collect();
    let mut take: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut rest = n_test - take.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &c in order.iter().cycle().take(classes * 2) {
        if rest == 0 {
            break;
        }
        if take[c] < by_class[c].len() {
            take[c] += 1;
            rest -= 1;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, members) in by_class.iter_mut().enumerate() {
        rng.shuffle(members);
        test.extend_from_slice(&members[..take[c]]);
        train.extend_from_slice(&members[take[c]..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Settings of the protocol of §7.3. The report used 30 C values and 20 selection splits; the
/// defaults here (10 C values over the same range, 3 selection splits, the report's 25
/// evaluation splits) keep all metrics of a k = 100 model on 10,000 test codes under 30 s on
/// 2 cores. Measured on an NMF k = 100 model of Fashion-MNIST: 0.799 ± 0.032 with the defaults
/// (20 s in all) against 0.796 ± 0.036 with the report's counts (510 s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SvmProtocolOptions {
    /// Number of C values, log-spaced over `[10^c_min_exp, 10^c_max_exp]` (default 10; the
    /// report: 30 over [1e-2, 1e3]).
    pub c_grid: usize,
    /// Decimal exponent of the smallest C (default −2).
    pub c_min_exp: f64,
    /// Decimal exponent of the largest C (default 3).
    pub c_max_exp: f64,
    /// Fraction held out for the final scores (report: 0.2).
    pub holdout: f64,
    /// Stratified shuffle splits used to choose C (default 3; the report: 20).
    pub select_splits: usize,
    /// Validation fraction of each selection split (default 0.08).
    pub select_fraction: f64,
    /// Stratified shuffle splits of the held-out part for the final accuracy (default 25).
    pub eval_splits: usize,
    /// Test fraction of each evaluation split (default 0.05).
    pub eval_fraction: f64,
    /// Dual CD stopping tolerance ([`SvmOptions::eps`], default 0.1).
    pub eps: f64,
    /// Dual CD pass limit ([`SvmOptions::max_passes`], default 1000).
    pub max_passes: usize,
    /// Seed of the splits and of the dual CD's order.
    pub seed: u64,
    /// Worker threads (0 = all cores); results do not depend on it.
    pub threads: usize,
}

impl Default for SvmProtocolOptions {
    fn default() -> Self {
        SvmProtocolOptions {
            c_grid: 10,
            c_min_exp: -2.0,
            c_max_exp: 3.0,
            holdout: 0.2,
            select_splits: 3,
            select_fraction: 0.08,
            eval_splits: 25,
            eval_fraction: 0.05,
            eps: 0.1,
            max_passes: 1000,
            seed: 0,
            threads: 1,
        }
    }
}

/// The protocol's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SvmProtocolResult {
    /// Mean test accuracy over the evaluation splits (a fraction in [0, 1]).
    pub mean_accuracy: f64,
    /// Its standard deviation over the splits.
    pub std_accuracy: f64,
    /// The chosen C.
    pub best_c: f64,
    /// Its mean validation accuracy.
    pub best_validation_accuracy: f64,
    /// `(C, mean validation accuracy)` over the grid.
    pub validation_curve: Vec<(f64, f64)>,
    /// Per-split test accuracies.
    pub accuracies: Vec<f64>,
    /// Samples in each evaluation split's test part: each accuracy is a multiple of its inverse,
    /// and below the number of classes not every class can be tested (scikit-learn's
    /// `StratifiedShuffleSplit` refuses that; the protocol reports it for a warning).
    #[serde(default)]
    pub test_samples: usize,
    /// Classes present in the labels.
    #[serde(default)]
    pub classes: usize,
    /// The settings used.
    pub options: SvmProtocolOptions,
}

impl SvmProtocolResult {
    /// A warning when the evaluation splits test on fewer samples than there are classes.
    pub fn coarse_warning(&self) -> Option<String> {
        (self.test_samples < self.classes).then(|| {
            format!(
                "each SVM evaluation split tests on {} sample(s) for {} classes, so its accuracy moves in steps of {:.2}; evaluate on more labelled samples",
                self.test_samples,
                self.classes,
                1.0 / self.test_samples.max(1) as f64
            )
        })
    }
}

/// Most C values [`svm_protocol`] accepts (a grid of 100 on [1e-2, 1e3] is already 28 values per
/// decade).
pub const MAX_C_GRID: usize = 100;

/// Runs the §7.3 protocol on the rows of `x` (e.g. codes `n × k`) with labels `y`.
pub fn svm_protocol<T: Real>(
    x: MatRef<'_, T>,
    y: &[usize],
    opts: &SvmProtocolOptions,
) -> Result<SvmProtocolResult> {
    let classes = check_labels(x.nrows(), y)?;
    let o = opts;
    let fractions_ok = [o.holdout, o.select_fraction, o.eval_fraction]
        .iter()
        .all(|f| *f > 0.0 && *f < 1.0);
    if o.c_grid > MAX_C_GRID {
        return Err(Error::invalid(
            "c_grid",
            o.c_grid,
            format!(
                "give at most {MAX_C_GRID} C values (the report uses 30): each costs one SVM fit per selection split"
            ),
        ));
    }
    if o.c_grid == 0
        || o.select_splits == 0
        || o.eval_splits == 0
        || !fractions_ok
        || !(o.c_max_exp >= o.c_min_exp)
    {
        return Err(Error::invalid(
            "svm_protocol",
            format!(
                "{} C values, {} + {} splits, fractions {}/{}/{}",
                o.c_grid, o.select_splits, o.eval_splits, o.holdout, o.select_fraction, o.eval_fraction
            ),
            "need ≥ 1 C value and ≥ 1 split of each kind, fractions in (0, 1) and c_max_exp ≥ c_min_exp",
        ));
    }
    check_options(&SvmOptions {
        c: 1.0,
        eps: o.eps,
        max_passes: o.max_passes,
    })?;
    let rows = Rows::new(x);
    let all: Vec<usize> = (0..x.nrows()).collect();
    let mut rng = Rng::new(o.seed);
    let (select_part, holdout_part) = stratified_split(&all, y, o.holdout, &mut rng);
    let grid: Vec<f64> = (0..o.c_grid)
        .map(|i| {
            let t = if o.c_grid == 1 {
                0.0
            } else {
                i as f64 / (o.c_grid - 1) as f64
            };
            10f64.powf(o.c_min_exp + t * (o.c_max_exp - o.c_min_exp))
        })
        .collect();
    let svm_opts = |c: f64| SvmOptions {
        c,
        eps: o.eps,
        max_passes: o.max_passes,
    };
    // Each selection split: its own seeded RNG, the whole C path warm-started.
    let split_seeds: Vec<u64> = (0..o.select_splits).map(|_| rng.next_u64()).collect();
    let eval_seeds: Vec<u64> = (0..o.eval_splits).map(|_| rng.next_u64()).collect();
    // Jobs are (split, class) pairs: each runs its binary problem along the C path, warm-started,
    // with an RNG seeded from the split and the class (thread-independent results).
    let splits: Vec<(Vec<usize>, Vec<usize>)> = split_seeds
        .iter()
        .map(|s| stratified_split(&select_part, y, o.select_fraction, &mut Rng::new(*s)))
        .collect();
    let jobs: Vec<(usize, usize)> = (0..splits.len())
        .flat_map(|s| (0..classes).map(move |c| (s, c)))
        .collect();
    let path = |&(s, c): &(usize, usize)| -> Vec<Vec<f64>> {
        let train = &splits[s].0;
        let mut r = Rng::new(split_seeds[s] ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let yc: Vec<f64> = train
            .iter()
            .map(|&i| if y[i] == c { 1.0 } else { -1.0 })
            .collect();
        let (mut alpha, mut w) = (vec![0.0; train.len()], vec![0.0; rows.d1]);
        grid.iter()
            .map(|&cv| {
                train_binary(&rows, train, &yc, &svm_opts(cv), &mut r, &mut alpha, &mut w);
                w.clone()
            })
            .collect()
    };
    let weights: Vec<Vec<Vec<f64>>> =
        crate::linalg::with_threads(o.threads, || jobs.par_iter().map(path).collect())?;
    let per_split: Vec<Vec<f64>> = (0..splits.len())
        .map(|s| {
            (0..grid.len())
                .map(|g| {
                    let mut flat = Vec::with_capacity(classes * rows.d1);
                    for c in 0..classes {
                        flat.extend_from_slice(&weights[s * classes + c][g]);
                    }
                    let svm = LinearSvm {
                        classes,
                        weights: flat,
                        n_features: rows.d1 - 1,
                    };
                    svm.accuracy_on(&rows, &splits[s].1, y)
                })
                .collect()
        })
        .collect();
    let validation_curve: Vec<(f64, f64)> = grid
        .iter()
        .enumerate()
        .map(|(g, &c)| {
            (
                c,
                per_split.iter().map(|s| s[g]).sum::<f64>() / per_split.len() as f64,
            )
        })
        .collect();
    let (best_c, best_validation_accuracy) = validation_curve.iter().copied().fold(
        (grid[0], f64::NEG_INFINITY),
        |b, (c, a)| if a > b.1 { (c, a) } else { b },
    );
    let test_samples = test_size(holdout_part.len(), o.eval_fraction);
    let eval_one = |seed: &u64| -> f64 {
        let mut r = Rng::new(*seed);
        let (train, test) = stratified_split(&holdout_part, y, o.eval_fraction, &mut r);
        let mut duals = Duals::new(classes, train.len(), rows.d1);
        train_ovr(&rows, &train, y, classes, &svm_opts(best_c), &mut r, &mut duals)
            .accuracy_on(&rows, &test, y)
    };
    let accuracies: Vec<f64> =
        crate::linalg::with_threads(o.threads, || eval_seeds.par_iter().map(eval_one).collect())?;
    let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    let var = accuracies.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / accuracies.len() as f64;
    Ok(SvmProtocolResult {
        mean_accuracy: mean,
        std_accuracy: var.sqrt(),
        best_c,
        best_validation_accuracy,
        validation_curve,
        accuracies,
        test_samples,
        classes: present_classes(y),
        options: o.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// Three Gaussian blobs in 2-d, well separated.
    fn blobs(n_per: usize, sep: f64, seed: u64) -> (Mat<f64>, Vec<usize>) {
        let mut r = Rng::new(seed);
        let centers = [(0.0, 0.0), (sep, 0.0), (0.0, sep)];
        let n = 3 * n_per;
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Mat::from_fn(n, 2, |i, j| {
            let c = centers[y[i]];
            (if j == 0 { c.0 } else { c.1 }) + 0.3 * r.normal()
        });
        (x, y)
    }

    #[test]
    fn separable_data_is_classified_perfectly() {
        let (x, y) = blobs(50, 5.0, 1);
        let svm = LinearSvm::fit(x.as_ref(), &y, &SvmOptions::default(), 0).unwrap();
        let p = svm.predict(x.as_ref()).unwrap();
        assert_eq!(p, y);
    }

    #[test]
    fn dual_solution_satisfies_its_optimality_conditions() {
        let (x, y) = blobs(40, 1.5, 2);
        let rows = Rows::new(x.as_ref());
        let idx: Vec<usize> = (0..x.nrows()).collect();
        let yb: Vec<f64> = y.iter().map(|&c| if c == 0 { 1.0 } else { -1.0 }).collect();
        let opts = SvmOptions {
            c: 2.0,
            eps: 1e-8,
            max_passes: 100_000,
        };
        let mut alpha = vec![0.0; idx.len()];
        let mut w = vec![0.0; 3];
        train_binary(&rows, &idx, &yb, &opts, &mut Rng::new(0), &mut alpha, &mut w);
        // w = Σ α_i y_i x_i.
        for j in 0..3 {
            let s: f64 = idx.iter().map(|&i| alpha[i] * yb[i] * rows.row(i)[j]).sum();
            assert!((s - w[j]).abs() < 1e-9);
        }
        // KKT of the dual: α ≥ 0, projected gradient ≈ 0.
        let diag = 0.5 / opts.c;
        for &i in &idx {
            assert!(alpha[i] >= 0.0);
            let g = yb[i] * dot(&w, rows.row(i)) - 1.0 + diag * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            assert!(pg.abs() < 1e-6, "projected gradient {pg} at {i}");
        }
        // Primal and dual objectives meet (no duality gap at the optimum).
        let primal = 0.5 * dot(&w, &w)
            + opts.c
                * idx
                    .iter()
                    .map(|&i| (1.0 - yb[i] * dot(&w, rows.row(i))).max(0.0).powi(2))
                    .sum::<f64>();
        let dual = alpha.iter().sum::<f64>()
            - 0.5 * dot(&w, &w)
            - 0.5 * diag * alpha.iter().map(|a| a * a).sum::<f64>();
        assert!(
            (primal - dual).abs() < 1e-6 * primal.abs().max(1.0),
            "gap {primal} vs {dual}"
        );
    }

    #[test]
    fn stratified_splits_keep_proportions_and_are_disjoint() {
        let y: Vec<usize> = (0..1000)
            .map(|i| {
                if i < 700 {
                    0
                } else if i < 900 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let idx: Vec<usize> = (0..1000).collect();
        let (train, test) = stratified_split(&idx, &y, 0.2, &mut Rng::new(3));
        assert_eq!(test.len(), 200);
        assert_eq!(train.len() + test.len(), 1000);
        let count = |v: &[usize], c: usize| v.iter().filter(|&&i| y[i] == c).count();
        assert_eq!((count(&test, 0), count(&test, 1), count(&test, 2)), (140, 40, 20));
        let mut both = train.clone();
        both.extend(&test);
        both.sort_unstable();
        both.dedup();
        assert_eq!(both.len(), 1000);
    }

    /// The result reports each evaluation split's test size: 180 samples of 3 classes, 20 %
    /// held out, 20 % of that tested → 8 samples, no warning; 5 % → 2 samples < 3 classes, a
    /// warning naming both.
    #[test]
    fn protocol_reports_test_sizes_below_the_classes() {
        let (x, y) = blobs(60, 3.0, 5);
        let run = |eval_fraction| {
            let o = SvmProtocolOptions {
                c_grid: 2,
                eval_splits: 2,
                eval_fraction,
                ..Default::default()
            };
            svm_protocol(x.as_ref(), &y, &o).unwrap()
        };
        let fine = run(0.2);
        assert_eq!((fine.test_samples, fine.classes), (8, 3));
        assert!(fine.coarse_warning().is_none());
        let coarse = run(0.05);
        assert_eq!(coarse.test_samples, 2);
        let w = coarse.coarse_warning().unwrap();
        assert!(w.contains("2 sample(s) for 3 classes"), "{w}");
    }

    #[test]
    fn protocol_is_seeded_and_thread_independent() {
        let (x, y) = blobs(60, 1.2, 4);
        let o = SvmProtocolOptions {
            c_grid: 4,
            select_splits: 3,
            eval_splits: 4,
            eval_fraction: 0.2,
            ..Default::default()
        };
        let one = svm_protocol(x.as_ref(), &y, &o).unwrap();
        let two = svm_protocol(
            x.as_ref(),
            &y,
            &SvmProtocolOptions {
                threads: 2,
                ..o.clone()
            },
        )
        .unwrap();
        assert_eq!(
            one,
            SvmProtocolResult {
                options: one.options.clone(),
                ..two
            }
        );
        assert!(one.mean_accuracy > 0.8, "{}", one.mean_accuracy);
        assert_eq!(one.validation_curve.len(), 4);
        assert_eq!(one.accuracies.len(), 4);
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x, y) = blobs(5, 3.0, 5);
        assert!(LinearSvm::fit(x.as_ref(), &y[..10], &SvmOptions::default(), 0).is_err());
        assert!(LinearSvm::fit(x.as_ref(), &vec![1; 15], &SvmOptions::default(), 0).is_err());
        let bad = SvmOptions {
            c: 0.0,
            ..Default::default()
        };
        assert!(LinearSvm::fit(x.as_ref(), &y, &bad, 0).is_err());
        let svm = LinearSvm::fit(x.as_ref(), &y, &SvmOptions::default(), 0).unwrap();
        assert!(svm.predict(Mat::<f64>::zeros(2, 3).as_ref()).is_err());
        let o = SvmProtocolOptions {
            holdout: 1.5,
            ..Default::default()
        };
        assert!(svm_protocol(x.as_ref(), &y, &o).is_err());
        for (c_grid, ok) in [(MAX_C_GRID, true), (MAX_C_GRID + 1, false)] {
            let o = SvmProtocolOptions {
                c_grid,
                select_splits: 1,
                eval_splits: 1,
                max_passes: 1,
                ..Default::default()
            };
            let r = svm_protocol(x.as_ref(), &y, &o);
            assert_eq!(r.is_ok(), ok, "{c_grid}: {:?}", r.err());
        }
    }

    /// A linear SVM on the raw pixels of the 10,000 Fashion-MNIST test images reaches about
    /// 0.83–0.85 (issue #4). Skipped without the data unless PARTLEARN_REQUIRE_DATA is set.
    #[test]
    fn svm_on_fashion_mnist_pixels() {
        let d = match crate::data::load::<f32>("fashion-mnist:test", &Default::default()) {
            Ok(d) => d,
            Err(e) => {
                assert!(std::env::var_os("PARTLEARN_REQUIRE_DATA").is_none(), "{e}");
                eprintln!("skipped: {e}");
                return;
            }
        };
        let y: Vec<usize> = d.labels.as_ref().unwrap().iter().map(|&l| l as usize).collect();
        // Train on a stratified 80 % and test on the other 20 %.
        let all: Vec<usize> = (0..y.len()).collect();
        let (train, test) = stratified_split(&all, &y, 0.2, &mut Rng::new(0));
        let rows = Rows::new(d.x());
        let opts = SvmOptions {
            c: 0.01,
            ..Default::default()
        };
        let mut duals = Duals::new(10, train.len(), rows.d1);
        let svm = train_ovr(&rows, &train, &y, 10, &opts, &mut Rng::new(1), &mut duals);
        let acc = svm.accuracy_on(&rows, &test, &y);
        eprintln!("raw pixels, 8000 train / 2000 test, C = 0.01: accuracy {acc:.4}");
        assert!((0.82..0.87).contains(&acc), "accuracy {acc}");
    }
}
