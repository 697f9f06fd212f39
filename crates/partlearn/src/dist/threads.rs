//! Ranks as threads of one process (tests only): a [`Comm`] whose sums add every rank's buffer
//! in rank order through a shared table (and whose gathers concatenate them), and [`run`] /
//! [`run_grid`], which run one closure per rank on the blocks of [`row_block`].

use std::ops::Range;
use std::sync::{Barrier, Mutex};

use super::{row_block, Comm, Grid, Part};

/// The state the thread-ranks share.
struct Threads {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

/// One thread-rank.
struct Rank<'a> {
    rank: usize,
    shared: &'a Threads,
}

impl Comm for Rank<'_> {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum(&self, buf: &mut [f64]) {
        self.shared.slots.lock().unwrap()[self.rank] = buf.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            buf.fill(0.0);
            for s in slots.iter() {
                buf.iter_mut().zip(s).for_each(|(a, b)| *a += b);
            }
        }
        self.shared.barrier.wait();
    }
    fn bytes(&self) -> u64 {
        0
    }
    fn sum_among(&self, buf: &mut [f64], members: &[usize]) {
        self.shared.slots.lock().unwrap()[self.rank] = buf.to_vec();
        self.shared.barrier.wait();
        {
            let slots = self.shared.slots.lock().unwrap();
            buf.fill(0.0);
            for &r in members {
                buf.iter_mut().zip(&slots[r]).for_each(|(a, b)| *a += b);
            }
        }
        self.shared.barrier.wait();
    }
    fn gather(&self, local: &[f64]) -> Vec<f64> {
        self.shared.slots.lock().unwrap()[self.rank] = local.to_vec();
        self.shared.barrier.wait();
        let all = if self.rank == 0 {
            self.shared.slots.lock().unwrap().concat()
        } else {
            Vec::new()
        };
        self.shared.barrier.wait();
        all
    }
}

/// Runs `f(part, rows)` on `p` thread-ranks, rank `r` holding the rows `row_block(n, p, r)` of
/// `n`; returns the results in rank order. With `p = 1` the part is not distributed
/// ([`Part::is_distributed`]): the one-process code path.
pub(crate) fn run<R: Send>(n: usize, p: usize, f: impl Fn(Part<'_>, Range<usize>) -> R + Sync) -> Vec<R> {
    run_grid(n, 0, Grid::rows(p), |part, rows, _| f(part, rows))
}

/// Runs `f(part, samples, features)` on the thread-ranks of `grid` for `n` samples and `m`
/// features ([`Part::on_grid`]; `m` only places the feature blocks); results in rank order.
pub(crate) fn run_grid<R: Send>(
    n: usize,
    m: usize,
    grid: Grid,
    f: impl Fn(Part<'_>, Range<usize>, Range<usize>) -> R + Sync,
) -> Vec<R> {
    let p = grid.size();
    let shared = Threads {
        size: p,
        barrier: Barrier::new(p),
        slots: Mutex::new(vec![Vec::new(); p]),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..p)
            .map(|r| {
                let (shared, f) = (&shared, &f);
                s.spawn(move || {
                    let comm = Rank { rank: r, shared };
                    let (i, j) = (r / grid.cols, r % grid.cols);
                    let (rows, cols) = (row_block(n, grid.rows, i), row_block(m, grid.cols, j));
                    let part = Part {
                        comm: &comm,
                        offset: rows.start,
                        n_total: n,
                        grid,
                        feature_offset: cols.start,
                        m_total: m,
                    };
                    f(part, rows, cols)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
