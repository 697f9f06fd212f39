//! The process-wide interrupt request stops every fit run through the engine (its own test
//! binary: the request is global to the process).

use partlearn::engine::{interrupt, Silent, StopReason};
use partlearn::nmf::{self, NmfParams};

#[test]
fn a_pending_request_stops_every_fit_until_cleared() {
    let (data, _) = partlearn::data::named::swimmer::<f64>();
    let opts = NmfParams {
        k: 17,
        max_iter: 50,
        tol: 0.0,
        ..NmfParams::default()
    };
    assert!(!interrupt::request());
    for _ in 0..2 {
        let fit = nmf::fit(&data, &opts, None, &mut Silent).unwrap();
        assert_eq!((fit.stop_reason, fit.n_iter), (StopReason::Interrupted, 0));
        assert_eq!(fit.history.len(), 1, "the start is evaluated and kept");
    }
    assert!(interrupt::request(), "the request stays pending");
    interrupt::clear();
    let fit = nmf::fit(&data, &opts, None, &mut Silent).unwrap();
    assert_eq!((fit.stop_reason, fit.n_iter), (StopReason::MaxIter, 50));
}
