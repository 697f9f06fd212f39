//! The one place that calls faer: GEMM, symmetric eigendecomposition, truncated SVD, and the
//! small vector kernels of the coordinate-descent sweeps (all internal to the crate), the thread
//! settings every method takes ([`par`], [`resolve_threads`], [`with_threads`]) and the exact
//! NNLS solver ([`nnls`]).
//!
//! Two measured pitfalls are handled here once (DESIGN.md, "Dependencies"):
//! 1. faer's AVX-512 GEMM kernels leave the upper vector state dirty, which halves the speed of
//!    the SSE code that runs next; `matmul` issues `vzeroupper` on every thread after a GEMM.
//! 2. Parallelism is always an explicit [`Par`] built from a thread count ([`par`]), never
//!    faer's global setting.

pub mod nnls;
pub(crate) mod range;
pub(crate) mod spmm;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::triangular::BlockStructure;
use faer::{Accum, Mat, MatMut, MatRef, Par};

use crate::error::{Error, Result};
use crate::real::Real;
use crate::rng::Rng;

/// The faer parallelism for a thread count: 1 → sequential, 0 → all cores, n → n threads.
pub fn par(threads: usize) -> Par {
    match threads {
        1 => Par::Seq,
        0 => Par::rayon(0),
        n => Par::rayon(n),
    }
}

/// Number of worker threads a `--threads` value means (0 = all cores).
pub fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// Errors for a thread count that would oversubscribe the machine beyond any use: more than
/// `max(16, 8 × cores)` threads (a pool of 100,000 threads takes minutes just to start).
pub fn check_threads(threads: usize) -> Result<()> {
    let cores = resolve_threads(0);
    let most = (8 * cores).max(16);
    if threads > most {
        return Err(Error::invalid(
            "threads",
            threads,
            format!("this machine has {cores} cores; use at most {most} (0 = all cores)"),
        ));
    }
    Ok(())
}

/// Errors when `bytes` (an estimate of what the computation will allocate for option `option` =
/// `value`) exceed the memory available now (`MemAvailable` of `/proc/meminfo`; no check where
/// that is unreadable), so that an impossible size is a one-line error instead of an abort on a
/// failed allocation.
pub(crate) fn check_memory(option: &'static str, value: impl std::fmt::Display, bytes: f64) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if bytes > available {
        return Err(Error::invalid(
            option,
            value,
            format!(
                "needs about {:.1} GB of memory and {:.1} GB are available; lower it",
                bytes / 1e9,
                available / 1e9
            ),
        ));
    }
    Ok(())
}

/// Errors when a buffer of `bytes` that the file `path` declares (`what`: e.g. "dimensions
/// [2097152, 32, 32]") exceeds the memory available now; checked before anything is read or
/// inflated, so that a forged header or a decompression bomb is a one-line error, never an abort.
pub(crate) fn check_file_memory(
    path: &std::path::Path,
    what: impl std::fmt::Display,
    bytes: f64,
) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if bytes > available {
        return Err(Error::format(
            path,
            format!(
                "{what} need about {:.1} GB of memory and {:.1} GB are available; read a smaller file (or fewer samples with `first`)",
                bytes / 1e9,
                available / 1e9
            ),
        ));
    }
    Ok(())
}

/// `Mat::from_fn` with a fallible allocation: [`Error::Numerical`] about `what` when it fails
/// (a process memory limit, `ulimit -v`), instead of an abort.
pub(crate) fn try_mat_from_fn<T>(
    rows: usize,
    cols: usize,
    f: impl FnMut(usize, usize) -> T,
    what: &str,
) -> Result<Mat<T>> {
    let mut m = Mat::<T>::new();
    m.try_reserve(rows, cols)
        .map_err(|e| out_of_memory(what, rows.saturating_mul(cols), format!("{e:?}")))?;
    m.resize_with(rows, cols, f);
    Ok(m)
}

fn out_of_memory(what: &str, n: usize, e: impl std::fmt::Display) -> Error {
    Error::Numerical {
        what: what.to_string(),
        reason: format!("cannot allocate {n} values ({e}); free memory, raise the process's memory limit, or use less data"),
    }
}

/// `MemAvailable` in bytes, where the system reports it.
pub(crate) fn available_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Runs `f` inside a rayon pool of exactly `threads` workers (0 = all cores), so that faer's
/// parallel GEMM and partlearn's own data-parallel loops both use that many threads
/// ([`check_threads`] first).
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(pool(threads)?.install(f))
}

/// The rayon pool of [`with_threads`], for callers that enter it many times (streaming passes
/// that leave it between blocks to hand each block's result to a non-`Send` sink).
pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    check_threads(threads)?;
    let n = resolve_threads(threads);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| Error::invalid("threads", threads, format!("cannot start a thread pool: {e}")))
}

/// Clears the upper halves of the vector registers on x86 with AVX (no-op elsewhere).
#[inline]
fn zero_upper() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX availability was checked at run time just above.
            unsafe { std::arch::x86_64::_mm256_zeroupper() }
        }
    }
}

/// `dst ← alpha·lhs·rhs` (`Accum::Replace`) or `dst ← dst + alpha·lhs·rhs` (`Accum::Add`).
/// All GEMMs of the library go through here (see the module doc for the `vzeroupper` reason).
/// A product with a long inner dimension and a small result (`R = HXᵀ` of a data set) is
/// summed over blocks of the inner dimension ([`long_inner`], [`blocked_sum`]).
pub(crate) fn matmul<T: Real>(
    mut dst: MatMut<'_, T>,
    beta: Accum,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    alpha: T,
    par: Par,
) {
    let (rows, cols, inner) = (dst.nrows(), dst.ncols(), lhs.ncols());
    if !long_inner(rows, cols, inner) {
        faer::linalg::matmul::matmul(dst, beta, lhs, rhs, alpha, par);
        after_gemm(par);
        return;
    }
    let parts = blocked_sum(rows, cols, inner, par, |part, r| {
        let len = r.end - r.start;
        faer::linalg::matmul::matmul(
            part,
            Accum::Add,
            lhs.subcols(r.start, len),
            rhs.subrows(r.start, len),
            alpha,
            Par::Seq,
        );
    });
    add_parts(dst.as_mut(), beta, &parts, |_, _| true);
}

/// Inner-dimension indices per product of [`blocked_sum`]: the blocks of a `k × n` factor
/// (`k ≤ 256`) and of the data fit in the caches.
const LONG_BLOCK: usize = 2048;

/// Fixed groups of blocks in [`blocked_sum`], one task and one partial result each.
const LONG_GROUPS: usize = 16;

/// Whether a `rows × cols` product over an inner dimension of `inner` is summed over blocks:
/// faer parallelizes a product over its result only, and ran `HHᵀ` of a million codes at
/// 14–44 GFLOP/s and `HXᵀ` of 60,000 images at 145–187 against 226–249 for `WᵀX` (2 threads). The
/// choice depends on the shapes only, never on the threads, so results do not either.
fn long_inner(rows: usize, cols: usize, inner: usize) -> bool {
    inner >= 4 * LONG_BLOCK && inner >= 16 * rows.max(cols) && LONG_GROUPS * rows * cols <= 1 << 22
}

/// The [`LONG_GROUPS`] partial results of a long product: group `g` sums, with
/// `block(partial, range)` (which adds a block's product to `partial`), its fixed run of
/// [`LONG_BLOCK`]-long ranges of the inner dimension in order; groups run in parallel on `par`.
fn blocked_sum<T: Real>(
    rows: usize,
    cols: usize,
    inner: usize,
    par: Par,
    block: impl Fn(MatMut<'_, T>, std::ops::Range<usize>) + Sync,
) -> Vec<Mat<T>> {
    let blocks = inner.div_ceil(LONG_BLOCK);
    let group = |g: usize| -> Mat<T> {
        let mut part = Mat::zeros(rows, cols);
        for b in (g * blocks / LONG_GROUPS)..((g + 1) * blocks / LONG_GROUPS) {
            block(part.as_mut(), b * LONG_BLOCK..((b + 1) * LONG_BLOCK).min(inner));
        }
        zero_upper();
        part
    };
    match par {
        Par::Seq => (0..LONG_GROUPS).map(group).collect(),
        _ => {
            use rayon::prelude::*;
            (0..LONG_GROUPS).into_par_iter().map(group).collect()
        }
    }
}

/// `dst ← Σ parts` (or `dst + Σ parts`), the parts added in order, on the entries `(i, j)`
/// that `keep` selects.
fn add_parts<T: Real>(
    mut dst: MatMut<'_, T>,
    beta: Accum,
    parts: &[Mat<T>],
    keep: impl Fn(usize, usize) -> bool,
) {
    for j in 0..dst.ncols() {
        for i in 0..dst.nrows() {
            if !keep(i, j) {
                continue;
            }
            let mut v = match beta {
                Accum::Replace => T::zero(),
                Accum::Add => dst[(i, j)],
            };
            for p in parts {
                v += p[(i, j)];
            }
            dst[(i, j)] = v;
        }
    }
}

/// `xᵀ` (`n_features × n_samples`) with contiguous columns, the layout the solvers read: a view
/// when `x` is row-major (numpy's C order, a [`crate::data::Dataset`]), else a copy made once.
pub(crate) enum Columns<'a, T> {
    /// A view of the caller's matrix.
    View(MatRef<'a, T>),
    /// A column-major copy.
    Owned(Mat<T>),
}

impl<'a, T: Real> Columns<'a, T> {
    /// The samples of `x` (`n_samples × n_features`) as contiguous columns.
    pub fn of(x: MatRef<'a, T>) -> Self {
        if x.col_stride() == 1 {
            Columns::View(x.transpose())
        } else {
            Columns::Owned(x.transpose().to_owned())
        }
    }

    /// The `n_features × n_samples` matrix.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        match self {
            Columns::View(v) => *v,
            Columns::Owned(m) => m.as_ref(),
        }
    }
}

/// `lhs·rhs` into a new matrix (for the methods whose products change shape from step to step).
pub(crate) fn mul<T: Real>(lhs: MatRef<'_, T>, rhs: MatRef<'_, T>, par: Par) -> Mat<T> {
    let mut dst = Mat::<T>::zeros(lhs.nrows(), rhs.ncols());
    matmul(dst.as_mut(), Accum::Replace, lhs, rhs, T::one(), par);
    dst
}

fn after_gemm(par: Par) {
    zero_upper();
    if let Par::Rayon(_) = par {
        rayon::broadcast(|_| zero_upper());
    }
}

/// `dst ← a·aᵀ` (full symmetric result; only the lower triangle is computed, then mirrored).
/// `a` is `k × N`, `dst` is `k × k`; costs `k²N` multiply-adds. A long `a` (the codes `H` of a
/// data set) is summed over column blocks as [`matmul`] does.
pub(crate) fn gram<T: Real>(mut dst: MatMut<'_, T>, a: MatRef<'_, T>, par: Par) {
    let (k, n) = a.shape();
    if long_inner(k, k, n) {
        let parts = blocked_sum(k, k, n, par, |part, r| {
            gram_lower(part, a.subcols(r.start, r.end - r.start), Accum::Add, Par::Seq)
        });
        add_parts(dst.as_mut(), Accum::Replace, &parts, |i, j| i >= j);
    } else {
        gram_lower(dst.as_mut(), a, Accum::Replace, par);
    }
    for j in 0..k {
        for i in 0..j {
            let v = dst[(j, i)];
            dst[(i, j)] = v;
        }
    }
}

/// The lower triangle of `dst ← a·aᵀ` (or `dst + a·aᵀ` with [`Accum::Add`]).
fn gram_lower<T: Real>(dst: MatMut<'_, T>, a: MatRef<'_, T>, accum: Accum, par: Par) {
    faer::linalg::matmul::triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        accum,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        T::one(),
        par,
    );
    after_gemm(par);
}

/// `Σ_ij a_ij b_ij`, accumulated in f64 (column by column, so the result does not depend on
/// the thread count).
pub(crate) fn inner<T: Real>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> f64 {
    debug_assert_eq!(a.shape(), b.shape());
    let mut s = 0.0f64;
    for j in 0..a.ncols() {
        let (ca, cb) = (a.col(j), b.col(j));
        let mut sj = 0.0f64;
        for i in 0..a.nrows() {
            sj += ca[i].to_f64() * cb[i].to_f64();
        }
        s += sj;
    }
    s
}

/// `‖a‖²_F` accumulated in f64.
pub(crate) fn frob_sq<T: Real>(a: MatRef<'_, T>) -> f64 {
    inner(a, a)
}

/// Eigen-decomposition of a symmetric matrix, eigenvalues in **decreasing** order with their
/// eigenvectors as columns. Runs sequentially: it is only used on small (≤ a few thousand)
/// matrices, and a fixed order keeps results identical for every thread count.
pub(crate) fn sym_eigen_desc<T: Real>(a: MatRef<'_, T>) -> Result<(Vec<T>, Mat<T>)> {
    let n = a.nrows();
    let mut u = Mat::<T>::zeros(n, n);
    let mut s = faer::diag::Diag::<T>::zeros(n);
    let par = Par::Seq;
    let req = faer::linalg::evd::self_adjoint_evd_scratch::<T>(
        n,
        faer::linalg::evd::ComputeEigenvectors::Yes,
        par,
        Default::default(),
    );
    let mut buf = MemBuffer::new(req);
    faer::linalg::evd::self_adjoint_evd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        par,
        MemStack::new(&mut buf),
        Default::default(),
    )
    .map_err(|e| Error::Numerical {
        what: "symmetric eigendecomposition".into(),
        reason: format!("{e:?}; check the data for huge or non-finite values"),
    })?;
    // faer returns increasing order.
    let vals: Vec<T> = (0..n).rev().map(|i| s[i]).collect();
    let vecs = Mat::<T>::from_fn(n, n, |i, j| u[(i, n - 1 - j)]);
    Ok((vals, vecs))
}

/// A truncated SVD `X ≈ U diag(s) Vᵀ` with `k` terms, singular values decreasing.
#[derive(Clone, Debug)]
pub(crate) struct TruncatedSvd<T: Real> {
    /// `m × k`, orthonormal columns.
    pub u: Mat<T>,
    /// `k` singular values, decreasing.
    pub s: Vec<T>,
    /// `n × k`, orthonormal columns.
    pub v: Mat<T>,
}

/// Whether [`truncated_svd`] of an `m × n` matrix takes the exact path (eigendecomposition of
/// the smaller side's Gram matrix) rather than the randomized one.
pub(crate) fn svd_is_exact(m: usize, n: usize) -> bool {
    m.min(n) <= 2048
}

/// The exact branch of [`truncated_svd`] for `xs` (`p × N`, `p` the smaller side) from its Gram
/// `g = xs·xsᵀ` (`p × p`; a distributed fit sums it over processes, each holding columns of
/// `xs`): `(U, s, V)` with `V = xsᵀ U Σ⁻¹` for the columns held here.
pub(crate) fn svd_from_gram<T: Real>(
    xs: MatRef<'_, T>,
    g: MatRef<'_, T>,
    k: usize,
    par: Par,
) -> Result<(Mat<T>, Vec<T>, Mat<T>)> {
    let p = xs.nrows();
    let (vals, vecs) = sym_eigen_desc(g)?;
    let u = vecs.subcols(0, k).to_owned();
    let s: Vec<T> = vals[..k].iter().map(|&l| l.max(T::zero()).sqrt()).collect();
    let mut v = Mat::<T>::zeros(xs.ncols(), k);
    matmul(
        v.as_mut(),
        Accum::Replace,
        xs.transpose(),
        u.as_ref(),
        T::one(),
        par,
    );
    // Eigenvalues of the Gram matrix carry an absolute error ≈ ε·s₀², so singular values below
    // s₀·sqrt(ε·p) are indistinguishable from 0: their vectors on the far side would be noise
    // (this matters for rank-deficient data such as swimmer, rank 13).
    let s0 = s.first().copied().unwrap_or(T::zero());
    let tiny = s0 * (T::EPSILON * T::from_usize(p.max(1))).sqrt();
    let s: Vec<T> = s
        .into_iter()
        .map(|v| if v > tiny { v } else { T::zero() })
        .collect();
    for j in 0..k {
        let inv = if s[j] > T::zero() { s[j].recip() } else { T::zero() };
        for x in v.col_as_slice_mut(j) {
            *x = *x * inv;
        }
    }
    Ok((u, s, v))
}

/// Leading `k` singular triplets of `x` (`m × n`).
///
/// When the smaller side is at most 2048 the Gram matrix of that side is formed and
/// eigen-decomposed (exact up to rounding; two GEMMs); otherwise a randomized range finder
/// (Halko, Martinsson & Tropp 2011) with `k + 10` columns and 4 power iterations, re-
/// orthonormalized by QR, as scikit-learn's `randomized_svd`. Singular vectors of (numerically)
/// zero singular values are returned as zero columns on the side that cannot be recovered
/// ([`randomized_svd`] is the randomized branch).
pub(crate) fn truncated_svd<T: Real>(
    x: MatRef<'_, T>,
    k: usize,
    rng: &mut Rng,
    par: Par,
) -> Result<TruncatedSvd<T>> {
    let (m, n) = (x.nrows(), x.ncols());
    let k = k.min(m).min(n);
    if svd_is_exact(m, n) {
        // Work on the smaller side: if m ≤ n, X Xᵀ = U Σ² Uᵀ, V = Xᵀ U Σ⁻¹; else the transpose.
        let (xs, transposed) = if m <= n { (x, false) } else { (x.transpose(), true) };
        let p = xs.nrows();
        let mut g = Mat::<T>::zeros(p, p);
        gram(g.as_mut(), xs, par);
        let (u, s, v) = svd_from_gram(xs, g.as_ref(), k, par)?;
        Ok(if transposed {
            TruncatedSvd { u: v, s, v: u }
        } else {
            TruncatedSvd { u, s, v }
        })
    } else {
        randomized_svd(x, k, rng, par)
    }
}

/// The randomized branch of [`truncated_svd`] (taken there when both sides exceed 2048; callable
/// on any size): the range finder of Halko, Martinsson & Tropp (2011) on `l = k + 10` Gaussian
/// columns `Ω` (`n × l`, drawn column by column), 4 power iterations re-orthonormalized by
/// Householder QR, then the SVD of `B = QᵀX` (`l × n`) through its `l × l` Gram, and `U = Q·U_B`.
pub(crate) fn randomized_svd<T: Real>(
    x: MatRef<'_, T>,
    k: usize,
    rng: &mut Rng,
    par: Par,
) -> Result<TruncatedSvd<T>> {
    let (m, n) = (x.nrows(), x.ncols());
    let k = k.min(m).min(n);
    let l = (k + range::OVERSAMPLE).min(m).min(n);
    let omega = Mat::<T>::from_fn(n, l, |_, _| T::from_f64(rng.normal()));
    let mut y = Mat::<T>::zeros(m, l);
    matmul(y.as_mut(), Accum::Replace, x, omega.as_ref(), T::one(), par);
    let mut q = y.qr().compute_thin_Q();
    let mut z = Mat::<T>::zeros(n, l);
    for _ in 0..range::POWER_ITERATIONS {
        matmul(
            z.as_mut(),
            Accum::Replace,
            x.transpose(),
            q.as_ref(),
            T::one(),
            par,
        );
        let qz = z.qr().compute_thin_Q();
        matmul(y.as_mut(), Accum::Replace, x, qz.as_ref(), T::one(), par);
        q = y.qr().compute_thin_Q();
    }
    // B = Qᵀ X (l × n); its SVD through the l × l Gram B Bᵀ.
    let mut b = Mat::<T>::zeros(l, n);
    matmul(b.as_mut(), Accum::Replace, q.transpose(), x, T::one(), par);
    let small = truncated_svd(b.as_ref(), k, rng, par)?;
    Ok(lift(q.as_ref(), small, par))
}

/// The SVD of `X` from that of `B = QᵀX` (`Q` orthonormal, `m × l`): `U = Q·U_B`, the same
/// singular values and right vectors.
pub(crate) fn lift<T: Real>(q: MatRef<'_, T>, small: TruncatedSvd<T>, par: Par) -> TruncatedSvd<T> {
    let mut u = Mat::<T>::zeros(q.nrows(), small.u.ncols());
    matmul(u.as_mut(), Accum::Replace, q, small.u.as_ref(), T::one(), par);
    TruncatedSvd {
        u,
        s: small.s,
        v: small.v,
    }
}

/// `Σ a_i b_i` over the common length, in f64 with four independent accumulators (plain
/// multiply-add, so the compiler vectorizes it on any target). Used by the small dense solves
/// (NNLS, SVM) outside the dispatched kernels.
pub(crate) fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        for t in 0..4 {
            acc[t] += a[4 * c + t] * b[4 * c + t];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in 4 * chunks..n {
        s += a[i] * b[i];
    }
    s
}

/// Small dense kernels for the per-column sweeps and elementwise passes, compiled for the
/// baseline target, with AVX2+FMA and (the auto-encoder's) with AVX-512, the widest the CPU has
/// picked at run time (our own code is otherwise built for plain x86-64, so without this the
/// sweeps would run on 128-bit SSE).
pub(crate) mod kernels {
    #[cfg(test)]
    use crate::real::Real;

    /// `Σ a_i b_i` with 8 independent accumulators (lets the compiler vectorize); the test of
    /// [`simd`] runs it on both paths.
    #[cfg(test)]
    #[inline(always)]
    pub fn dot_generic<T: Real>(a: &[T], b: &[T]) -> T {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [T::zero(); 8];
        let chunks = n / 8;
        for c in 0..chunks {
            let (aa, bb) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
            for l in 0..8 {
                acc[l] = aa[l].mul_add(bb[l], acc[l]);
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for i in chunks * 8..n {
            s = a[i].mul_add(b[i], s);
        }
        s
    }

    /// A loop that [`simd`] compiles twice. `run` must be `#[inline(always)]`: it is then
    /// compiled inside [`simd`]'s AVX2 function. (A closure handed to a `#[target_feature]`
    /// function is not: it stays a function of its own, built for the baseline, unless LLVM
    /// happens to inline it — which it does not for loops of any size.)
    pub trait Kernel {
        type Out;
        fn run(self) -> Self::Out;
    }

    /// Hints the cache to load `col` (every 64-byte line of it); a no-op off x86-64.
    #[inline(always)]
    pub fn prefetch<T>(col: &[T]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let base = col.as_ptr().cast::<i8>();
            for off in (0..std::mem::size_of_val(col)).step_by(64) {
                // SAFETY: a prefetch is a hint and never faults; the address is inside `col`.
                #[allow(unused_unsafe)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off))
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = col;
    }

    /// The instruction sets [`simd_at`] compiles a kernel for, narrowest first.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Level {
        /// The baseline target (SSE2 on x86-64).
        Baseline,
        /// AVX2 and FMA.
        Avx2,
        /// AVX-512 (foundation) with AVX2 and FMA: 512-bit vectors.
        Avx512,
    }

    impl Level {
        /// The widest level this CPU runs.
        #[inline(always)]
        pub fn best() -> Level {
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 =
                    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
                if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                    return Level::Avx512;
                }
                if avx2 {
                    return Level::Avx2;
                }
            }
            Level::Baseline
        }

        /// Every level this CPU runs, narrowest first.
        #[cfg(test)]
        pub fn available() -> Vec<Level> {
            let best = Level::best();
            [Level::Baseline, Level::Avx2, Level::Avx512]
                .into_iter()
                .filter(|&l| l <= best)
                .collect()
        }
    }

    /// Runs `kernel` compiled with AVX2+FMA when the CPU has them.
    ///
    /// `mul_add` compiles to a single FMA instruction there and to a (slow, but exactly
    /// rounded) library call on the baseline, no other multiply-add is fused and no sum is
    /// reordered (vector lanes are explicit in the kernels that reduce), so results are
    /// identical at every [`Level`].
    #[inline(always)]
    pub fn simd<K: Kernel>(kernel: K) -> K::Out {
        simd_at(Level::Avx2, kernel)
    }

    /// [`simd`] with AVX-512 when the CPU has it: for the auto-encoder's elementwise passes and
    /// update, which 512-bit vectors made about 5 % of a shallow epoch faster (docs/benchmarks.md);
    /// the NMF sweeps, written around eight lanes, were not faster and stay on [`simd`].
    #[inline(always)]
    pub fn simd_wide<K: Kernel>(kernel: K) -> K::Out {
        simd_at(Level::Avx512, kernel)
    }

    /// Runs `kernel` compiled for `level`, or for the CPU's widest level ([`Level::best`]) when
    /// `level` is wider.
    #[inline(always)]
    pub fn simd_at<K: Kernel>(level: Level, kernel: K) -> K::Out {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<K: Kernel>(kernel: K) -> K::Out {
                kernel.run()
            }
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512<K: Kernel>(kernel: K) -> K::Out {
                kernel.run()
            }
            match level.min(Level::best()) {
                // SAFETY: `Level::best` detected the level's features at run time.
                Level::Avx512 => return unsafe { avx512(kernel) },
                // SAFETY: as above.
                Level::Avx2 => return unsafe { avx2(kernel) },
                Level::Baseline => {}
            }
        }
        let _ = level;
        kernel.run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_thread_counts_and_sizes_are_errors() {
        let cores = resolve_threads(0);
        assert!(check_threads(0).is_ok() && check_threads(cores).is_ok() && check_threads(16).is_ok());
        let e = check_threads(100_000).unwrap_err().to_string();
        assert!(
            e.contains("invalid threads = 100000") && e.contains("at most"),
            "{e}"
        );
        assert!(with_threads(100_000, || ()).is_err());
        assert!(check_memory("k", 1, 1.0).is_ok());
        // A petabyte: refused wherever the available memory is known (always on Linux).
        if available_memory().is_some() {
            let e = check_memory("k", 7, 1e15).unwrap_err().to_string();
            assert!(e.contains("invalid k = 7") && e.contains("GB"), "{e}");
        }
    }

    fn random(m: usize, n: usize, seed: u64) -> Mat<f64> {
        let mut r = Rng::new(seed);
        Mat::from_fn(m, n, |_, _| r.uniform())
    }

    fn check_svd(x: MatRef<'_, f64>, k: usize) {
        let svd = truncated_svd(x, k, &mut Rng::new(1), Par::Seq).unwrap();
        // Orthonormal columns and X v_j = s_j u_j.
        for j in 0..k {
            let xv = x * svd.v.col(j);
            for i in 0..x.nrows() {
                assert!(
                    (xv[i] - svd.s[j] * svd.u[(i, j)]).abs() < 1e-8 * svd.s[0],
                    "triplet {j}"
                );
            }
            assert!((svd.u.col(j).norm_l2() - 1.0).abs() < 1e-8);
            assert!((svd.v.col(j).norm_l2() - 1.0).abs() < 1e-8);
        }
        assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn truncated_svd_gram_path_both_orientations() {
        check_svd(random(30, 50, 0).as_ref(), 5);
        check_svd(random(50, 30, 1).as_ref(), 5);
    }

    #[test]
    fn truncated_svd_randomized_path_on_low_rank() {
        // rank-6 3000 × 2100 matrix: randomized path, exact on the leading 6 triplets.
        let a = random(3000, 6, 2);
        let b = random(6, 2100, 3);
        let x = &a * &b;
        check_svd(x.as_ref(), 6);
    }

    #[test]
    fn gram_matches_matmul() {
        let a = random(7, 40, 4);
        let mut g = Mat::zeros(7, 7);
        gram(g.as_mut(), a.as_ref(), Par::Seq);
        let full = &a * a.transpose();
        assert!((&g - &full).norm_max() < 1e-12);
        // A long matrix takes the blocked sum (an uneven last block and groups), in f64 and
        // f32, symmetric, and the same bits on 1 and 2 threads.
        let n = 4 * LONG_BLOCK * 3 + 17;
        let a = random(9, n, 5);
        let mut g = Mat::zeros(9, 9);
        gram(g.as_mut(), a.as_ref(), Par::Seq);
        let full = &a * a.transpose();
        assert!(
            (&g - &full).norm_max() < 1e-9 * full.norm_max(),
            "{:?}",
            (&g - &full).norm_max()
        );
        assert!(g == g.transpose().to_owned());
        let a32 = Mat::<f32>::from_fn(9, n, |i, j| a[(i, j)] as f32);
        let run = |p: Par| {
            let mut g = Mat::<f32>::zeros(9, 9);
            gram(g.as_mut(), a32.as_ref(), p);
            g
        };
        let (seq, two) = (run(Par::Seq), with_threads(2, || run(par(2))).unwrap());
        assert!(seq == two, "the blocked Gram depends on the threads");
        let rel = (0..9)
            .flat_map(|i| (0..9).map(move |j| (i, j)))
            .map(|(i, j)| (seq[(i, j)] as f64 - full[(i, j)]).abs() / full[(i, j)].abs())
            .fold(0.0, f64::max);
        assert!(rel < 1e-5, "f32 blocked Gram off by {rel:e}");
    }

    #[test]
    fn dot_kernel_matches_naive() {
        let a: Vec<f64> = (0..37).map(|i| i as f64 * 0.5).collect();
        let b: Vec<f64> = (0..37).map(|i| 1.0 - i as f64 * 0.1).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        struct Dot<'a>(&'a [f64], &'a [f64]);
        impl kernels::Kernel for Dot<'_> {
            type Out = f64;
            #[inline(always)]
            fn run(self) -> f64 {
                kernels::dot_generic(self.0, self.1)
            }
        }
        for level in kernels::Level::available() {
            let fast = kernels::simd_at(level, Dot(&a, &b));
            assert_eq!(
                fast.to_bits(),
                kernels::dot_generic(&a, &b).to_bits(),
                "{level:?}"
            );
            assert!((naive - fast).abs() < 1e-10);
        }
    }
}

#[cfg(test)]
mod determinism_tests {
    use super::*;

    /// Same seed → same bits with 1 and 2 threads relies on faer's parallel GEMM splitting only
    /// the output, never the reduction: checked here at the two NMF shapes (wide output and
    /// long reduction).
    #[test]
    fn parallel_gemm_is_bitwise_sequential() {
        let mut r = Rng::new(7);
        let a = Mat::<f32>::from_fn(100, 784, |_, _| r.uniform() as f32);
        let x = Mat::<f32>::from_fn(784, 6000, |_, _| r.uniform() as f32);
        let h = Mat::<f32>::from_fn(100, 6000, |_, _| r.uniform() as f32);
        let n = 3 * 4 * LONG_BLOCK + 5;
        let hl = Mat::<f32>::from_fn(20, n, |_, _| r.uniform() as f32);
        let xl = Mat::<f32>::from_fn(50, n, |_, _| r.uniform() as f32);
        let run = |p: Par| {
            let mut wide = Mat::<f32>::zeros(100, 6000);
            matmul(wide.as_mut(), Accum::Replace, a.as_ref(), x.as_ref(), 1.0, p);
            let mut long = Mat::<f32>::zeros(100, 784);
            matmul(long.as_mut(), Accum::Replace, h.as_ref(), x.transpose(), 1.0, p);
            let mut g = Mat::<f32>::zeros(100, 100);
            gram(g.as_mut(), h.as_ref(), p);
            // A reduction long enough to be summed over blocks (`long_inner`), added to `dst`.
            let mut summed = Mat::<f32>::from_fn(20, 50, |i, j| (i + j) as f32);
            matmul(summed.as_mut(), Accum::Add, hl.as_ref(), xl.transpose(), 0.5, p);
            (wide, long, g, summed)
        };
        let s = run(Par::Seq);
        let p = with_threads(2, || run(par(2))).unwrap();
        assert!(s.0 == p.0, "wide GEMM differs");
        assert!(s.1 == p.1, "long-reduction GEMM differs");
        assert!(s.2 == p.2, "Gram differs");
        assert!(s.3 == p.3, "blocked long-reduction GEMM differs");
        // … and it is the product: against f64.
        assert!(long_inner(20, 50, n));
        let (hd, xd) = (hl.map(|&v| v as f64), xl.map(|&v| v as f64));
        let want = Mat::<f64>::from_fn(20, 50, |i, j| (i + j) as f64) + 0.5 * (&hd * xd.transpose());
        for j in 0..50 {
            for i in 0..20 {
                let rel = (s.3[(i, j)] as f64 - want[(i, j)]).abs() / want[(i, j)].abs();
                assert!(rel < 1e-5, "({i}, {j}) off by {rel:e}");
            }
        }
    }
}
