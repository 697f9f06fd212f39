//! Neural NMF checkpoints: training stopped at any epoch of any restart and resumed from its
//! checkpoint gives the bits of the uninterrupted run (gradient descent and Adam with decay,
//! unsupervised and semi-supervised, several restarts, hierarchical starting layers, the
//! tolerance); other data or labels and damaged files are refused.

use faer::{Mat, MatRef};

use super::*;
use crate::data::Labels;
use crate::deep::neural::{hnmf_start, resume, train_checkpointed, train_from, Cost, NeuralParams};
use crate::engine::{Control, Observer, Silent};
use crate::io::test_dir;

/// Stops training at the `at`-th record it sees (counting every restart's), as Ctrl-C would.
struct StopAfter {
    seen: usize,
    at: usize,
}

impl Observer for StopAfter {
    fn on_iter(&mut self, _r: &IterRecord) -> Control {
        self.seen += 1;
        if self.seen >= self.at {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn bits(m: MatRef<'_, f64>) -> Vec<u64> {
    (0..m.ncols())
        .flat_map(|j| (0..m.nrows()).map(move |i| m[(i, j)].to_bits()))
        .collect()
}

fn same(a: &NeuralFit<f64>, b: &NeuralFit<f64>, what: &str) {
    assert_eq!((a.stop_reason, a.n_iter), (b.stop_reason, b.n_iter), "{what}");
    let rec = |f: &NeuralFit<f64>| -> Vec<(usize, u64, u64)> {
        f.history
            .iter()
            .map(|r| (r.iter, r.objective.to_bits(), r.rel_error.to_bits()))
            .collect()
    };
    assert_eq!(rec(a), rec(b), "{what}");
    for (x, y) in a.model.a.iter().zip(&b.model.a) {
        assert_eq!(bits(x.as_ref()), bits(y.as_ref()), "{what}");
    }
    assert_eq!(
        a.model.b.as_ref().map(|m| bits(m.as_ref())),
        b.model.b.as_ref().map(|m| bits(m.as_ref())),
        "{what}"
    );
    assert_eq!(bits(a.forward.top_codes()), bits(b.forward.top_codes()), "{what}");
}

fn toy() -> Mat<f64> {
    crate::data::named::toy_hierarchy::<f64>(0).x().to_owned()
}

/// The uninterrupted run, then the same run stopped at record `at` and resumed.
fn check(x: MatRef<'_, f64>, o: &NeuralParams, start: Option<&[Mat<f64>]>, sup: Option<&Labels>, at: usize) {
    let dir = test_dir("neural-ckpt");
    let path = dir.path().join("c.safetensors");
    let p = o.check().unwrap();
    let whole = train_from(x, start, &p, sup, &mut Silent).unwrap();
    let mut stop = StopAfter { seen: 0, at };
    // (The result is the best restart so far, which may be an earlier, finished one.)
    train_checkpointed(x, start, &p, sup, &path, &mut stop).unwrap();
    let ck = NeuralCheckpoint::<f64>::load(&path).unwrap();
    let resumed = resume(x, &ck, sup, Some(&path), &mut Silent).unwrap();
    let (restart, epoch) = ck.position();
    assert_eq!(
        restart as usize * (o.epochs + 1) + epoch + 1,
        at,
        "the checkpoint is not at the stop"
    );
    same(
        &resumed,
        &whole,
        &format!("{o:?} stopped at record {at}, restart {restart} epoch {epoch}"),
    );
}

#[test]
fn resumed_training_has_the_bits_of_the_uninterrupted_one() {
    let x = toy();
    let o = NeuralParams {
        ranks: vec![9, 4, 2],
        epochs: 40,
        ..NeuralParams::default()
    };
    check(x.as_ref(), &o, None, None, 17);
    // Adam with a decaying rate, three restarts: stopped in the second one.
    let o = NeuralParams {
        adam: true,
        lr: 0.01,
        decay: 0.9,
        decay_every: 5,
        restarts: 3,
        ..o
    };
    check(x.as_ref(), &o, None, None, 41 + 12);
    // Semi-supervised, energy cost.
    let classes: Vec<u32> = (0..90).map(|j| (j % 4) as u32).collect();
    let labels = Labels::new(classes, (0..90).map(|j| j % 3 == 0).collect()).unwrap();
    let o = NeuralParams {
        ranks: vec![9, 4],
        cost: Cost::Energy,
        restarts: 2,
        ..o
    };
    check(x.as_ref(), &o, None, Some(&labels), 30);
    // The tolerance stops the resumed run where it stops the uninterrupted one.
    let o = NeuralParams {
        ranks: vec![9, 4],
        epochs: 400,
        tol: 1e-3,
        ..NeuralParams::default()
    };
    check(x.as_ref(), &o, None, None, 25);
}

#[test]
fn hierarchical_starting_layers_are_kept_for_the_later_restarts() {
    let x = toy();
    let o = NeuralParams {
        ranks: vec![9, 4],
        epochs: 20,
        restarts: 2,
        ..NeuralParams::default()
    };
    let start = hnmf_start(x.as_ref(), &o.check().unwrap(), &mut Silent).unwrap();
    check(x.as_ref(), &o, Some(&start), None, 8);
}

#[test]
fn a_checkpoint_is_refused_on_other_data_or_labels() {
    let x = toy();
    let dir = test_dir("neural-ckpt-refuse");
    let path = dir.path().join("c.safetensors");
    let classes: Vec<u32> = (0..90).map(|j| (j % 4) as u32).collect();
    let labels = Labels::new(classes.clone(), vec![true; 90]).unwrap();
    let o = NeuralParams {
        ranks: vec![9, 4],
        epochs: 20,
        ..NeuralParams::default()
    };
    let p = o.check().unwrap();
    train_checkpointed(
        x.as_ref(),
        None,
        &p,
        Some(&labels),
        &path,
        &mut StopAfter { seen: 0, at: 5 },
    )
    .unwrap();
    let ck = NeuralCheckpoint::<f64>::load(&path).unwrap();
    let mut other = x.clone();
    other[(0, 0)] += 1.0;
    let e = resume(other.as_ref(), &ck, Some(&labels), None, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ from those the checkpoint was taken on"), "{e}");
    let fewer = Labels::new(classes, (0..90).map(|j| j % 2 == 0).collect()).unwrap();
    let e = resume(x.as_ref(), &ck, Some(&fewer), None, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels"), "{e}");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(neural_checkpoint_dtype(&bytes, &path).unwrap(), "f64");
    // An NMF checkpoint is not a Neural NMF one.
    let e = NeuralCheckpoint::<f64>::from_bytes(
        &crate::io::safetensors_bytes(&[], &Default::default()).unwrap(),
        &path,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a partlearn Neural NMF checkpoint"), "{e}");
}
