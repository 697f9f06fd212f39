//! [`Comm`] over MPI (rsmpi): sums along a fixed binomial tree to rank 0, then a broadcast.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Destination, Root, Source};
use mpi::Threading;

use super::Comm;
use crate::error::{Error, Result};

/// `MPI_COMM_WORLD` as a [`Comm`]. Sums add in a fixed order: in round `s = 1, 2, 4, …` rank
/// `r` with `r mod 2s = s` sends its partial sum to `r − s`, which adds it to its own; rank 0
/// then broadcasts the total. The order depends only on the number of ranks, so every run with
/// the same `P` gives the same bits. Each rank moves `O(log P)` payloads per sum (rank 0
/// receives `⌈log₂ P⌉`); a ring all-reduce would move `2(P−1)/P` payloads, but its
/// addition order is up to the MPI library.
///
/// MPI is initialized with `MPI_THREAD_SERIALIZED`: the solver's calls come from one thread
/// at a time (the fit's thread-pool thread), never concurrently.
pub struct MpiComm {
    // Dropped last: finalizes MPI.
    world: SimpleCommunicator,
    _universe: Universe,
    rank: usize,
    size: usize,
    bytes: AtomicU64,
    /// Nanoseconds spent in sums.
    nanos: AtomicU64,
    /// Microseconds since `epoch` at which the pending sum started, or 0 when none is pending
    /// (the watchdog of [`MpiComm::pending`]).
    pending_since: Arc<AtomicU64>,
    epoch: Instant,
}

// SAFETY: MPI is initialized with MPI_THREAD_SERIALIZED and the fit calls `sum` from one thread
// at a time (the solver is sequential at the level of its reductions).
unsafe impl Send for MpiComm {}
unsafe impl Sync for MpiComm {}

impl MpiComm {
    /// Initializes MPI (once per process) and joins `MPI_COMM_WORLD`.
    pub fn init() -> Result<MpiComm> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized).ok_or_else(|| {
            Error::invalid(
                "distributed",
                "true",
                "MPI is already initialized in this process; create one MpiComm per process",
            )
        })?;
        if level < Threading::Serialized {
            return Err(Error::invalid(
                "distributed",
                "true",
                format!(
                    "the MPI library grants thread level {level:?}, MPI_THREAD_SERIALIZED is needed; use an MPI built with thread support (OpenMPI is)"
                ),
            ));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiComm {
            world,
            _universe: universe,
            rank,
            size,
            bytes: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            pending_since: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        })
    }

    /// Seconds the current sum has been waiting for the other ranks (`None` when no sum is
    /// pending): a watchdog thread of the front end reads it to end a rank whose peers hang.
    pub fn pending(&self) -> Option<f64> {
        pending_secs(&self.pending_since, self.epoch)
    }

    /// A handle for a watchdog thread: returns what [`MpiComm::pending`] returns, from any thread.
    pub fn pending_probe(&self) -> impl Fn() -> Option<f64> + Send + 'static {
        let since = Arc::clone(&self.pending_since);
        let epoch = self.epoch;
        move || pending_secs(&since, epoch)
    }

    /// Ends every rank of the job (`MPI_Abort`) with exit status `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Waits until every rank has arrived.
    pub fn barrier(&self) {
        use mpi::collective::CommunicatorCollectives;
        self.world.barrier();
    }

    /// Sends `bytes` to rank `to` (point to point; the front end gathers shards with it).
    pub fn send_bytes(&self, to: usize, bytes: &[u8]) {
        let len = [bytes.len() as u64];
        let p = self.world.process_at_rank(to as i32);
        p.send(&len[..]);
        p.send(bytes);
        self.bytes.fetch_add(bytes.len() as u64 + 8, Ordering::Relaxed);
    }

    /// Receives what rank `from` sent with [`MpiComm::send_bytes`].
    pub fn receive_bytes(&self, from: usize) -> Vec<u8> {
        let p = self.world.process_at_rank(from as i32);
        let mut len = [0u64];
        p.receive_into(&mut len[..]);
        let mut buf = vec![0u8; len[0] as usize];
        p.receive_into(&mut buf[..]);
        self.bytes.fetch_add(len[0] + 8, Ordering::Relaxed);
        buf
    }
}

impl MpiComm {
    /// Marks a sum as pending (for the watchdog); returns its start.
    fn start_pending(&self) -> Instant {
        let now = (self.epoch.elapsed().as_micros() as u64).max(1);
        self.pending_since.store(now, Ordering::Relaxed);
        Instant::now()
    }

    /// Ends the pending sum started at `t0`, which moved `moved` bytes.
    fn end_pending(&self, t0: Instant, moved: u64) {
        self.bytes.fetch_add(moved, Ordering::Relaxed);
        self.pending_since.store(0, Ordering::Relaxed);
        self.nanos
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Up a binomial tree over the positions of `members` (this rank at position `me`): in
    /// round `s = 1, 2, 4, …` position `p` with `p mod 2s = s` sends its partial sum to `p − s`,
    /// which adds it to its own. Returns the bytes moved, the step at which this position sent
    /// to its parent (`None` at the root) and the last step.
    fn tree_up(&self, buf: &mut [f64], members: &[usize], me: usize) -> (u64, Option<usize>, usize) {
        let g = members.len();
        let payload = std::mem::size_of_val(buf) as u64;
        let at = |pos: usize| self.world.process_at_rank(members[pos] as i32);
        let (mut moved, mut tmp, mut step) = (0u64, vec![0.0f64; buf.len()], 1);
        while step < g {
            if me % (2 * step) == step {
                at(me - step).send(&buf[..]);
                return (moved + payload, Some(step), step);
            }
            if me % (2 * step) == 0 && me + step < g {
                at(me + step).receive_into(&mut tmp[..]);
                moved += payload;
                for (a, b) in buf.iter_mut().zip(&tmp) {
                    *a += *b;
                }
            }
            step *= 2;
        }
        (moved, None, step)
    }
}

fn pending_secs(since: &AtomicU64, epoch: Instant) -> Option<f64> {
    match since.load(Ordering::Relaxed) {
        0 => None,
        t => Some((epoch.elapsed().as_micros() as u64).saturating_sub(t) as f64 * 1e-6),
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum(&self, buf: &mut [f64]) {
        if self.size <= 1 {
            return;
        }
        let t0 = self.start_pending();
        let all: Vec<usize> = (0..self.size).collect();
        let (mut moved, _, _) = self.tree_up(buf, &all, self.rank);
        self.world.process_at_rank(0).broadcast_into(buf);
        moved += std::mem::size_of_val(buf) as u64;
        self.end_pending(t0, moved);
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The binomial tree of [`Comm::sum`] over the positions of `members` (rank
    /// `members[0]` adds), then the total sent back down the same tree (point to point: a
    /// subgroup has no communicator of its own).
    fn sum_among(&self, buf: &mut [f64], members: &[usize]) {
        let g = members.len();
        let Some(me) = members.iter().position(|&r| r == self.rank) else {
            return;
        };
        if g <= 1 {
            return;
        }
        let t0 = self.start_pending();
        let payload = std::mem::size_of_val(buf) as u64;
        let at = |pos: usize| self.world.process_at_rank(members[pos] as i32);
        let (mut moved, parent_step, step) = self.tree_up(buf, members, me);
        // Down: receive the total from the parent, pass it to the children in reverse order.
        let top = match parent_step {
            Some(s) => {
                at(me - s).receive_into(&mut buf[..]);
                moved += payload;
                s
            }
            None => step,
        };
        let mut s = top / 2;
        while s >= 1 {
            if me + s < g {
                at(me + s).send(&buf[..]);
                moved += payload;
            }
            s /= 2;
        }
        self.end_pending(t0, moved);
    }

    /// Point to point, in rank order: each rank `r > 0` sends its length, then its values, to
    /// rank 0 (watched by the same timeout as a sum).
    fn gather(&self, local: &[f64]) -> Vec<f64> {
        if self.size <= 1 {
            return local.to_vec();
        }
        let t0 = self.start_pending();
        let mut moved = 0u64;
        let out = if self.rank == 0 {
            let mut all = local.to_vec();
            for r in 1..self.size {
                let p = self.world.process_at_rank(r as i32);
                let mut len = [0u64];
                p.receive_into(&mut len[..]);
                let start = all.len();
                all.resize(start + len[0] as usize, 0.0);
                p.receive_into(&mut all[start..]);
                moved += 8 * len[0];
            }
            all
        } else {
            let p = self.world.process_at_rank(0);
            p.send(&[local.len() as u64][..]);
            p.send(local);
            moved += 8 * local.len() as u64;
            Vec::new()
        };
        self.end_pending(t0, moved);
        out
    }

    fn seconds(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }
}
