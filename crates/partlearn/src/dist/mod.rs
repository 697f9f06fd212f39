//! Data-parallel fits over several processes (METHODS.md §1, 1-D row distribution as in
//! MPI-FAUN, Kannan, Ballard & Park 2016): every process ("rank") holds one block of rows of
//! `X` (samples) and of the codes; the atoms are replicated. The solvers reduce their `k × k`
//! Grams and `k × m` cross terms, and the local terms of the objective, through a [`Comm`];
//! [`Single`] is the one-process communicator (no communication, same bits as a plain fit).
//!
//! Every reduction is an element-wise sum in f64 whose order is fixed by the number of ranks
//! (the MPI implementation, [`MpiComm`] with the `mpi` feature, adds along a fixed binomial
//! tree and broadcasts the result), so a run is reproducible with the same `P` and agrees with
//! the one-process fit to rounding.

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

/// Where this process's rows sit in the whole data: the rows `offset..offset + local` of
/// `n_total`, and the [`Comm`] joining the processes.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    /// The processes.
    pub comm: &'a dyn Comm,
    /// Global index of this rank's first row.
    pub offset: usize,
    /// Rows of the whole data.
    pub n_total: usize,
}

impl std::fmt::Debug for Part<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("offset", &self.offset)
            .field("n_total", &self.n_total)
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
        }
    }

    /// Whether more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.comm.size() > 1
    }

    /// The sum of `v` over ranks (`v` itself in one process).
    pub fn sum1(&self, v: f64) -> f64 {
        let mut b = [v];
        self.comm.sum(&mut b);
        b[0]
    }

    /// Sums `buf` over ranks (nothing to do in one process).
    pub fn sum(&self, buf: &mut [f64]) {
        if self.is_distributed() {
            self.comm.sum(buf);
        }
    }

    /// Sums the matrix `a` over ranks in place, in f64 (nothing to do in one process: the
    /// same bits as without distribution).
    pub(crate) fn sum_mat<T: Real>(&self, a: &mut Mat<T>) {
        if !self.is_distributed() {
            return;
        }
        let mut buf: Vec<f64> = Vec::with_capacity(a.nrows() * a.ncols());
        for j in 0..a.ncols() {
            buf.extend(a.col_as_slice(j).iter().map(|&v| v.to_f64()));
        }
        self.comm.sum(&mut buf);
        let m = a.nrows();
        for j in 0..a.ncols() {
            for (v, &b) in a.col_as_slice_mut(j).iter_mut().zip(&buf[j * m..]) {
                *v = T::from_f64(b);
            }
        }
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
