use super::page::{charts, render, PageInfo};
use super::*;
use crate::eval::evaluate::{EvalTimings, MaxApproxErrors};
use crate::eval::metrics::ReconstructionError;
use crate::eval::svm::SvmProtocolResult;
use crate::sparseness::HoyerSummary;

/// A result for `point` with the given metrics.
fn result(point: &StudyPoint, mse: f64, hoyer: f64, max_approx: f64, svm: f64) -> StudyResult {
    StudyResult {
        point: point.clone(),
        run: format!("points/{}", point.id),
        trained: point.epochs,
        fit_seconds: 1.0,
        eval_seconds: 0.5,
        metrics: Metrics {
            model_kind: point.model.name().into(),
            data: "fashion-mnist:test".into(),
            n_samples: 10_000,
            n_features: 784,
            k: K,
            reconstruction: ReconstructionError {
                mse,
                mse_clipped: mse,
                rel_error: 0.2,
            },
            hoyer: HoyerSummary {
                mean: hoyer,
                std: 0.0,
                zero_codes: 0,
                mean_reference: hoyer,
            },
            max_approx: Some(MaxApproxErrors {
                structuring_element: "disk:1".into(),
                vs_dilated_originals: max_approx,
                vs_dilated_originals_clipped: max_approx,
                vs_dilated_reconstructions: max_approx,
                vs_dilated_reconstructions_clipped: max_approx,
            }),
            svm: Some(SvmProtocolResult {
                mean_accuracy: svm,
                std_accuracy: 0.03,
                best_c: 1.0,
                best_validation_accuracy: svm,
                validation_curve: vec![],
                accuracies: vec![],
                test_samples: 10,
                classes: 2,
                options: Default::default(),
            }),
            seconds: EvalTimings::default(),
        },
    }
}

#[test]
fn the_published_table_is_the_reports_eleven_rows_with_its_source() {
    let p = published().unwrap();
    assert_eq!(p.rows.len(), 11);
    assert_eq!(p.epochs, REPORT_EPOCHS);
    assert!(p.section.contains("§6.7"));
    // Spot checks against METHODS.md §9 items 5 and 6.
    let find = |model: &str, pen: Option<&str>, pb: Option<(f64, f64)>| {
        p.rows
            .iter()
            .find(|r| r.model == model && r.penalty.as_deref() == pen && r.p.zip(r.beta) == pb)
            .unwrap()
    };
    let nmf = find("sparse-nmf", None, None);
    assert_eq!(
        (nmf.mse, nmf.hoyer, nmf.max_approx, nmf.svm),
        (0.0109, 0.6504, 0.107, 0.812)
    );
    let ae = find("ae", Some("kl"), Some((0.01, 0.005)));
    assert_eq!(
        (ae.mse, ae.hoyer, ae.max_approx, ae.svm),
        (0.0288, 0.785, 0.0339, 0.767)
    );
    let asym = find("asym-ae", Some("kl"), Some((0.01, 0.01)));
    assert_eq!(
        (asym.mse, asym.hoyer, asym.max_approx, asym.svm),
        (0.0212, 0.826, 0.0297, 0.78)
    );
    assert_eq!(find("asym-ae", Some("none"), None).max_approx, 14.31);
    assert!(p.rows.iter().all(|r| r.svm_std > 0.0 && r.svm_std < 0.05));
}

#[test]
fn plans_cover_every_published_row_with_unique_folders() {
    let fast = plan(Budget::Fast, &PlanOptions::default()).unwrap();
    let full = plan(Budget::Full, &PlanOptions::default()).unwrap();
    // sparse NMF + unconstrained AE + KL over 8 β × 4 p + 3 penalties × 8 β (fast: p = 0.05;
    // full: every p) + the asymmetric AE's 5 rows.
    assert_eq!(fast.len(), 1 + 1 + 32 + 24 + 5);
    assert_eq!(full.len(), 1 + 1 + 4 * 32 + 5);
    for pts in [&fast, &full] {
        let mut ids: Vec<&str> = pts.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), pts.len(), "folder names are unique");
        for row in &published().unwrap().rows {
            assert_eq!(
                pts.iter().filter(|p| p.matches(row)).count(),
                1,
                "{} p={:?} β={:?} is run once",
                row.label,
                row.p,
                row.beta
            );
        }
    }
    let ae = |pts: &[StudyPoint], m: Model| pts.iter().find(|p| p.model == m).unwrap().epochs;
    assert_eq!(
        (ae(&fast, Model::Ae), ae(&fast, Model::AsymAe)),
        (FAST_EPOCHS, FAST_ASYM_EPOCHS)
    );
    assert_eq!((ae(&full, Model::Ae), ae(&full, Model::AsymAe)), (500, 500));
    assert!(fast.iter().any(|p| p.id == "ae-kl-p0.05-beta0.001"));
    assert!(fast.iter().any(|p| p.id == "ae-eps-l1-p0.05-beta0.5"));
    assert!(
        !fast.iter().any(|p| p.id == "ae-log-p0.01-beta0.5"),
        "fast: other penalties at p = 0.05"
    );
    assert!(full.iter().any(|p| p.id == "ae-log-p0.01-beta0.5"));
}

#[test]
fn plan_options_override_the_budget_and_bad_ones_are_refused() {
    let opts = PlanOptions {
        epochs: Some(2),
        asym_epochs: Some(1),
        penalties: vec![Sparsity::Kl, Sparsity::Log],
        betas: vec![0.001, 0.01],
        ps: vec![0.01, 0.05],
        asym: false,
    };
    let pts = plan(Budget::Fast, &opts).unwrap();
    // sparse NMF, unconstrained, KL 2 × 2, log 2 β at p = 0.05.
    assert_eq!(pts.len(), 1 + 1 + 4 + 2);
    // Values given twice are one point.
    let twice = PlanOptions {
        betas: vec![0.001, 0.01, 0.001],
        ps: vec![0.05, 0.01, 0.05],
        penalties: vec![Sparsity::Kl, Sparsity::Log, Sparsity::Kl],
        ..opts.clone()
    };
    assert_eq!(plan(Budget::Fast, &twice).unwrap().len(), pts.len());
    assert!(pts.iter().filter(|p| p.model == Model::Ae).all(|p| p.epochs == 2));
    // Without 0.05 among the p values, the other penalties run at every p given.
    let pts = plan(
        Budget::Fast,
        &PlanOptions {
            ps: vec![0.2],
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(pts.len(), 1 + 1 + 2 + 2);
    let with_asym = plan(
        Budget::Fast,
        &PlanOptions {
            asym: true,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(with_asym
        .iter()
        .filter(|p| p.model == Model::AsymAe)
        .all(|p| p.epochs == 1));
    for bad in [
        PlanOptions {
            betas: vec![],
            ..opts.clone()
        },
        PlanOptions {
            betas: vec![-1.0],
            ..opts.clone()
        },
        PlanOptions {
            ps: vec![1.5],
            ..opts.clone()
        },
        PlanOptions {
            ps: vec![f64::NAN],
            ..opts.clone()
        },
        PlanOptions {
            penalties: vec![],
            ..opts.clone()
        },
        PlanOptions {
            penalties: vec![Sparsity::L1],
            ..opts.clone()
        },
        PlanOptions {
            epochs: Some(0),
            ..opts.clone()
        },
    ] {
        assert!(plan(Budget::Full, &bad).is_err(), "{bad:?}");
    }
    assert_eq!(Budget::parse("fast").unwrap(), Budget::Fast);
    assert!(Budget::parse("slow").is_err());
}

/// A small study: sparse NMF, KL at two p over three β, the unconstrained AE.
fn small_study() -> Vec<StudyResult> {
    let opts = PlanOptions {
        epochs: Some(3),
        penalties: vec![Sparsity::Kl],
        betas: vec![0.001, 0.005, 0.01],
        ps: vec![0.01, 0.05],
        asym: false,
        ..PlanOptions::default()
    };
    plan(Budget::Fast, &opts)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let b = p.beta.unwrap_or(0.0);
            result(
                p,
                0.01 + b,
                0.3 + 10.0 * b,
                0.5 - 20.0 * b + i as f64 * 1e-3,
                0.78 + b,
            )
        })
        .collect()
}

#[test]
fn the_page_sets_each_row_beside_the_report_and_judges_the_svm_by_its_std() {
    let results = small_study();
    let info = PageInfo {
        title: "study".into(),
        budget: Budget::Fast,
        epochs: (3, 1),
        data: "fashion-mnist:train".into(),
        eval_data: "fashion-mnist:test".into(),
        missing: vec!["ae-kl-p0.2-beta0.001".into()],
    };
    let p = published().unwrap();
    let html = render(&results, &p, &info).unwrap();
    assert_eq!(html, render(&results, &p, &info).unwrap(), "deterministic");
    // p = 0.01, β = 0.005: ours 0.785 against 0.767 ± 0.035 → +0.018, within.
    assert!(
        html.contains("0.785 ± 0.030<br><small>0.767 ± 0.035</small>"),
        "SVM cells"
    );
    assert!(
        html.contains("+0.0180<br><small>within</small>"),
        "difference and verdict"
    );
    // Sparse NMF: ours 0.78 against 0.812 ± 0.036 → −0.032, within; MSE 0.01 vs 0.0109.
    assert!(
        html.contains("0.0100<br><small>0.0109 · −0.0009</small>"),
        "MSE difference"
    );
    // Rows partlearn has not run (p = 0.2; the asymmetric AE) say so.
    assert!(html.contains("not run yet"));
    assert!(html.contains("1 point(s) not evaluated yet"));
    assert!(html.contains("3 epochs of the shallow AEs (0.6 % of the report's 500)"));
    // A difference outside the std is marked.
    let mut off = results.clone();
    for r in &mut off {
        if let Some(s) = r.metrics.svm.as_mut() {
            s.mean_accuracy = 0.6;
        }
    }
    let html_off = render(&off, &p, &info).unwrap();
    assert!(html_off.contains("outside") && !html_off.contains("<small>within</small>"));
}

#[test]
fn beta_charts_have_a_curve_per_p_the_reports_diamonds_and_the_baseline() {
    let results = small_study();
    let p = published().unwrap();
    let all = charts(&results, &p).unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "reconstruction_mse_vs_beta_kl.svg",
            "hoyer_vs_beta_kl.svg",
            "max_approx_vs_beta_kl.svg",
            "svm_accuracy_vs_beta_kl.svg",
            "reconstruction_mse_vs_hoyer.svg",
            "max_approx_vs_hoyer.svg",
            "svm_accuracy_vs_hoyer.svg",
        ]
    );
    let svm = &all[3].3;
    let texts = crate::plot::tests::parse_svg(svm);
    for want in [
        "p = 0.01",
        "p = 0.05",
        "report, p = 0.01",
        "report, p = 0.05",
        "sparse NMF (baseline)",
        "β (sparsity-penalty weight, log scale)",
        "10⁻³",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want} missing in {texts:?}");
    }
    assert!(
        !texts.iter().any(|t| t.contains("p = 0.2")),
        "no reference without a curve"
    );
    assert!(all[0].1.contains("KL penalty") && all[0].2.contains("hollow diamonds"));
    let trade = crate::plot::tests::parse_svg(&all[5].3);
    for want in [
        "sparse NMF",
        "shallow NN-AE, KL",
        "shallow AE, unconstrained",
        "report: table rows",
    ] {
        assert!(trade.iter().any(|t| t == want), "{want} missing in {trade:?}");
    }
}

#[test]
fn the_csv_has_a_row_per_point() {
    let results = small_study();
    let csv = table_csv(&results);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), results.len() + 1);
    assert!(lines[0].starts_with("id,model,penalty,p,beta,epochs,reconstruction_mse"));
    assert!(
        lines[1].starts_with("sparse-nmf-sH0.6,sparse-nmf,,,,0,"),
        "{}",
        lines[1]
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ae-kl-p0.01-beta0.005,ae,kl,0.01,0.005,3,")));
}
