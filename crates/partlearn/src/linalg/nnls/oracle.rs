//! Test helpers shared by the tests of every file of the solver: random matrices, a plain
//! Lawson–Hanson active-set solver as the reference, and the KKT measure of a solution.

use faer::{Mat, MatRef};

use crate::rng::Rng;

pub(super) fn random(r: &mut Rng, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |_, _| r.uniform())
}

/// Lawson–Hanson active-set NNLS for one column, written plainly as the reference.
pub(super) fn lawson_hanson(c: &Mat<f64>, b: &[f64]) -> Vec<f64> {
    let (p, k) = (c.nrows(), c.ncols());
    let mut x = vec![0.0; k];
    let mut passive = vec![false; k];
    let grad = |x: &[f64]| -> Vec<f64> {
        let r: Vec<f64> = (0..p)
            .map(|i| b[i] - (0..k).map(|j| c[(i, j)] * x[j]).sum::<f64>())
            .collect();
        (0..k).map(|j| (0..p).map(|i| c[(i, j)] * r[i]).sum()).collect()
    };
    let ls = |passive: &[bool]| -> Vec<f64> {
        let f: Vec<usize> = (0..k).filter(|&j| passive[j]).collect();
        let cf = Mat::<f64>::from_fn(p, f.len(), |i, a| c[(i, f[a])]);
        let gf = cf.transpose() * &cf;
        let rhs = Mat::<f64>::from_fn(f.len(), 1, |a, _| (0..p).map(|i| c[(i, f[a])] * b[i]).sum());
        let sol = {
            use faer::linalg::solvers::Solve;
            gf.llt(faer::Side::Lower).unwrap().solve(&rhs)
        };
        let mut z = vec![0.0; k];
        for (a, &j) in f.iter().enumerate() {
            z[j] = sol[(a, 0)];
        }
        z
    };
    for _ in 0..10 * k {
        let w = grad(&x);
        let Some(t) = (0..k)
            .filter(|&j| !passive[j] && w[j] > 1e-12)
            .max_by(|&a, &b| w[a].total_cmp(&w[b]))
        else {
            break;
        };
        passive[t] = true;
        loop {
            let z = ls(&passive);
            if (0..k).all(|j| !passive[j] || z[j] > 0.0) {
                x = z;
                break;
            }
            let mut alpha = f64::INFINITY;
            for j in 0..k {
                if passive[j] && z[j] <= 0.0 {
                    alpha = alpha.min(x[j] / (x[j] - z[j]));
                }
            }
            for j in 0..k {
                x[j] += alpha * (z[j] - x[j]);
                if passive[j] && x[j] <= 1e-14 {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x
}

/// Largest relative violation of the KKT conditions of `min ½xᵀGx − xᵀc, x ≥ 0`.
pub(super) fn kkt_violation(c: &Mat<f64>, b: &Mat<f64>, s: &Mat<f64>) -> f64 {
    let g = c.transpose() * c;
    let cb = c.transpose() * b;
    let y = &g * s - &cb;
    let mut worst = 0.0f64;
    for j in 0..s.ncols() {
        let scale = (0..s.nrows()).fold(1e-300f64, |a, i| a.max(cb[(i, j)].abs()));
        for i in 0..s.nrows() {
            let (x, yi) = (s[(i, j)], y[(i, j)]);
            worst = worst.max((-x).max(0.0) / scale.max(1.0));
            worst = worst.max((-yi).max(0.0) / scale);
            worst = worst.max((x * yi).abs() / (scale * (1.0 + x.abs())));
        }
    }
    worst
}

pub(super) trait CloneF32 {
    fn cloned_f32(&self) -> Mat<f32>;
}
impl CloneF32 for MatRef<'_, f64> {
    fn cloned_f32(&self) -> Mat<f32> {
        Mat::from_fn(self.nrows(), self.ncols(), |i, j| self[(i, j)] as f32)
    }
}
