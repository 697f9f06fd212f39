//! Fits on a 2-D processor grid ([`crate::dist::Grid`]): every rank holds a block of samples ×
//! features; the result must be the one-process fit's to rounding, on every grid shape.

use faer::Mat;

use super::*;
use crate::dist::{row_block, threads, Grid};
use crate::engine::Silent;
use crate::nmf::{self, NmfParams, Solver};
use crate::rng::Rng;

fn data(n: usize, m: usize, seed: u64) -> Mat<f64> {
    let mut r = Rng::new(seed);
    Mat::from_fn(n, m, |_, _| r.uniform())
}

/// Fits on the thread-ranks of `grid`; checks that every rank has the same atoms and that the
/// ranks of a grid row have the same codes; returns the atoms, the codes stacked in sample order
/// and rank 0's fit.
fn on_grid(x: &Mat<f64>, params: &ValidNmfParams, grid: Grid) -> (Mat<f64>, Mat<f64>, NmfFit<f64>) {
    let (n, m) = x.shape();
    let mut fits = threads::run_grid(n, m, grid, |part, rows, cols| {
        let block = x
            .as_ref()
            .subrows(rows.start, rows.len())
            .subcols(cols.start, cols.len());
        factorize_part(block, params, part, &mut Silent).unwrap()
    });
    for (r, f) in fits.iter().enumerate() {
        assert_eq!(
            f.model.components(),
            fits[0].model.components(),
            "rank {r}: atoms"
        );
        assert_eq!(f.n_iter, fits[0].n_iter);
        let first_of_row = r - r % grid.cols;
        assert_eq!(
            f.codes(),
            fits[first_of_row].codes(),
            "rank {r}: codes of its grid row"
        );
        assert_eq!(f.stats.grid, Some(grid));
    }
    let k = fits[0].codes().ncols();
    let codes = Mat::from_fn(n, k, |i, j| {
        let row = (0..grid.rows)
            .find(|&g| row_block(n, grid.rows, g).contains(&i))
            .unwrap();
        fits[row * grid.cols].codes()[(i - row_block(n, grid.rows, row).start, j)]
    });
    let atoms = fits[0].model.components().to_owned();
    (atoms, codes, fits.swap_remove(0))
}

#[test]
fn every_solver_on_every_grid_matches_the_one_process_fit() {
    let x = data(70, 50, 3);
    let grids = [(1, 2), (2, 2), (3, 2), (1, 3), (2, 3)];
    let runs = [
        (InitMethod::Random, 0.0, 0.0, true),
        (InitMethod::Random, 0.05, 0.02, false),
    ];
    for solver in [Solver::Mu, Solver::Hals, Solver::Anls] {
        for (init, alpha_w, alpha_h, extrapolate) in runs {
            let p = NmfParams::new(4)
                .solver(solver)
                .init(init)
                .alpha_w(alpha_w)
                .alpha_h(Some(alpha_h))
                .extrapolate(extrapolate)
                .max_iter(40)
                .seed(5)
                .check()
                .unwrap();
            let one = nmf::factorize(x.as_ref(), &p).unwrap();
            for (rows, cols) in grids {
                let grid = Grid { rows, cols };
                let (atoms, codes, fit) = on_grid(&x, &p, grid);
                let what = format!("{solver:?} {init:?} alpha {alpha_w}/{alpha_h} grid {rows}x{cols}");
                assert_eq!(fit.n_iter, one.n_iter, "{what}");
                let da = (&atoms - one.model.components()).norm_max() / atoms.norm_max();
                let dc = (&codes - one.codes()).norm_max() / codes.norm_max();
                let tol = 1e-9;
                assert!(da < tol && dc < tol, "{what}: atoms {da:e}, codes {dc:e}");
                let de = (fit.objective - one.objective).abs() / one.objective;
                assert!(
                    de < tol,
                    "{what}: objective {} vs {}",
                    fit.objective,
                    one.objective
                );
            }
        }
    }
}

#[test]
fn a_low_rank_nndsvd_start_on_a_grid_equals_the_one_process_start() {
    // Rank 4 = k < l: the range finder is exact, so the grid's start and fit are the
    // one-process ones to rounding, on wide data too.
    let mut r = Rng::new(11);
    let a = Mat::<f64>::from_fn(60, 4, |_, _| r.uniform());
    let b = Mat::<f64>::from_fn(4, 100, |_, _| r.uniform());
    let x = &a * &b;
    for solver in [Solver::Hals, Solver::Anls, Solver::Mu] {
        let p = NmfParams::new(4)
            .solver(solver)
            .init(InitMethod::Nndsvda)
            .max_iter(60)
            .seed(5)
            .check()
            .unwrap();
        let one = nmf::factorize(x.as_ref(), &p).unwrap();
        for (rows, cols) in [(1, 2), (2, 2), (2, 3)] {
            let (atoms, codes, fit) = on_grid(&x, &p, Grid { rows, cols });
            let what = format!("{solver:?} grid {rows}x{cols}");
            assert_eq!(fit.n_iter, one.n_iter, "{what}");
            let da = (&atoms - one.model.components()).norm_max() / atoms.norm_max();
            let dc = (&codes - one.codes()).norm_max() / codes.norm_max();
            assert!(da < 1e-8 && dc < 1e-8, "{what}: atoms {da:e}, codes {dc:e}");
        }
    }
}

#[test]
fn dead_atoms_are_reseeded_across_the_grid_as_in_one_process() {
    // k larger than the data's rank, ANLS from a random start: atoms die and are re-seeded
    // with the worst-explained sample, whose features come from several processes.
    let mut r = Rng::new(2);
    let a = Mat::<f64>::from_fn(64, 3, |_, _| r.uniform());
    let b = Mat::<f64>::from_fn(3, 48, |_, _| r.uniform());
    // A little noise keeps the NNLS problems well posed (on exactly rank-3 data the atoms are
    // not unique and rounding decides between solutions).
    let x = &a * &b + Mat::<f64>::from_fn(64, 48, |_, _| 0.01 * r.uniform());
    let p = NmfParams::new(8)
        .solver(Solver::Anls)
        .init(InitMethod::Random)
        .max_iter(30)
        .seed(1)
        .check()
        .unwrap();
    let one = nmf::factorize(x.as_ref(), &p).unwrap();
    assert!(one.stats.atoms_reseeded > 0, "the case must re-seed");
    for (rows, cols) in [(2, 1), (2, 2), (1, 3)] {
        let (atoms, codes, fit) = on_grid(&x, &p, Grid { rows, cols });
        assert_eq!(fit.stats.atoms_reseeded, one.stats.atoms_reseeded);
        let da = (&atoms - one.model.components()).norm_max();
        let dc = (&codes - one.codes()).norm_max();
        assert!(
            da < 1e-9 && dc < 1e-9,
            "grid {rows}x{cols}: atoms {da:e}, codes {dc:e}"
        );
    }
}

#[test]
fn a_checkpoint_on_a_grid_is_the_one_process_checkpoint_and_resumes_on_any_grid() {
    let x = data(70, 50, 4);
    let dir = std::env::temp_dir().join(format!("partlearn-grid-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = NmfParams::new(4)
        .solver(Solver::Hals)
        .init(InitMethod::Random)
        .max_iter(30)
        .seed(2)
        .check()
        .unwrap();
    let whole = nmf::factorize(x.as_ref(), &p).unwrap();
    let (n, m) = x.shape();
    // Interrupted at iteration 12 by rank 3's observer on a 2 × 2 grid.
    let path = dir.join("ck.safetensors");
    threads::run_grid(n, m, Grid { rows: 2, cols: 2 }, |part, rows, cols| {
        let block = x
            .as_ref()
            .subrows(rows.start, rows.len())
            .subcols(cols.start, cols.len());
        let mut obs = super::tests::at((part.comm.rank() == 3).then_some(12), None);
        factorize_part_checkpointed(block, &p, part, &path, &mut obs).unwrap()
    });
    let ck = NmfCheckpoint::<f64>::load(&path).unwrap();
    assert_eq!(ck.done(), 12);
    assert_eq!(ck.wt.shape(), (4, m));
    assert_eq!(ck.h.shape(), (4, n));
    for (rows, cols) in [(2, 2), (3, 1), (1, 1)] {
        let fits = threads::run_grid(n, m, Grid { rows, cols }, |part, r, c| {
            let block = x.as_ref().subrows(r.start, r.len()).subcols(c.start, c.len());
            resume_part(block, &ck, part, None, &mut Silent).unwrap()
        });
        let da = (fits[0].model.components() - whole.model.components()).norm_max();
        assert!(da < 1e-9, "resumed on {rows}x{cols}: atoms {da:e}");
        assert_eq!(fits[0].n_iter, whole.n_iter);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_grid_is_chosen_by_the_words_it_moves() {
    // Tall data: 1-D (only the k × m cross term moves).
    assert_eq!(Grid::choose(4, 60_000, 784, 100), Grid { rows: 4, cols: 1 });
    // Square data: 2 × 2 moves half the words of 4 × 1.
    assert_eq!(Grid::choose(4, 20_000, 20_000, 50), Grid { rows: 2, cols: 2 });
    assert!(Grid { rows: 2, cols: 2 }.words(20_000, 20_000, 50) < Grid::rows(4).words(20_000, 20_000, 50));
    // Wide data: the samples' side is the small one.
    assert_eq!(Grid::choose(2, 784, 60_000, 100), Grid { rows: 1, cols: 2 });
    // Prime P and a few features: no feature block under 16 features.
    assert_eq!(Grid::choose(3, 1000, 20, 5), Grid::rows(3));
    assert_eq!(Grid::choose(1, 10, 10, 2), Grid::rows(1));
    assert_eq!(Grid::parse("2x3").unwrap(), Grid { rows: 2, cols: 3 });
    for bad in ["2", "0x2", "ax2", "2x"] {
        let e = Grid::parse(bad).unwrap_err().to_string();
        assert!(e.contains("ROWSxCOLS"), "{bad}: {e}");
    }
}

#[test]
fn a_block_of_the_wrong_width_is_refused_on_every_rank() {
    let x = data(40, 40, 1);
    let p = NmfParams::new(3).init(InitMethod::Random).check().unwrap();
    let errs = threads::run_grid(40, 40, Grid { rows: 1, cols: 2 }, |part, rows, _| {
        // Every rank given all features instead of its block.
        factorize_part(x.as_ref().subrows(rows.start, rows.len()), &p, part, &mut Silent)
            .unwrap_err()
            .to_string()
    });
    for e in errs {
        assert!(e.contains("features") || e.contains("process"), "{e}");
    }
}
