//! A pending interrupt request stops the layer models run through the engine: every
//! hierarchical layer, SSNMF on the last layer, the Deep NMF fine-tuning and Neural NMF (their own
//! test binary: the request is global to the process).

use partlearn::data::labels::Supervision;
use partlearn::deep::deep_nmf::{fine_tune, FineTuneParams};
use partlearn::deep::hnmf::hierarchical;
use partlearn::deep::neural::{train, NeuralParams};
use partlearn::deep::pipeline::{fit_layers, LayerMethod, LayersParams};
use partlearn::engine::{interrupt, Silent, StopReason};
use partlearn::nmf::NmfParams;

#[test]
fn a_pending_request_stops_every_layer_fit() {
    let d = partlearn::data::named::toy_hierarchy::<f64>(0);
    let layer = NmfParams {
        max_iter: 100_000_000,
        tol: 0.0,
        ..NmfParams::default()
    };
    let ready = hierarchical(
        d.x(),
        &[9, 4],
        &NmfParams {
            max_iter: 50,
            ..layer.clone()
        }
        .check()
        .unwrap(),
    )
    .unwrap()
    .stack;
    let labels = partlearn::data::labels::supervised_labels(&d, Supervision::Full, None, 4, 0)
        .unwrap()
        .unwrap();
    assert!(!interrupt::request());

    let h = hierarchical(d.x(), &[9, 4, 2], &layer.check().unwrap()).unwrap();
    assert_eq!(h.stop_reason(), StopReason::Interrupted);
    assert!(h.layers.iter().all(|l| l.n_iter == 0 && l.history.len() == 1));

    for method in [LayerMethod::Hierarchical, LayerMethod::DeepNmf] {
        let o = LayersParams::new(vec![9, 4])
            .max_iter(100_000_000)
            .tol(0.0)
            .check()
            .unwrap();
        let f = fit_layers(d.x(), method, &o, Some(&labels), &mut Silent).unwrap();
        assert_eq!(f.stop_reason, StopReason::Interrupted, "{method:?}");
        // No stage after the interrupted layers: no classifier was fitted.
        assert!(f.classifier.is_none(), "{method:?}");
    }

    let o = FineTuneParams::new().max_iter(100_000_000).check().unwrap();
    let f = fine_tune(d.x(), ready, None, &o, &mut Silent).unwrap();
    assert_eq!(
        (f.stop_reason, f.n_iter, f.history.len()),
        (StopReason::Interrupted, 0, 1)
    );

    let o = NeuralParams::new(vec![9, 4]).epochs(100_000_000).restarts(3);
    let f = train(d.x(), &o.check().unwrap(), Some(&labels), &mut Silent).unwrap();
    assert_eq!(
        (f.stop_reason, f.n_iter, f.history.len()),
        (StopReason::Interrupted, 0, 1)
    );

    interrupt::clear();
    let f = train(
        d.x(),
        &o.epochs(3).restarts(1).check().unwrap(),
        None,
        &mut Silent,
    )
    .unwrap();
    assert_eq!((f.stop_reason, f.n_iter), (StopReason::MaxIter, 3));
}
