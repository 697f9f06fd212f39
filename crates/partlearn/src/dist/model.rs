//! The cost model of a distributed Frobenius fit (docs/distributed.md, "Model and predictions"):
//! seconds per iteration on a [`Grid`] of `P` processes from the data's shape, a per-core GEMM
//! rate and an interconnect's bandwidth and latency. Per process and iteration:
//!
//! - data products: `4·k·(n/ROWS)·(m/COLS)` flops (`WᵀX` and `HXᵀ` on its block);
//! - factor updates and Grams, repeated along a grid row (codes) or column (atoms):
//!   `2k²·(n/ROWS)·(1 + s) + 2k²·(m/COLS)·(1 + s)` flops for `s` inner sweeps (HALS);
//! - communication: `c_row·(α + w·(k·n/ROWS + k²)/β) + c_col·(α + w·(k·m/COLS + k²)/β)` for
//!   `w`-byte words, with `(c_col, c_row)` the payloads per sum of [`Grid::moves`] (binomial
//!   trees: `2⌈log₂ g⌉`, or `1 + ⌈log₂ P⌉` for a sum over every process; [`Grid::words`]), plus
//!   the stop decision's `(1 + ⌈log₂ P⌉)·α`.
//!
//! Strong scaling divides one data set over `P`; weak scaling grows the samples with `P`
//! (`n·P`). The model ignores the slower GEMMs of small blocks and the network's contention.

use super::Grid;

/// The most processes a prediction models: 2^20, far beyond the MPI jobs the model describes
/// (and it keeps [`Grid::choose`]'s search short). Front ends refuse larger `P`.
pub const MAX_PROCESSES: usize = 1 << 20;

/// The data, the rank and the machine of a prediction.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ScalingModel {
    /// Samples of the (strong-scaling) data.
    pub n: usize,
    /// Features of the data.
    pub m: usize,
    /// Rank of the factorization.
    pub k: usize,
    /// GEMM rate of one core, flop/s.
    pub rate: f64,
    /// Interconnect bandwidth, bytes/s.
    pub bandwidth: f64,
    /// Latency per message, s.
    pub latency: f64,
    /// Bytes per word of the sums (8: they are f64).
    pub word_bytes: f64,
    /// Inner sweeps per factor update (1 for MU; HALS's default caps).
    pub sweeps: f64,
}

/// Seconds per iteration on one grid, by part.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// `P`.
    pub processes: usize,
    /// The grid of the prediction.
    pub grid: Grid,
    /// The data products on this process's block.
    pub products: f64,
    /// Factor updates and Grams (repeated along the grid).
    pub updates: f64,
    /// The sums (transfer and latency).
    pub communication: f64,
    /// Seconds per iteration.
    pub total: f64,
    /// `t(1) / (P · t(P))` (strong) or `t(1) / t(P)` (weak).
    pub efficiency: f64,
}

impl ScalingModel {
    /// Seconds per iteration of `n` samples on `grid`.
    fn seconds(&self, n: usize, grid: Grid) -> (f64, f64, f64) {
        let (k, m, n) = (self.k as f64, self.m as f64, n as f64);
        let (nr, mc) = (n / grid.rows as f64, m / grid.cols as f64);
        let products = 4.0 * k * nr * mc / self.rate;
        let updates = 2.0 * k * k * (nr + mc) * (1.0 + self.sweeps) / self.rate;
        let msg = |words: f64| self.latency + self.word_bytes * words / self.bandwidth;
        let p = grid.size() as f64;
        let (column, row) = grid.moves();
        let communication = row * msg(k * nr + k * k)
            + column * msg(k * mc + k * k)
            + if grid.size() > 1 {
                (1.0 + p.log2().ceil()) * self.latency
            } else {
                0.0
            };
        (products, updates, communication)
    }

    fn predict(&self, n: usize, grid: Grid, t1: f64, weak: bool) -> Prediction {
        let (products, updates, communication) = self.seconds(n, grid);
        let total = products + updates + communication;
        let p = grid.size();
        Prediction {
            processes: p,
            grid,
            products,
            updates,
            communication,
            total,
            efficiency: if weak { t1 / total } else { t1 / (p as f64 * total) },
        }
    }

    /// The grid of `p` processes: `auto` ([`Grid::choose`]) or the 1-D rows.
    fn grid(&self, p: usize, n: usize, auto: bool) -> Grid {
        if auto {
            Grid::choose(p, n, self.m, self.k)
        } else {
            Grid::rows(p)
        }
    }

    /// Strong scaling: the `n × m` data over `p` processes (the grid `auto` chooses, or 1-D).
    pub fn strong(&self, p: usize, auto: bool) -> Prediction {
        let t1 = self.total(self.n, Grid::rows(1));
        self.predict(self.n, self.grid(p, self.n, auto), t1, false)
    }

    /// Weak scaling: `n·p` samples over `p` processes (saturating at `usize::MAX`).
    pub fn weak(&self, p: usize, auto: bool) -> Prediction {
        let t1 = self.total(self.n, Grid::rows(1));
        let n = self.n.saturating_mul(p);
        self.predict(n, self.grid(p, n, auto), t1, true)
    }

    fn total(&self, n: usize, grid: Grid) -> f64 {
        let (a, b, c) = self.seconds(n, grid);
        a + b + c
    }

    /// The parallel efficiency against `P` (log axis): strong scaling on the grid `--grid auto`
    /// chooses and on 1-D rows, weak scaling on the chosen grid.
    pub fn efficiency_chart(&self, ps: &[usize]) -> crate::plot::Chart {
        use crate::plot::{Chart, Series};
        let mut c = Chart::new(
            format!("Modelled efficiency, {} × {}, k = {}", self.n, self.m, self.k),
            format!(
                "processes P ({:.0} GFLOP/s per core, {:.0} GB/s)",
                self.rate / 1e9,
                self.bandwidth / 1e9
            ),
            "parallel efficiency",
        );
        c.x_log = true;
        let pts = |f: &dyn Fn(usize) -> Prediction| ps.iter().map(|&p| (p as f64, f(p).efficiency)).collect();
        c.series
            .push(Series::new("strong, auto grid", pts(&|p| self.strong(p, true))));
        c.series
            .push(Series::new("strong, 1-D rows", pts(&|p| self.strong(p, false))));
        c.series
            .push(Series::new("weak (n·P samples)", pts(&|p| self.weak(p, true))));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(n: usize, m: usize) -> ScalingModel {
        ScalingModel {
            n,
            m,
            k: 100,
            rate: 120e9,
            bandwidth: 10e9,
            latency: 2e-6,
            word_bytes: 8.0,
            sweeps: 1.0,
        }
    }

    #[test]
    fn one_process_is_the_flop_count_and_moves_nothing() {
        let s = model(60_000, 784).strong(1, true);
        let flops = 4.0 * 100.0 * 60_000.0 * 784.0 + 2.0 * 1e4 * (60_000.0 + 784.0) * 2.0;
        assert!((s.total - flops / 120e9).abs() < 1e-12);
        assert_eq!((s.communication, s.efficiency), (0.0, 1.0));
    }

    #[test]
    fn the_communication_is_the_grids_words_at_the_bandwidth() {
        let md = model(20_000, 20_000);
        let s = md.strong(4, true);
        assert_eq!(s.grid, Grid { rows: 2, cols: 2 });
        let words = s.grid.words(20_000, 20_000, 100);
        let latency = 4.0 * 2e-6 + 3.0 * 2e-6;
        assert!((s.communication - (8.0 * words / 10e9 + latency)).abs() < 1e-12);
        // On square data 2-D beats 1-D from 4 processes on, and by far at 1,024.
        assert!(s.total < md.strong(4, false).total);
        let (two, one) = (md.strong(1024, true), md.strong(1024, false));
        assert!(two.efficiency > 2.0 * one.efficiency, "{two:?} {one:?}");
    }

    #[test]
    fn the_grid_search_over_divisors_matches_the_linear_one() {
        let linear = |p: usize, n: usize, m: usize, k: usize| {
            (1..=p)
                .filter(|c| p % c == 0 && (*c == 1 || *c <= m.div_ceil(16)) && p / c <= n.div_ceil(16).max(1))
                .map(|c| Grid { rows: p / c, cols: c })
                .min_by(|a, b| {
                    a.words(n, m, k)
                        .total_cmp(&b.words(n, m, k))
                        .then(a.cols.cmp(&b.cols))
                })
                .unwrap_or(Grid::rows(p))
        };
        for p in (1..=200).chain([360, 1024, 1536, 4096, 65_536]) {
            for (n, m) in [(60_000, 784), (20_000, 20_000), (100, 10), (10, 5000)] {
                assert_eq!(
                    Grid::choose(p, n, m, 50),
                    linear(p, n, m, 50),
                    "P = {p}, {n} × {m}"
                );
            }
        }
        // The largest P a front end accepts, and beyond, answer at once.
        let t = std::time::Instant::now();
        Grid::choose(MAX_PROCESSES, 60_000, 784, 100);
        Grid::choose((1 << 40) - 1, 1 << 30, 1 << 30, 100);
        assert!(t.elapsed().as_secs_f64() < 5.0);
        // Weak scaling's samples saturate instead of overflowing.
        let w = model(usize::MAX / 2, 784).weak(4, true);
        assert!(w.total.is_finite());
    }

    #[test]
    fn weak_scaling_of_tall_data_stays_near_one() {
        let md = model(60_000, 784);
        for p in [2, 16, 1024] {
            let w = md.weak(p, true);
            assert_eq!(w.grid.cols, 1, "tall data stay 1-D");
            assert!(w.efficiency > 0.95 && w.efficiency <= 1.0, "{w:?}");
        }
    }
}
