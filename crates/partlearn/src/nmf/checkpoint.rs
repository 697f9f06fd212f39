//! Checkpoints of NMF fits: the factors between two iterations with everything a resumed fit
//! needs to go on with the same bits as the uninterrupted one (the solver's own state — the
//! extrapolation's β, the re-seeding record, work counters —, the stopping rule's references,
//! the history and the seconds spent). A checkpoint is a safetensors file: tensors `atoms`
//! (`k × m`) and `codes` (`k × n`, the iterate, not the final encode) in the fit's dtype, and a
//! JSON description under [`NMF_CHECKPOINT_KEY`].
//!
//! [`factorize_checkpointed`] saves one whenever the observer says one is due
//! ([`Observer::checkpoint_due`](crate::engine::Observer::checkpoint_due): the CLI's wall-clock
//! interval) and when the fit ends interrupted or out of time; [`resume`] continues from one.
//! The data are identified by their shape, `‖X‖²_F` (to 10⁻¹² relative) and (with missing entries) the count of
//! observed entries: a checkpoint is refused on other data.

use std::path::Path;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::{CustomInit, FitStats, Mask, NmfFit, NmfParams, ValidNmfParams};
use crate::data::Csr;
use crate::dist::Part;
use crate::engine::{IterRecord, Observer, Progress, Resume};
use crate::error::{Error, Result};
use crate::io::Tensor;
use crate::real::Real;

/// Metadata key of an NMF checkpoint's JSON description.
pub const NMF_CHECKPOINT_KEY: &str = "partlearn.nmf_checkpoint";

/// Which part of a compressed fit the checkpoint was taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Exact iterations (every fit without compression).
    Exact,
    /// Iterations on the sketch of a compressed fit.
    Compressed,
    /// The polish after them.
    Polish,
}

/// What identifies the data a fit runs on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct DataPrint {
    pub n_samples: usize,
    pub n_features: usize,
    /// `‖X‖²_F` (over the observed entries).
    pub x_sq: f64,
    /// Observed entries, when some are missing.
    pub observed: Option<u64>,
}

/// The JSON description of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub options: NmfParams,
    pub dtype: String,
    pub data: DataPrint,
    pub phase: Phase,
    pub done: usize,
    pub first: Option<f64>,
    pub window: Option<f64>,
    pub seconds: f64,
    pub history: Vec<IterRecord>,
    pub solver: serde_json::Value,
    pub stats: FitStats,
}

/// An NMF fit between two iterations (see the module's documentation).
#[derive(Clone, Debug)]
pub struct NmfCheckpoint<T: Real> {
    pub(crate) meta: Meta,
    /// Atoms as the rows of `Wᵀ` (`k × m`) and codes `H` (`k × n`).
    pub(crate) wt: Mat<T>,
    pub(crate) h: Mat<T>,
}

impl<T: Real> NmfCheckpoint<T> {
    /// The options of the fit (with those of [`NmfCheckpoint::continue_with`]).
    pub fn params(&self) -> &NmfParams {
        &self.meta.options
    }

    /// Iterations done.
    pub fn done(&self) -> usize {
        self.meta.done
    }

    /// The records up to the checkpoint (iteration 0 first).
    pub fn history(&self) -> &[IterRecord] {
        &self.meta.history
    }

    /// Seconds the fit had run.
    pub fn seconds(&self) -> f64 {
        self.meta.seconds
    }

    /// The dataset shape it was taken on (`n_samples`, `n_features`).
    pub fn shape(&self) -> (usize, usize) {
        (self.meta.data.n_samples, self.meta.data.n_features)
    }

    /// What a resumed fit may change: `max_iter` (the new total), the time budget of the
    /// resumed invocation, and the threads (which do not change the bits).
    pub fn continue_with(&mut self, max_iter: Option<usize>, max_seconds: Option<f64>, threads: usize) {
        let o = &mut self.meta.options;
        if let Some(m) = max_iter {
            o.max_iter = m;
        }
        o.max_seconds = max_seconds;
        o.threads = threads;
    }

    /// The checkpoint as the bytes of a safetensors file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        bytes_of(&self.meta, self.wt.as_ref(), self.h.as_ref())
    }

    /// Reads the bytes of a checkpoint file; `source` names it in errors. The values are
    /// converted to `T` when the file holds the other float type (the bits of a resumed fit are
    /// then those of the conversion: resume in the checkpoint's [`checkpoint_dtype`]).
    pub fn from_bytes(bytes: &[u8], source: &Path) -> Result<Self> {
        let (tensors, meta) = crate::io::parse_safetensors(bytes, source)?;
        let meta = describe(&meta, source)?;
        let (n, m, k) = (meta.data.n_samples, meta.data.n_features, meta.options.k);
        let damaged = |what: String| Error::format(source, format!("{what}; the checkpoint is damaged"));
        meta.options
            .check()
            .map_err(|e| damaged(format!("it holds invalid options ({e})")))?;
        let wt = crate::io::tensor_by_name(&tensors, "atoms", source)?.to_mat::<T>()?;
        let h = crate::io::tensor_by_name(&tensors, "codes", source)?.to_mat::<T>()?;
        if wt.shape() != (k, m) || h.shape() != (k, n) {
            return Err(damaged(format!(
                "its atoms are {:?} and codes {:?} where k = {k} on {n} × {m} data needs ({k}, {m}) and ({k}, {n})",
                wt.shape(),
                h.shape()
            )));
        }
        let finite = |a: &Mat<T>| (0..a.ncols()).all(|j| (0..a.nrows()).all(|i| a[(i, j)].is_finite()));
        if !finite(&wt) || !finite(&h) {
            return Err(damaged("its factors hold non-finite values".into()));
        }
        if meta.done > meta.options.max_iter.max(meta.done) || meta.history.len() > meta.done + 1 {
            return Err(damaged(format!(
                "it records {} iterations done with {} history records",
                meta.done,
                meta.history.len()
            )));
        }
        Ok(NmfCheckpoint { meta, wt, h })
    }

    /// Reads a checkpoint file ([`NmfCheckpoint::from_bytes`]).
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&crate::io::read_regular(path, u64::MAX)?, path)
    }

    /// Errors unless `data` is what the checkpoint was taken on.
    pub(crate) fn check_data(&self, data: &DataPrint, source: &str) -> Result<()> {
        let d = &self.meta.data;
        // ‖X‖² summed in another order (a distributed fit resumed on another number of
        // processes) differs in its last bits only; any change of the data shows far above.
        let same_norm = (d.x_sq - data.x_sq).abs() <= 1e-12 * d.x_sq.abs().max(data.x_sq.abs());
        if (d.n_samples, d.n_features) != (data.n_samples, data.n_features) {
            return Err(Error::invalid(
                "resume",
                source,
                format!(
                    "the checkpoint was taken on {} × {} data, these are {} × {}; resume on the fit's data",
                    d.n_samples, d.n_features, data.n_samples, data.n_features
                ),
            ));
        }
        if !same_norm || d.observed != data.observed {
            return Err(Error::invalid(
                "resume",
                source,
                "the data (or their missing entries) differ from those the checkpoint was taken on; resume on the fit's data and mask",
            ));
        }
        Ok(())
    }
}

/// The bytes of a checkpoint file holding `meta` and the factors.
fn bytes_of<T: Real>(meta: &Meta, wt: MatRef<'_, T>, h: MatRef<'_, T>) -> Result<Vec<u8>> {
    let tensors = [Tensor::from_mat("atoms", wt), Tensor::from_mat("codes", h)];
    let desc =
        serde_json::to_string(meta).map_err(|e| Error::invalid("checkpoint", "state", e.to_string()))?;
    let meta = [(NMF_CHECKPOINT_KEY.to_string(), desc)].into_iter().collect();
    crate::io::safetensors_bytes(&tensors, &meta)
}

/// Writes the checkpoints of a running fit: the description of the fit so far (`meta`: its
/// options, data and phase; the rest is filled at each save) and the history of its earlier
/// runs (`earlier`: a resumed fit's, or a compressed fit's before its polish).
pub(crate) struct Saver<'a> {
    pub path: &'a Path,
    pub meta: Meta,
    pub earlier: Vec<IterRecord>,
    /// The processes of a distributed fit: rank 0 gathers the codes blocks and writes the file.
    pub part: Part<'a>,
}

impl<'a> Saver<'a> {
    /// A saver for a fit of `options` on `data` in dtype `dtype` over the processes of `part`,
    /// continuing `from` if given.
    pub fn new<T: Real>(
        path: &'a Path,
        options: &NmfParams,
        dtype: &str,
        data: DataPrint,
        from: Option<&NmfCheckpoint<T>>,
        part: Part<'a>,
    ) -> Self {
        Saver {
            path,
            part,
            meta: Meta {
                options: options.clone(),
                dtype: dtype.to_string(),
                data,
                phase: from.map_or(Phase::Exact, |f| f.meta.phase),
                done: 0,
                first: None,
                window: None,
                seconds: 0.0,
                history: Vec::new(),
                solver: serde_json::Value::Null,
                stats: from.map_or_else(FitStats::default, |f| f.meta.stats),
            },
            earlier: from.map_or_else(Vec::new, |f| f.meta.history.clone()),
        }
    }

    /// Saves the factors after a recorded iteration, with the engine's `progress` and the
    /// solver's own state, atomically. In a distributed fit every process calls it at the same
    /// iteration: rank 0 gathers the codes blocks (in rank order, which is the samples' order)
    /// and writes one checkpoint of the whole fit, the same file a one-process fit writes; a
    /// failed write is an error on every process.
    pub fn save<T: Real>(
        &mut self,
        progress: &Progress<'_>,
        solver: serde_json::Value,
        wt: MatRef<'_, T>,
        h: MatRef<'_, T>,
    ) -> Result<()> {
        let m = &mut self.meta;
        m.done = progress.done;
        m.first = progress.first;
        m.window = progress.window;
        m.seconds = progress.seconds;
        m.solver = solver;
        m.history.clear();
        m.history.extend_from_slice(&self.earlier);
        m.history.extend_from_slice(progress.history);
        if !self.part.is_distributed() {
            return crate::io::write_atomic(self.path, &bytes_of(m, wt, h)?);
        }
        // On a 2-D grid the first grid column sends the codes (one copy of each block of
        // samples) and the first grid row the atoms' columns, both in rank order.
        let (i, j) = self.part.position();
        let k = h.nrows();
        let columns = |f: MatRef<'_, T>, send: bool| -> Vec<f64> {
            if !send {
                return Vec::new();
            }
            (0..f.ncols())
                .flat_map(|c| (0..k).map(move |r| f[(r, c)].to_f64()))
                .collect()
        };
        let all = self.part.comm.gather(&columns(h, j == 0));
        let all_wt = if self.part.splits_features() {
            Some(self.part.comm.gather(&columns(wt, i == 0)))
        } else {
            None
        };
        let written = if self.part.comm.rank() == 0 {
            let of = |v: &[f64]| Mat::<T>::from_fn(k, v.len() / k.max(1), |r, c| T::from_f64(v[c * k + r]));
            let h = of(&all);
            let wt = all_wt.as_deref().map_or_else(|| wt.to_owned(), of);
            bytes_of(m, wt.as_ref(), h.as_ref()).and_then(|b| crate::io::write_atomic(self.path, &b))
        } else {
            Ok(())
        };
        let failed = self.part.sum1_all(f64::from(u8::from(written.is_err())));
        match written {
            Ok(()) if failed > 0.0 => Err(Error::invalid(
                "checkpoint",
                self.path.display(),
                "process 0 could not write the checkpoint (it printed why); free space or give another --out",
            )),
            w => w,
        }
    }

    /// The engine's state to continue from a checkpoint.
    pub fn resume_of<T: Real>(from: &NmfCheckpoint<T>) -> Resume {
        Resume {
            done: from.meta.done,
            plateau: None,
            first: from.meta.first,
            window: from.meta.window,
        }
    }
}

/// The history of a resumed fit: the checkpoint's records, then this run's.
pub(crate) fn joined_history<T: Real>(
    from: Option<&NmfCheckpoint<T>>,
    mut run: Vec<IterRecord>,
) -> Vec<IterRecord> {
    match from {
        Some(f) => {
            let mut h = f.meta.history.clone();
            h.append(&mut run);
            h
        }
        None => run,
    }
}

/// The dtype (`"f32"` / `"f64"`) of the fit a checkpoint's bytes hold, to resume it in the same.
pub fn checkpoint_dtype(bytes: &[u8], source: &Path) -> Result<String> {
    let (_, meta) = crate::io::parse_safetensors(bytes, source)?;
    Ok(describe(&meta, source)?.dtype)
}

fn describe(meta: &std::collections::BTreeMap<String, String>, source: &Path) -> Result<Meta> {
    let s = meta.get(NMF_CHECKPOINT_KEY).ok_or_else(|| {
        Error::format(
            source,
            "not a partlearn NMF checkpoint (no NMF fit state in it); give the checkpoint.safetensors of a `partlearn fit nmf` run",
        )
    })?;
    serde_json::from_str(s)
        .map_err(|e| Error::format(source, format!("unreadable checkpoint description ({e})")))
}

/// The data of a checkpointed fit.
#[derive(Clone, Copy, Debug)]
pub enum NmfInput<'a, T: Real> {
    /// Dense, every entry observed (`n_samples × n_features`).
    Dense(faer::MatRef<'a, T>),
    /// Sparse (CSR), never densified.
    Sparse(&'a Csr<T>),
    /// Dense with missing entries: NaN entries and the zeros of the mask are unobserved.
    Masked(faer::MatRef<'a, T>, Option<&'a Mask>),
}

impl<T: Real> NmfInput<'_, T> {
    /// `(n_samples, n_features)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            NmfInput::Dense(x) | NmfInput::Masked(x, _) => (x.nrows(), x.ncols()),
            NmfInput::Sparse(x) => (x.nrows(), x.ncols()),
        }
    }
}

impl<'a, T: Real> From<MatRef<'a, T>> for NmfInput<'a, T> {
    fn from(x: MatRef<'a, T>) -> Self {
        NmfInput::Dense(x)
    }
}

impl<'a, T: Real> From<&'a Csr<T>> for NmfInput<'a, T> {
    fn from(x: &'a Csr<T>) -> Self {
        NmfInput::Sparse(x)
    }
}

/// Where a fit saves its checkpoints and the one it continues from.
#[derive(Clone, Copy)]
pub(crate) struct Checkpointing<'a, T: Real> {
    pub save: Option<&'a Path>,
    pub from: Option<&'a NmfCheckpoint<T>>,
}

impl<T: Real> Checkpointing<'_, T> {
    /// No checkpoint saved, none continued.
    pub fn none() -> Self {
        Checkpointing {
            save: None,
            from: None,
        }
    }
}

impl<'a, T: Real> Checkpointing<'a, T> {
    /// Continues `from`, saving at `save`; with the options of `from` (checked).
    pub fn resuming(from: &'a NmfCheckpoint<T>, save: Option<&'a Path>) -> Result<(Self, ValidNmfParams)> {
        let params = from.params().check()?;
        Ok((
            Checkpointing {
                save,
                from: Some(from),
            },
            params,
        ))
    }
}

/// Fits `params` on `input` as [`super::factorize_with`], [`super::factorize_csr`] or
/// [`super::factorize_masked_with`] would, saving a checkpoint at `save` whenever `observer`
/// says one is due and when the fit ends interrupted or out of time (written atomically).
pub fn factorize_checkpointed<T: Real>(
    input: NmfInput<'_, T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    save: &Path,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let ck = Checkpointing {
        save: Some(save),
        from: None,
    };
    dispatch(input, params, custom, ck, observer)
}

/// Continues the fit of `from` on `input` (the same data: checked) until its stopping rules
/// fire, with the same bits as the uninterrupted fit; saves further checkpoints at `save` as
/// [`factorize_checkpointed`]. The history of the result starts at iteration 0 of the first run;
/// `seconds` counts every run.
pub fn resume<T: Real>(
    input: NmfInput<'_, T>,
    from: &NmfCheckpoint<T>,
    save: Option<&Path>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    let (ck, params) = Checkpointing::resuming(from, save)?;
    dispatch(input, &params, None, ck, observer)
}

fn dispatch<T: Real>(
    input: NmfInput<'_, T>,
    params: &ValidNmfParams,
    custom: Option<&CustomInit<T>>,
    ck: Checkpointing<'_, T>,
    observer: &mut (dyn Observer + Send),
) -> Result<NmfFit<T>> {
    match input {
        NmfInput::Dense(x) => super::factorize_impl(x, params, custom, ck, observer),
        NmfInput::Sparse(x) => super::factorize_csr_impl(x, params, custom, ck, observer),
        NmfInput::Masked(x, mask) => {
            super::masked::factorize_masked_impl(x, mask, params, custom, ck, observer)
        }
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
