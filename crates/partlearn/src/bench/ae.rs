//! `partlearn bench ae`: seconds per auto-encoder epoch against the GEMM bound of an epoch.

use faer::{Accum, Mat};
use serde::Serialize;

use super::{time_min, GemmTiming};
use crate::data::Dataset;
use crate::engine::{Control, IterRecord, Observer};
use crate::error::Result;
use crate::linalg;
use crate::real::Real;
use crate::rng::Rng;

/// Settings of [`bench_ae`].
#[derive(Clone, Debug)]
pub struct AeBenchOptions {
    /// Shallow or asymmetric auto-encoder.
    pub architecture: crate::autoencoder::Architecture,
    /// Number of codes (atoms).
    pub k: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Epochs to train at most.
    pub epochs: usize,
    /// Stop training after this many seconds and extrapolate the epoch time from the batches done
    /// (at least two are needed: the first is not timed).
    pub max_seconds: f64,
    /// Seed of the weights and of the batch order.
    pub seed: u64,
}

/// The auto-encoder benchmark: seconds per epoch against the GEMM-bound time of an epoch.
#[derive(Clone, Debug, Serialize)]
pub struct AeBenchReport {
    /// The data set's name.
    pub data: String,
    /// Samples of the data.
    pub n_samples: usize,
    /// The architecture's kind.
    pub architecture: String,
    /// Number of codes (atoms).
    pub k: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Worker threads used (resolved: never 0).
    pub threads: usize,
    /// Float type (`f32` or `f64`).
    pub dtype: &'static str,
    /// Trainable parameters of the model.
    pub n_params: usize,
    /// Parts a batch is split into, each back-propagated by one worker on one thread (1: the
    /// whole batch, its products on every thread).
    pub parts: usize,
    /// The products of one training step at their shapes (one part's when `parts > 1`).
    pub gemms: Vec<GemmTiming>,
    /// Mini-batches timed: every batch trained within the budget but the first.
    pub batches_timed: usize,
    /// Mini-batches of one epoch.
    pub batches_per_epoch: usize,
    /// Seconds of one epoch, extrapolated from the batches timed (the epochs' own work — the
    /// shuffle, the epoch's record — included).
    pub seconds_per_epoch: f64,
    /// Seconds from the start of training to the end of the first batch: the one-time work of a
    /// run (the data's norm and range, the workspaces' first touch), not part of an epoch.
    pub start_seconds: f64,
    /// Time of the products of one epoch: the timed products × batches × the rounds of parts
    /// (`⌈parts / threads⌉`).
    pub gemm_bound: f64,
    /// `seconds_per_epoch / gemm_bound`.
    pub ratio: f64,
}

/// Trains an auto-encoder (reference settings: Adadelta, KL sparsity, projection) and compares
/// its epoch time with the time of the epoch's matrix products, each measured at its shape. The
/// epoch is timed from the end of the first batch to the end of the last: what comes before (the
/// data's norm and range, the workspaces' first touch) is a run's, not an epoch's, and is reported
/// apart (`start_seconds`).
pub fn bench_ae<T: Real>(data: &Dataset<T>, o: &AeBenchOptions) -> Result<AeBenchReport> {
    use crate::autoencoder::{self as ae, Act, AeParams, AeSpec, Autoencoder, TrainState};
    let spec = AeSpec::new(
        o.architecture,
        o.k,
        data.n_features(),
        data.image_shape,
        Act::LeakyRelu { slope: 0.1 },
    )?;
    let model = Autoencoder::<T>::new(spec, data.image_shape, &mut Rng::new(o.seed))?;
    let b = o.batch_size;
    let threads = linalg::resolve_threads(o.threads);
    // The products as training performs them: a model that does not couple the samples splits
    // each batch into parts back-propagated by one worker each on one thread (the bound times
    // one part's products and counts the rounds of parts the workers need); otherwise the whole
    // batch's products run on every thread.
    let parts = if model.encoder.couples_batch() {
        1
    } else {
        ae::train::BATCH_PARTS.min(b)
    };
    let (shape_b, par, rounds) = if parts > 1 {
        (b.div_ceil(parts), faer::Par::Seq, parts.div_ceil(threads))
    } else {
        (b, linalg::par(o.threads), 1)
    };
    let shapes: Vec<_> = model
        .encoder
        .gemm_shapes(shape_b, false)
        .into_iter()
        .chain(model.decoder.gemm_shapes(shape_b, true))
        .collect();
    let gemms = linalg::with_threads(o.threads, || {
        let mut rng = Rng::new(2);
        shapes
            .iter()
            .map(|(name, r, inner, c, lt, rt)| {
                let (r, inner, c) = (*r, *inner, *c);
                let mut fill = |a, b| Mat::<T>::from_fn(a, b, |_, _| T::from_f64(rng.uniform() - 0.5));
                // The best over four sets of operands, each at its own addresses: a product's
                // speed depends on where its operands sit (the encoder's ∂W measured 0.12-0.14
                // ms at one set of addresses, 0.07 ms at others), and a bound is the best case.
                let sets: Vec<_> = (0..4)
                    .map(|_| {
                        let lhs = if *lt { fill(inner, r) } else { fill(r, inner) };
                        let rhs = if *rt { fill(c, inner) } else { fill(inner, c) };
                        (lhs, rhs, Mat::<T>::zeros(r, c))
                    })
                    .collect();
                let seconds = sets
                    .into_iter()
                    .map(|(lhs, rhs, mut dst)| {
                        time_min(5, || {
                            let l = if *lt { lhs.transpose() } else { lhs.as_ref() };
                            let rr = if *rt { rhs.transpose() } else { rhs.as_ref() };
                            linalg::matmul(dst.as_mut(), Accum::Replace, l, rr, T::one(), par)
                        })
                    })
                    .fold(f64::INFINITY, f64::min);
                GemmTiming {
                    name: name.clone(),
                    shape: format!("{r}×{inner} · {inner}×{c}"),
                    flops: 2.0 * (r * inner * c) as f64,
                    seconds,
                }
            })
            .collect::<Vec<_>>()
    })?;
    let params = AeParams::new(o.k)
        .architecture(o.architecture)
        .epochs(o.epochs)
        .batch_size(b)
        .threads(o.threads)
        .max_seconds(Some(o.max_seconds))
        .seed(o.seed)
        .check()?;
    let n_params = model.n_params();
    let mut state = TrainState::new(model, params)?;
    let mut clock = BatchClock::default();
    let start = std::time::Instant::now();
    ae::train(&mut state, data, None, &mut clock)?;
    let batches_per_epoch = data.n_samples().div_ceil(b);
    let (first, last) = match (clock.first, clock.last) {
        (Some(first), Some(last)) if clock.batches >= 2 => (first, last),
        _ => {
            return Err(crate::Error::invalid(
                "epochs",
                o.epochs,
                "fewer than two batches were trained and the first is not timed; train at least two batches (more epochs, a smaller batch, more data or a larger --max-seconds)",
            ))
        }
    };
    let batches_timed = clock.batches - 1;
    let seconds_per_epoch = (last - first).as_secs_f64() / batches_timed as f64 * batches_per_epoch as f64;
    let gemm_bound = gemms.iter().map(|g| g.seconds).sum::<f64>() * (rounds * batches_per_epoch) as f64;
    Ok(AeBenchReport {
        data: data.name.clone(),
        n_samples: data.n_samples(),
        architecture: o.architecture.kind().to_string(),
        k: o.k,
        batch_size: b,
        threads,
        parts,
        dtype: T::NAME,
        n_params,
        gemms,
        batches_timed,
        batches_per_epoch,
        seconds_per_epoch,
        start_seconds: (first - start).as_secs_f64(),
        gemm_bound,
        ratio: seconds_per_epoch / gemm_bound,
    })
}

/// Times the batches of a training run: the instants at the end of the first and of the last
/// batch ([`Observer::on_progress`] follows every batch) and their number.
#[derive(Default)]
struct BatchClock {
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
    batches: usize,
}

impl Observer for BatchClock {
    fn on_iter(&mut self, _rec: &IterRecord) -> Control {
        Control::Continue
    }

    fn on_progress(&mut self, _done: usize, _total: usize) -> Control {
        let now = std::time::Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.batches += 1;
        Control::Continue
    }
}
