//! NNDSVD across processes on its randomized path ([`linalg::range::randomized_svd_part`], taken
//! by [`init::svd_part`] for sparse data and when the exact Gram path does not apply), with the
//! ranks as threads ([`crate::dist::threads`]) on matrices small enough for a debug build: the
//! function is called directly, whatever the shape.

use faer::{Mat, MatRef, Par};

use super::data_op::{SparseX, XRef};
use super::init::{self, nndsvd_with, Factors};
use crate::data::Csr;
use crate::dist::{row_block, threads, Part};
use crate::linalg::{self, range::randomized_svd_part, TruncatedSvd};
use crate::real::Real;
use crate::rng::Rng;

const SEED: u64 = 7;

/// `m × n` (samples as columns), uniform on [0, 1) with about 40 % zeros.
fn data(m: usize, n: usize, seed: u64) -> Mat<f64> {
    let mut r = Rng::new(seed);
    Mat::from_fn(m, n, |_, _| {
        let u = r.uniform();
        if u < 0.4 {
            0.0
        } else {
            u
        }
    })
}

/// The randomized SVD and NNDSVD start of every rank, gathered: `U` and the atoms (checked
/// replicated), `s`, and `V` and the codes stacked in sample order; all in f64.
struct Gathered {
    s: Vec<f64>,
    u: Mat<f64>,
    v: Mat<f64>,
    wt: Mat<f64>,
    h: Mat<f64>,
}

fn to_f64<T: Real>(a: MatRef<'_, T>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)].to_f64())
}

/// Stacks the rows (`stack_rows`) or columns of the ranks' blocks in sample order.
fn stack(blocks: &[Mat<f64>], n: usize, p: usize, stack_rows: bool) -> Mat<f64> {
    let owner = |i: usize| (0..p).find(|&r| row_block(n, p, r).contains(&i)).unwrap();
    let at = |i: usize| (owner(i), i - row_block(n, p, owner(i)).start);
    if stack_rows {
        Mat::from_fn(n, blocks[0].ncols(), |i, j| blocks[at(i).0][(at(i).1, j)])
    } else {
        Mat::from_fn(blocks[0].nrows(), n, |j, i| blocks[at(i).0][(j, at(i).1)])
    }
}

/// Runs [`randomized_svd_part`] and [`nndsvd_with`] on `p` thread-ranks of `x` (`m × n`), each
/// with its block dense or (`sparse`) as a CSR of its samples.
fn run<T: Real>(x: &Mat<T>, k: usize, p: usize, sparse: bool) -> Gathered {
    let n = x.ncols();
    let avg = init::mean(x.as_ref());
    let results: Vec<(TruncatedSvd<T>, Factors<T>)> = threads::run(n, p, |part: Part<'_>, rows| {
        let xr = x.as_ref().subcols(rows.start, rows.len());
        let csr = Csr::from_dense(xr.transpose()).unwrap();
        let sx = SparseX::new(&csr).unwrap();
        let xr = if sparse {
            XRef::Sparse(&sx)
        } else {
            XRef::Dense(xr)
        };
        let mut rng = Rng::new(SEED);
        let svd = randomized_svd_part(xr, k, &mut rng, Par::Seq, part).unwrap();
        let f = nndsvd_with(xr, &svd, k, avg, &mut rng, part);
        (svd, f)
    });
    for (svd, f) in &results[1..] {
        assert!(
            svd.u == results[0].0.u && svd.s == results[0].0.s,
            "U, s replicated"
        );
        assert!(f.wt == results[0].1.wt, "atoms replicated");
    }
    let vs: Vec<Mat<f64>> = results.iter().map(|(svd, _)| to_f64(svd.v.as_ref())).collect();
    let hs: Vec<Mat<f64>> = results.iter().map(|(_, f)| to_f64(f.h.as_ref())).collect();
    Gathered {
        s: results[0].0.s.iter().map(|&v| v.to_f64()).collect(),
        u: to_f64(results[0].0.u.as_ref()),
        v: stack(&vs, n, p, true),
        wt: to_f64(results[0].1.wt.as_ref()),
        h: stack(&hs, n, p, false),
    }
}

/// The one-process randomized SVD ([`linalg::randomized_svd`]) and the NNDSVD start from it.
fn one_process(x: &Mat<f64>, k: usize) -> Gathered {
    let mut rng = Rng::new(SEED);
    let svd = linalg::randomized_svd(x.as_ref(), k, &mut rng, Par::Seq).unwrap();
    let f = nndsvd_with(
        x.as_ref().into(),
        &svd,
        k,
        init::mean(x.as_ref()),
        &mut rng,
        Part::single(x.ncols()),
    );
    Gathered {
        s: svd.s,
        u: svd.u,
        v: svd.v,
        wt: f.wt,
        h: f.h,
    }
}

/// Largest difference of the columns of `a` and `b` after flipping each column of `b` to the
/// sign of `a`'s, relative to `a`'s largest entry.
fn up_to_signs(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let mut worst = 0.0f64;
    for j in 0..a.ncols() {
        let dot: f64 = (0..a.nrows()).map(|i| a[(i, j)] * b[(i, j)]).sum();
        let sign = if dot < 0.0 { -1.0 } else { 1.0 };
        for i in 0..a.nrows() {
            worst = worst.max((a[(i, j)] - sign * b[(i, j)]).abs());
        }
    }
    worst / a.norm_max()
}

fn rel(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    (a - b).norm_max() / a.norm_max()
}

/// Compares `b` with `a`: singular values, vectors up to signs, NNDSVD factors.
fn assert_close(a: &Gathered, b: &Gathered, tol: f64, what: &str) {
    for (j, (x, y)) in a.s.iter().zip(&b.s).enumerate() {
        assert!((x - y).abs() <= tol * a.s[0], "{what}: σ{j} {x} vs {y}");
    }
    let (du, dv) = (up_to_signs(&a.u, &b.u), up_to_signs(&a.v, &b.v));
    assert!(du <= tol && dv <= tol, "{what}: U {du:e}, V {dv:e}");
    let (dw, dh) = (rel(&a.wt, &b.wt), rel(&a.h, &b.h));
    assert!(dw <= tol && dh <= tol, "{what}: atoms {dw:e}, codes {dh:e}");
}

#[test]
fn one_rank_matches_the_one_process_randomized_svd() {
    // 300 samples × 80 features, k = 5: l = 15 columns, the randomized path forced.
    let x = data(80, 300, 1);
    let one = one_process(&x, 5);
    let p1 = run(&x, 5, 1, false);
    assert_close(&one, &p1, 1e-10, "P = 1 vs one process");
    // The subspaces agree: |UᵀU'| = I.
    let c = one.u.transpose() * &p1.u;
    for i in 0..5 {
        for j in 0..5 {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (c[(i, j)].abs() - want).abs() < 1e-10,
                "UᵀU'[{i},{j}] = {}",
                c[(i, j)]
            );
        }
    }
    // And the randomized SVD is a good one here: σ₁ to 1e-10 of the exact SVD's.
    let exact = linalg::truncated_svd(x.as_ref(), 5, &mut Rng::new(0), Par::Seq).unwrap();
    assert!((exact.s[0] - p1.s[0]).abs() < 1e-10 * exact.s[0]);
}

#[test]
fn two_and_three_ranks_match_one_rank_and_the_one_process_start() {
    let x = data(80, 300, 2);
    let one = one_process(&x, 5);
    let p1 = run(&x, 5, 1, false);
    for p in [2, 3] {
        let pp = run(&x, 5, p, false);
        assert_close(&p1, &pp, 1e-9, &format!("P = {p} vs P = 1"));
        assert_close(&one, &pp, 1e-9, &format!("P = {p} vs one process"));
    }
}

#[test]
fn sparse_blocks_give_the_dense_result() {
    let x = data(80, 300, 3);
    let dense = run(&x, 5, 1, false);
    for p in [1, 2, 3] {
        let sparse = run(&x, 5, p, true);
        assert_close(&dense, &sparse, 1e-9, &format!("sparse P = {p}"));
    }
}

#[test]
fn f32_agrees_with_f64() {
    let x = data(80, 300, 4);
    let x32 = Mat::<f32>::from_fn(80, 300, |i, j| x[(i, j)] as f32);
    for p in [1, 2] {
        let (a, b) = (run(&x, 5, p, false), run(&x32, 5, p, false));
        assert_close(&a, &b, 1e-3, &format!("f32 P = {p}"));
    }
}

#[test]
fn rank_deficient_data_is_exact_and_its_extra_components_random() {
    // Rank 3 < k = 5 < l = 15: CholeskyQR2 and the Gram–Schmidt of Y drop the dependent
    // columns; the leading triplets are those of the exact SVD, the missing two get the
    // random start on every rank alike.
    let mut r = Rng::new(5);
    let a = Mat::<f64>::from_fn(60, 3, |_, _| r.uniform());
    let b = Mat::<f64>::from_fn(3, 200, |_, _| r.uniform());
    let x = &a * &b;
    let exact = linalg::truncated_svd(x.as_ref(), 5, &mut Rng::new(0), Par::Seq).unwrap();
    let p1 = run(&x, 5, 1, false);
    for j in 0..3 {
        assert!((exact.s[j] - p1.s[j]).abs() < 1e-10 * exact.s[0], "σ{j}");
    }
    assert!(p1.s[3..].iter().all(|&s| s == 0.0), "{:?}", p1.s);
    let lead = |m: &Mat<f64>| m.subcols(0, 3).to_owned();
    assert!(up_to_signs(&lead(&exact.u), &lead(&p1.u)) < 1e-9);
    assert!(up_to_signs(&lead(&exact.v), &lead(&p1.v)) < 1e-9);
    for p in [2, 3] {
        let pp = run(&x, 5, p, false);
        let (dw, dh) = (rel(&p1.wt, &pp.wt), rel(&p1.h, &pp.h));
        assert!(dw < 1e-9 && dh < 1e-9, "P = {p}: atoms {dw:e}, codes {dh:e}");
    }
}

#[test]
fn svd_part_takes_the_exact_path_only_where_it_applies() {
    // Dense with m ≤ n: the summed features' Gram, the one-process exact SVD's bits on one rank.
    let x = data(20, 90, 6);
    let exact = linalg::truncated_svd(x.as_ref(), 4, &mut Rng::new(0), Par::Seq).unwrap();
    let mut rng = Rng::new(SEED);
    let one = init::svd_part(x.as_ref().into(), 4, &mut rng, Par::Seq, Part::single(90)).unwrap();
    assert!(one.u == exact.u && one.s == exact.s && one.v == exact.v);
    assert_eq!(rng.next_u64(), Rng::new(SEED).next_u64(), "no random draws");
    // More features than samples (m > n): the randomized path, on 1 and 2 ranks alike.
    let x = data(90, 40, 7);
    let rand = linalg::randomized_svd(x.as_ref(), 4, &mut Rng::new(SEED), Par::Seq).unwrap();
    for p in [1, 2] {
        let s = threads::run(40, p, |part, rows| {
            let xr = x.as_ref().subcols(rows.start, rows.len());
            init::svd_part(xr.into(), 4, &mut Rng::new(SEED), Par::Seq, part)
                .unwrap()
                .s
        })
        .swap_remove(0);
        assert_eq!(s.len(), 4);
        for (j, (a, b)) in s.iter().zip(&rand.s).enumerate() {
            assert!((a - b).abs() < 1e-10 * rand.s[0], "P = {p}: σ{j} {a} vs {b}");
        }
    }
}
