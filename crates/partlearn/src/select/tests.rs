use faer::Mat;

use super::*;
use crate::engine::{Control, IterRecord, Silent};
use crate::nmf::NmfParams;

fn base() -> ValidNmfParams {
    NmfParams::new(1).max_iter(300).tol(1e-6).check().unwrap()
}

/// `n × m` data of planted rank `r`: parts with disjoint supports (bars of `m / r` features),
/// each sample one part plus up to `mix` of each other part, and uniform noise up to `noise`.
fn planted(n: usize, m: usize, r: usize, noise: f64, mix: f64, seed: u64) -> Mat<f64> {
    let mut rng = Rng::new(seed);
    let width = m / r;
    let codes = Mat::<f64>::from_fn(n, r, |i, c| {
        if c == i % r {
            1.0 + rng.uniform()
        } else {
            mix * rng.uniform()
        }
    });
    let parts = Mat::<f64>::from_fn(
        r,
        m,
        |c, j| if j / width == c { 0.5 + rng.uniform() } else { 0.0 },
    );
    let x = &codes * &parts;
    Mat::from_fn(n, m, |i, j| (x[(i, j)] + noise * rng.uniform()).max(0.0))
}

#[test]
fn a_planted_rank_is_found_by_the_atoms_stability() {
    for (noise, mix) in [(0.05, 0.3), (0.2, 0.3)] {
        let x = planted(240, 64, 8, noise, mix, 1);
        let params = SelectParams::new(vec![6, 7, 8, 9, 10]).runs(6).check().unwrap();
        let sel = select_k(x.as_ref(), &params, &base(), &mut Silent).unwrap();
        let table: Vec<(usize, f64, f64)> = sel
            .scores
            .iter()
            .map(|s| (s.k, s.cophenetic, s.silhouette))
            .collect();
        assert_eq!(sel.k_silhouette, 8, "noise {noise}: {table:?}");
        let at = |k: usize| sel.scores.iter().find(|s| s.k == k).unwrap();
        // Past the rank the runs split the parts differently: the silhouette drops.
        assert!(at(9).silhouette < at(8).silhouette - 0.05, "{table:?}");
        // The consensus of the samples is reproducible from the rank on; Brunet's rule never
        // suggests less than the rank here (on this data the score plateaus rather than drops).
        assert!(at(8).cophenetic > 0.99 && sel.k_cophenetic >= 8, "{table:?}");
        // The error falls to the noise level at the rank and barely moves after it.
        assert!(at(7).rel_error > 2.0 * at(8).rel_error);
        assert!(at(8).rel_error - at(10).rel_error < 0.2 * at(8).rel_error);
        assert_eq!(sel.stop_reason, StopReason::Converged);
        assert_eq!(sel.consensus_samples, 240);
    }
}

#[test]
fn same_seed_same_scores_and_the_subsample_is_bounded() {
    let x = planted(120, 32, 4, 0.05, 0.1, 2);
    let params = SelectParams::new(vec![3, 4, 5])
        .runs(3)
        .samples(50)
        .seed(9)
        .check()
        .unwrap();
    let one = select_k(x.as_ref(), &params, &base(), &mut Silent).unwrap();
    let two = select_k(x.as_ref(), &params, &base(), &mut Silent).unwrap();
    let strip = |s: &Selection| {
        s.scores
            .iter()
            .map(|k| (k.k, k.rel_error, k.cophenetic, k.silhouette))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&one), strip(&two));
    assert_eq!(one.consensus_samples, 50);
    assert!(one.scores.iter().all(|s| (0.0..=1.0).contains(&s.dispersion)));
    let csv = table_csv(&one);
    assert_eq!(csv.lines().count(), 4);
    let charts = charts(&one).unwrap();
    assert_eq!(charts.len(), 3);
}

#[test]
fn an_interrupted_selection_keeps_the_ranks_scored() {
    let x = planted(60, 16, 2, 0.05, 0.1, 3);
    let params = SelectParams::new(vec![1, 2, 3]).runs(2).check().unwrap();
    let mut fits = 0;
    let mut stop_in_the_third_rank = |r: &IterRecord| {
        if r.iter == 0 {
            fits += 1;
        }
        if fits == 5 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let sel = select_k(x.as_ref(), &params, &base(), &mut stop_in_the_third_rank).unwrap();
    assert_eq!(sel.stop_reason, StopReason::Interrupted);
    assert_eq!(sel.scores.iter().map(|s| s.k).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn bad_settings_name_the_parameter() {
    for (p, name) in [
        (SelectParams::new(vec![]), "ks"),
        (SelectParams::new(vec![0, 2]), "ks"),
        (SelectParams::new(vec![2]).runs(1), "runs"),
        (SelectParams::new(vec![2]).samples(1), "samples"),
    ] {
        match p.check() {
            Err(Error::InvalidOption { option, .. }) => assert_eq!(option, name),
            other => panic!("{other:?}"),
        }
    }
    let x = planted(10, 8, 2, 0.0, 0.1, 4);
    let p = SelectParams::new(vec![2, 9]).check().unwrap();
    assert!(matches!(
        select_k(x.as_ref(), &p, &base(), &mut Silent),
        Err(Error::InvalidOption { option: "ks", .. })
    ));
}

#[test]
fn one_se_rule_takes_the_smallest_k_within_one_standard_error_of_the_minimum() {
    // Minimum at k = 10 (0.100, std 0.02 over 4 replicates: se 0.01); k = 8 is within it.
    let s = [
        (6, 0.3, 0.01),
        (7, 0.2, 0.01),
        (8, 0.108, 0.01),
        (9, 0.104, 0.01),
        (10, 0.100, 0.02),
    ];
    assert_eq!(one_se_rule(&s, 4), 8);
    // With a tighter minimum only k = 10 qualifies; unsorted input and NaN are fine.
    let s = [(10, 0.100, 0.002), (8, 0.108, 0.01), (6, f64::NAN, 0.0)];
    assert_eq!(one_se_rule(&s, 4), 10);
    // One replicate: no spread, the minimum itself.
    assert_eq!(one_se_rule(&[(3, 0.5, 0.0), (4, 0.4, 0.0), (5, 0.41, 0.0)], 1), 4);
    assert_eq!(one_se_rule(&[], 3), 0);
}

/// Cross-validation finds a planted rank 8 on both data sets. The consensus criteria, on the
/// same data (measured): on the bars (one dominant part per sample) the atoms' silhouette gives
/// 8 and the cophenetic correlation plateaus at 1 (Brunet's rule returns the largest
/// candidate); on dense factors (no dominant part) both stay below the rank (6 here, 7 on a
/// 200 × 60 variant): consensus of argmax labels
/// assumes a clustering the data do not have, while held-out error does not.
#[test]
fn a_planted_rank_is_found_by_cross_validation() {
    for (what, x) in [
        ("bars", planted(240, 64, 8, 0.05, 0.3, 1)),
        ("dense", {
            // Dense factors: no dominant part per sample.
            let mut r = Rng::new(5);
            let codes = Mat::<f64>::from_fn(150, 8, |_, _| r.uniform());
            let atoms = Mat::<f64>::from_fn(8, 50, |_, _| r.uniform());
            let c = &codes * &atoms;
            Mat::from_fn(150, 50, |i, j| c[(i, j)] + 0.05 * r.uniform())
        }),
    ] {
        let params = SelectParams::new(vec![6, 7, 8, 9, 10])
            .runs(3)
            .holdout(0.1)
            .replicates(3)
            .check()
            .unwrap();
        let base = NmfParams::new(1)
            .solver(nmf::Solver::Anls)
            .max_iter(200)
            .tol(1e-6)
            .check()
            .unwrap();
        let sel = select_k(x.as_ref(), &params, &base, &mut Silent).unwrap();
        let table: Vec<String> = sel
            .scores
            .iter()
            .map(|s| {
                format!(
                    "k {}: cv {:.4} ± {:.4}, cophenetic {:.4}, silhouette {:.4}",
                    s.k,
                    s.cv_error.unwrap(),
                    s.cv_error_std.unwrap(),
                    s.cophenetic,
                    s.silhouette
                )
            })
            .collect();
        eprintln!(
            "{what}: k_cv {:?}, k_silhouette {}, k_cophenetic {}\n{}",
            sel.k_cv,
            sel.k_silhouette,
            sel.k_cophenetic,
            table.join("\n")
        );
        assert_eq!(sel.k_cv, Some(8), "{what}: {table:#?}");
        if what == "bars" {
            assert_eq!(sel.k_silhouette, 8, "{table:#?}");
        }
        let at = |k: usize| sel.scores.iter().find(|s| s.k == k).unwrap();
        // The held-out error falls steeply up to the rank.
        assert!(
            at(7).cv_error.unwrap() > 1.5 * at(8).cv_error.unwrap(),
            "{what}: {table:#?}"
        );
        let csv = table_csv(&sel);
        assert!(csv.lines().next().unwrap().ends_with(",cv_error,cv_error_std"));
        let charts = charts(&sel).unwrap();
        assert!(charts
            .iter()
            .any(|(name, svg)| name == "cv_error_vs_k.svg" && svg.contains("held-out")));
    }
}

#[test]
fn cross_validation_settings_are_checked() {
    for (p, name) in [
        (SelectParams::new(vec![2]).holdout(0.0), "holdout"),
        (SelectParams::new(vec![2]).holdout(0.7), "holdout"),
        (
            SelectParams::new(vec![2]).holdout(0.1).replicates(0),
            "replicates",
        ),
    ] {
        match p.check() {
            Err(Error::InvalidOption { option, .. }) => assert_eq!(option, name),
            other => panic!("{other:?}"),
        }
    }
}
