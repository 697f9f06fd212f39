//! Ranks as threads of one process (tests only): a [`Comm`] whose sums add every rank's buffer
//! in rank order through a shared table (and whose gathers concatenate them), and [`run`],
//! which runs one closure per rank on the row blocks of [`row_block`].

use std::ops::Range;
use std::sync::{Barrier, Mutex};

use super::{row_block, Comm, Part};

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
                    let b = row_block(n, p, r);
                    let part = Part {
                        comm: &comm,
                        offset: b.start,
                        n_total: n,
                    };
                    f(part, b)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
