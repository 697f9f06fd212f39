//! Data-parallel fits over several processes (METHODS.md §1, the 1-D and 2-D distributions of
//! MPI-FAUN, Kannan, Ballard & Park 2016). The processes ("ranks") form a [`Grid`] of
//! `rows × cols`: rank `r` sits at `(i, j) = (r / cols, r % cols)` and holds the block of `X`
//! made of the `i`-th block of samples and the `j`-th block of features, the codes of its
//! samples (replicated along its grid row) and the atoms' entries of its features (replicated
//! along its grid column). With `cols = 1` (1-D, the default for tall data) every rank holds
//! whole samples and all atoms. The solvers reduce their `k × k` Grams and cross terms, and the
//! local terms of the objective, through a [`Comm`] over the ranks that share a block of
//! features ([`Part::sum_samples`]) or of samples ([`Part::sum_features`]); [`Single`] is the
//! one-process communicator (no communication, same bits as a plain fit).
//!
//! Every reduction is an element-wise sum in f64 whose order is fixed by the number of ranks
//! (the MPI implementation, [`MpiComm`] with the `mpi` feature, adds along a fixed binomial
//! tree and broadcasts the result), so a run is reproducible with the same `P` and agrees with
//! the one-process fit to rounding.

pub mod model;
#[cfg(feature = "mpi")]
mod mpi_comm;
#[cfg(test)]
pub(crate) mod threads;

use std::ops::Range;

#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;

use faer::Mat;

use crate::error::{Error, Result};
use crate::nmf::cd::LANES;
use crate::real::Real;

/// A group of processes that sum vectors together.
pub trait Comm: Sync {
    /// This process's index, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `buf` on every rank by the element-wise sum of every rank's `buf` (the same
    /// length on every rank), with the same bits on every rank and for every run with this
    /// [`Comm::size`]. Ranks call it in the same order with the same lengths.
    fn sum(&self, buf: &mut [f64]);
    /// Payload bytes this rank has sent and received in [`Comm::sum`]s so far.
    fn bytes(&self) -> u64;
    /// Wall-clock seconds this rank has spent in [`Comm::sum`]s so far (waiting for the others
    /// included).
    fn seconds(&self) -> f64 {
        0.0
    }
    /// Rank 0 receives every rank's `local` (lengths may differ) concatenated in rank order;
    /// the other ranks get an empty vector. Ranks call it in the same order (checkpoints
    /// gather the codes blocks with it).
    fn gather(&self, local: &[f64]) -> Vec<f64>;
    /// [`Comm::sum`] over the ranks `members` only (ascending, this rank among them): every
    /// rank of the job calls it at the same point with its own group (the groups partition the
    /// ranks, e.g. the rows of a [`Grid`]); the addition order depends only on the group.
    fn sum_among(&self, buf: &mut [f64], members: &[usize]);
}

/// The one-process communicator: sums are the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _buf: &mut [f64]) {}
    fn bytes(&self) -> u64 {
        0
    }
    fn gather(&self, local: &[f64]) -> Vec<f64> {
        local.to_vec()
    }
    fn sum_among(&self, _buf: &mut [f64], _members: &[usize]) {}
}

/// The process-wide [`Single`].
pub(crate) static SINGLE: Single = Single;

/// The rows `start..end` of rank `rank` out of `ranks` for `n` rows: contiguous blocks whose
/// boundaries are multiples of 16 (the column blocks of the coordinate-descent kernel, so that
/// HALS's per-block inner stopping rule sees the same blocks as in one process), as even as
/// that allows. Ranks beyond the data get empty blocks.
pub fn row_block(n: usize, ranks: usize, rank: usize) -> Range<usize> {
    let ranks = ranks.max(1);
    let blocks = n.div_ceil(LANES);
    let (base, extra) = (blocks / ranks, blocks % ranks);
    let first = rank * base + rank.min(extra);
    let count = base + usize::from(rank < extra);
    let start = (first * LANES).min(n);
    let end = ((first + count) * LANES).min(n);
    start..end
}

/// The processes as a grid of `rows` blocks of samples × `cols` blocks of features (MPI-FAUN's
/// processor grid; `cols = 1` is the 1-D row distribution).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Blocks of samples (`p_r`).
    pub rows: usize,
    /// Blocks of features (`p_c`).
    pub cols: usize,
}

impl Grid {
    /// The 1-D grid of `p` row blocks.
    pub fn rows(p: usize) -> Grid {
        Grid {
            rows: p.max(1),
            cols: 1,
        }
    }

    /// The grid of `p` processes for `n` samples and `m` features that moves the fewest words
    /// per process and iteration ([`Grid::words`]; ties go to fewer feature blocks): 1-D for
    /// tall data, `√P × √P`-like when `n ≈ m`. Feature blocks are at least 16 features wide
    /// ([`row_block`]), so `cols ≤ ⌈m / 16⌉`. Visits the divisors of `p` in pairs `(d, p/d)`,
    /// `d ≤ √p`: `O(√p)` steps.
    pub fn choose(p: usize, n: usize, m: usize, k: usize) -> Grid {
        let p = p.max(1);
        (1..)
            .take_while(|&d| d <= p / d)
            .filter(|&d| p % d == 0)
            .flat_map(|d| [d, p / d].into_iter().take(if d == p / d { 1 } else { 2 }))
            .filter(|&c| (c == 1 || c <= m.div_ceil(LANES)) && p / c <= n.div_ceil(LANES).max(1))
            .map(|c| Grid { rows: p / c, cols: c })
            .min_by(|a, b| {
                a.words(n, m, k)
                    .total_cmp(&b.words(n, m, k))
                    .then(a.cols.cmp(&b.cols))
            })
            .unwrap_or(Grid::rows(p))
    }

    /// Parses `RxC` (e.g. `2x2`).
    pub fn parse(s: &str) -> Result<Grid> {
        let bad = || {
            Error::invalid(
                "grid",
                s,
                "give the processor grid as ROWSxCOLS (sample blocks × feature blocks, e.g. 2x2), or `auto`",
            )
        };
        let (r, c) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (rows, cols) = (
            r.trim().parse::<usize>().map_err(|_| bad())?,
            c.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if rows == 0 || cols == 0 {
            return Err(bad());
        }
        Ok(Grid { rows, cols })
    }

    /// Processes of the grid.
    pub fn size(&self) -> usize {
        self.rows * self.cols
    }

    /// Payloads the busiest process of a grid column and of a grid row moves per sum
    /// ([`Part::sum_samples`], [`Part::sum_features`]): a sum over every process (a grid column
    /// on a 1-D grid, [`Comm::sum`]) is `⌈log₂ g⌉` receptions and a broadcast counted once; a
    /// sum over a part of them ([`Comm::sum_among`]) goes up and back down a binomial tree,
    /// `2⌈log₂ g⌉`.
    pub fn moves(&self) -> (f64, f64) {
        let lg = |g: usize| (g as f64).log2().ceil();
        let column = match (self.rows, self.cols) {
            (1, _) => 0.0,
            (r, 1) => 1.0 + lg(r),
            (r, _) => 2.0 * lg(r),
        };
        (column, 2.0 * lg(self.cols))
    }

    /// Words (numbers) the busiest process sends and receives per iteration of a Frobenius fit
    /// on this grid ([`Grid::moves`] payloads per sum): the codes' cross term
    /// `P_i = Σ_j W_jᵀX_ij` (`k × n/rows`) and `Q = WᵀW` (`k²`) over a grid row, the atoms'
    /// `R_j = Σ_i H_iX_ijᵀ` (`k × m/cols`) and `T = HHᵀ` (`k²`) over a grid column, without the
    /// few scalars (MPI-FAUN's reduce-scatter + all-gather of the same blocks moves `2(g−1)/g`
    /// payloads instead).
    pub fn words(&self, n: usize, m: usize, k: usize) -> f64 {
        let (column, row) = self.moves();
        let (k, n, m) = (k as f64, n as f64, m as f64);
        row * (k * (n / self.rows as f64).ceil() + k * k)
            + column * (k * (m / self.cols as f64).ceil() + k * k)
    }
}

/// Where this process's block sits in the whole data: the samples `offset..offset + local` of
/// `n_total`, the features `feature_offset..feature_offset + local` of `m_total`, the [`Grid`]
/// and the [`Comm`] joining the processes.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    /// The processes.
    pub comm: &'a dyn Comm,
    /// Global index of this rank's first row (sample).
    pub offset: usize,
    /// Rows of the whole data.
    pub n_total: usize,
    /// The processor grid (`comm.size()` processes).
    pub grid: Grid,
    /// Global index of this rank's first feature (0 on a 1-D grid).
    pub feature_offset: usize,
    /// Features of the whole data.
    pub m_total: usize,
}

impl std::fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("grid", &self.grid)
            .field("offset", &self.offset)
            .field("n_total", &self.n_total)
            .field("feature_offset", &self.feature_offset)
            .field("m_total", &self.m_total)
            .finish()
    }
}

impl<'a> Part<'a> {
    /// The whole data in one process.
    pub fn single(n: usize) -> Part<'static> {
        Part {
            comm: &SINGLE,
            offset: 0,
            n_total: n,
            grid: Grid::rows(1),
            feature_offset: 0,
            m_total: 0,
        }
    }

    /// The 1-D row distribution: this process holds the rows `offset..` of `n_total`, with all
    /// `m` features.
    pub fn rows(comm: &'a dyn Comm, offset: usize, n_total: usize, m: usize) -> Part<'a> {
        Part {
            comm,
            offset,
            n_total,
            grid: Grid::rows(comm.size()),
            feature_offset: 0,
            m_total: m,
        }
    }

    /// The block of rank `comm.rank()` on `grid` for data of `n` samples and `m` features:
    /// samples `row_block(n, grid.rows, i)`, features `row_block(m, grid.cols, j)` (blocks on
    /// multiples of 16). `grid.size()` must equal `comm.size()`.
    pub fn on_grid(comm: &'a dyn Comm, grid: Grid, n: usize, m: usize) -> Result<Part<'a>> {
        if grid.size() != comm.size() {
            return Err(Error::invalid(
                "grid",
                format!("{}x{}", grid.rows, grid.cols),
                format!(
                    "the grid has {} places for {} processes; give ROWSxCOLS with ROWS·COLS = {}",
                    grid.size(),
                    comm.size(),
                    comm.size()
                ),
            ));
        }
        let (i, j) = (comm.rank() / grid.cols, comm.rank() % grid.cols);
        Ok(Part {
            comm,
            offset: row_block(n, grid.rows, i).start,
            n_total: n,
            grid,
            feature_offset: row_block(m, grid.cols, j).start,
            m_total: m,
        })
    }

    /// This rank's samples and features: `(samples, features)` ranges of the whole data.
    pub fn blocks(&self) -> (Range<usize>, Range<usize>) {
        let (i, j) = self.position();
        (
            row_block(self.n_total, self.grid.rows, i),
            row_block(self.m_total, self.grid.cols, j),
        )
    }

    /// This rank's place `(i, j)` on the grid.
    pub fn position(&self) -> (usize, usize) {
        let r = self.comm.rank();
        (r / self.grid.cols, r % self.grid.cols)
    }

    /// Whether more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.comm.size() > 1
    }

    /// Whether the samples are split over processes (`rows > 1`).
    pub fn splits_samples(&self) -> bool {
        self.is_distributed() && self.grid.rows > 1
    }

    /// Whether the features are split (a 2-D grid, `cols > 1`).
    pub fn splits_features(&self) -> bool {
        self.grid.cols > 1
    }

    /// Sums `buf` over every process.
    pub fn sum_all(&self, buf: &mut [f64]) {
        if self.is_distributed() {
            self.comm.sum(buf);
        }
    }

    /// The sum of `v` over every process.
    pub fn sum1_all(&self, v: f64) -> f64 {
        let mut b = [v];
        self.sum_all(&mut b);
        b[0]
    }

    /// Sums `buf` over the processes of this grid column: those holding the same features and
    /// the other samples (every process on a 1-D grid; the codes' terms `T`, `R`, penalties).
    pub fn sum_samples(&self, buf: &mut [f64]) {
        if !self.splits_samples() {
            return;
        }
        if self.grid.cols == 1 {
            self.comm.sum(buf);
        } else {
            let j = self.position().1;
            let members: Vec<usize> = (0..self.grid.rows).map(|i| i * self.grid.cols + j).collect();
            self.comm.sum_among(buf, &members);
        }
    }

    /// [`Part::sum_samples`] of one number.
    pub fn sum1_samples(&self, v: f64) -> f64 {
        let mut b = [v];
        self.sum_samples(&mut b);
        b[0]
    }

    /// Sums `buf` over the processes of this grid row: those holding the same samples and the
    /// other features (nobody else on a 1-D grid; the atoms' terms `Q`, `P`, penalties).
    pub fn sum_features(&self, buf: &mut [f64]) {
        if self.grid.cols == 1 {
            return;
        }
        let i = self.position().0;
        let members: Vec<usize> = (0..self.grid.cols).map(|j| i * self.grid.cols + j).collect();
        self.comm.sum_among(buf, &members);
    }

    /// [`Part::sum_features`] of one number.
    pub fn sum1_features(&self, v: f64) -> f64 {
        let mut b = [v];
        self.sum_features(&mut b);
        b[0]
    }

    /// Sums the matrix `a` in place, in f64, with `sum` ([`Part::sum_samples`] or
    /// [`Part::sum_features`]; nothing to do in one process: the same bits as without
    /// distribution).
    fn sum_mat_with<T: Real>(&self, a: &mut Mat<T>, sum: impl Fn(&mut [f64])) {
        let mut buf: Vec<f64> = Vec::with_capacity(a.nrows() * a.ncols());
        for j in 0..a.ncols() {
            buf.extend(a.col_as_slice(j).iter().map(|&v| v.to_f64()));
        }
        sum(&mut buf);
        let m = a.nrows();
        for j in 0..a.ncols() {
            for (v, &b) in a.col_as_slice_mut(j).iter_mut().zip(&buf[j * m..]) {
                *v = T::from_f64(b);
            }
        }
    }

    /// Sums the matrix `a` over the grid column ([`Part::sum_samples`]) in place, in f64.
    pub(crate) fn sum_mat_samples<T: Real>(&self, a: &mut Mat<T>) {
        if self.splits_samples() {
            self.sum_mat_with(a, |b| self.sum_samples(b));
        }
    }

    /// Sums the matrix `a` over the grid row ([`Part::sum_features`]) in place, in f64.
    pub(crate) fn sum_mat_features<T: Real>(&self, a: &mut Mat<T>) {
        if self.splits_features() {
            self.sum_mat_with(a, |b| self.sum_features(b));
        }
    }

    /// The whole `k × m_total` matrix on every process of the grid row, from this process's
    /// columns `a` (`k × m_local`, the features of [`Part::blocks`]): each fills its own
    /// columns of a zero matrix, summed over the row (an all-gather). `a` itself on a 1-D grid.
    pub(crate) fn gather_features<T: Real>(&self, a: &Mat<T>) -> Mat<T> {
        if !self.splits_features() {
            return a.clone();
        }
        let mut all = Mat::<T>::zeros(a.nrows(), self.m_total);
        all.subcols_mut(self.feature_offset, a.ncols()).copy_from(a);
        self.sum_mat_features(&mut all);
        all
    }
}

/// `local` on every process when all succeeded; otherwise the failing process's own error, and
/// on the others an error naming how many failed (so that no process waits for another).
pub fn agree_ok<V>(comm: &dyn Comm, local: Result<V>) -> Result<V> {
    let mut failed = [f64::from(u8::from(local.is_err()))];
    comm.sum(&mut failed);
    let failed = failed[0];
    match local {
        Err(e) => Err(e),
        Ok(_) if failed > 0.0 => Err(Error::invalid(
            "distributed",
            comm.size(),
            format!("{failed} other process(es) refused the data or the parameters (their error is printed by them)"),
        )),
        Ok(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_cover_the_rows_in_order_on_multiples_of_16() {
        for n in [0, 1, 15, 16, 17, 100, 1000, 60000] {
            for p in 1..6 {
                let mut next = 0;
                for r in 0..p {
                    let b = row_block(n, p, r);
                    assert_eq!(b.start, next, "n {n} p {p} r {r}");
                    assert!(b.start % LANES == 0 || b.start == n);
                    next = b.end;
                }
                assert_eq!(next, n);
            }
        }
        // Balanced to within one block.
        let sizes: Vec<usize> = (0..3).map(|r| row_block(1000, 3, r).len()).collect();
        assert_eq!(sizes, vec![336, 336, 328]);
    }
}
