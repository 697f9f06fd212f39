//! The auto-encoder models: a sigmoid encoder (shallow, §6.1, or the convolutional encoder of the
//! asymmetric AE, §6.6) and one dense decoder whose weights are the atoms
//! (`x̂ = σ_d(W_dᵀh + b_d)`), with the model protocol and model files.

use std::collections::BTreeMap;
use std::path::Path;

use faer::{Accum, Mat, MatRef, Par};
use serde::{Deserialize, Serialize};

use super::layers::{Act, Cache, LayerSpec, Net, Shape};
use crate::error::{Error, Result};
use crate::io::{Tensor as FileTensor, TensorData};
use crate::linalg;
use crate::linalg::kernels::{simd_wide, Kernel};
use crate::nmf::model::{IMAGE_SHAPE_KEY, KIND_KEY};
use crate::protocol::{check_decode_shapes, PartModel};
use crate::real::Real;
use crate::rng::Rng;

/// Metadata key holding the [`AeSpec`] as JSON.
pub const AE_SPEC_KEY: &str = "partlearn.ae_spec";

/// Which encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Architecture {
    /// One dense layer with a sigmoid (§6.1).
    #[default]
    Shallow,
    /// Conv 64 4×4/2 → LeakyReLU → Conv 128 4×4/2 → BN → LeakyReLU → flatten → dense 1024 → BN →
    /// LeakyReLU → dense k → sigmoid (§6.6, LeakyReLU slope 0.1).
    Asymmetric,
}

impl Architecture {
    /// Model kind stored in files and shown by `eval`/`report`.
    pub fn kind(&self) -> &'static str {
        match self {
            Architecture::Shallow => "ae",
            Architecture::Asymmetric => "asym-ae",
        }
    }
}

impl std::str::FromStr for Architecture {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "shallow" => Ok(Architecture::Shallow),
            "asymmetric" | "asym" => Ok(Architecture::Asymmetric),
            _ => Err(Error::invalid("architecture", s, "use shallow or asymmetric")),
        }
    }
}

/// What a model file needs to rebuild the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AeSpec {
    /// Which encoder (§6.1 or §6.6).
    pub architecture: Architecture,
    /// Code units (atoms).
    pub k: usize,
    /// Values per sample.
    pub n_features: usize,
    /// The shape of one input sample (`1 × 1 × n_features`, or the image `h × w × 1`).
    pub input: Shape,
    /// The encoder's layers, input first; the last outputs the `k` codes.
    pub encoder: Vec<LayerSpec>,
    /// The decoder's activation `σ_d`.
    pub decoder_activation: Act,
}

impl AeSpec {
    /// The encoder of `architecture` for samples of `n_features` values (images of
    /// `image_shape` for the convolutional encoder).
    pub fn new(
        architecture: Architecture,
        k: usize,
        n_features: usize,
        image_shape: Option<(usize, usize)>,
        decoder_activation: Act,
    ) -> Result<AeSpec> {
        crate::params::check_k_positive(k)?;
        if n_features == 0 {
            return Err(Error::EmptyData {
                n_samples: 0,
                n_features: 0,
            });
        }
        let leaky = LayerSpec::Activation {
            act: Act::LeakyRelu { slope: 0.1 },
        };
        let sigmoid = LayerSpec::Activation { act: Act::Sigmoid };
        let (input, encoder) = match architecture {
            Architecture::Shallow => (
                Shape::vector(n_features),
                vec![LayerSpec::Dense { outputs: k }, sigmoid],
            ),
            Architecture::Asymmetric => {
                let (h, w) = image_shape.filter(|(h, w)| h * w == n_features).ok_or_else(|| {
                    Error::invalid(
                        "architecture",
                        "asymmetric",
                        "the convolutional encoder needs image data with an image shape of n_features pixels (e.g. fashion-mnist:train); use the shallow architecture for other data",
                    )
                })?;
                let conv = |filters| LayerSpec::Conv2d {
                    filters,
                    kernel: 4,
                    stride: 2,
                };
                (
                    Shape { h, w, c: 1 },
                    vec![
                        conv(64),
                        leaky,
                        conv(128),
                        LayerSpec::batch_norm(),
                        leaky,
                        LayerSpec::Flatten,
                        LayerSpec::Dense { outputs: 1024 },
                        LayerSpec::batch_norm(),
                        leaky,
                        LayerSpec::Dense { outputs: k },
                        sigmoid,
                    ],
                )
            }
        };
        Ok(AeSpec {
            architecture,
            k,
            n_features,
            input,
            encoder,
            decoder_activation,
        })
    }
}

impl AeSpec {
    /// The number of values of every tensor the network holds (encoder and decoder parameters,
    /// batch-normalization statistics), computed with checked arithmetic: `None` when a size
    /// overflows (only a forged description does that) or a layer is invalid.
    pub fn n_values(&self) -> Option<usize> {
        let mut s = self.input;
        s.h.checked_mul(s.w)?.checked_mul(s.c)?;
        let mut total = 0usize;
        for spec in &self.encoder {
            total = total.checked_add(spec.n_values(s)?)?;
            s = spec.out_shape(s).ok()?;
            s.h.checked_mul(s.w)?.checked_mul(s.c)?;
        }
        if s != Shape::vector(self.k) {
            return None;
        }
        let decoder = LayerSpec::Dense {
            outputs: self.n_features,
        };
        total.checked_add(decoder.n_values(s)?)
    }

    /// Errors unless the description is consistent (input of `n_features` values, sizes that
    /// do not overflow, an encoder ending in `k` units) and its tensors hold at most `available`
    /// values (what the model file holds), so that a forged description never allocates more
    /// than the file it came from.
    fn check_against(&self, available: usize, path: &Path) -> Result<()> {
        let bad = |what: String| {
            Err(Error::format(
                path,
                format!("{what}: the network description is corrupt or forged; re-run the fit"),
            ))
        };
        let input = self
            .input
            .h
            .checked_mul(self.input.w)
            .and_then(|v| v.checked_mul(self.input.c));
        if input != Some(self.n_features) {
            return bad(format!(
                "its input {}×{}×{} is not its {} features",
                self.input.h, self.input.w, self.input.c, self.n_features
            ));
        }
        match self.n_values() {
            None => bad("its layer sizes overflow or do not end in k code units".into()),
            Some(n) if n > available => bad(format!(
                "it declares {n} parameter values but the file holds {available}"
            )),
            Some(_) => Ok(()),
        }
    }
}

/// A (trained or training) auto-encoder.
#[derive(Clone, Debug)]
pub struct Autoencoder<T: Real> {
    /// The architecture (what the model file stores to rebuild it).
    pub spec: AeSpec,
    /// The encoder network of `spec.encoder`.
    pub(crate) encoder: Net<T>,
    /// `[Dense n_features, Activation σ_d]`; its weight (`n_features × k` column-major) holds
    /// atom `j` as column `j`.
    pub(crate) decoder: Net<T>,
    /// `(height, width)` of the training images, if the samples were images.
    pub image_shape: Option<(usize, usize)>,
}

/// Samples encoded per forward pass by [`Autoencoder::encode`] (bounds the im2col memory).
const ENCODE_CHUNK: usize = 256;

impl<T: Real> Autoencoder<T> {
    /// A freshly initialized model (Glorot-uniform weights from `rng`, zero biases).
    pub fn new(spec: AeSpec, image_shape: Option<(usize, usize)>, rng: &mut Rng) -> Result<Self> {
        if spec.n_values().is_none() {
            return Err(Error::invalid(
                "k",
                spec.k,
                "the network's size overflows, or its encoder does not end in k code units; lower it",
            ));
        }
        let encoder = Net::new(spec.input, &spec.encoder, rng)?;
        if encoder.output() != Shape::vector(spec.k) {
            return Err(Error::invalid(
                "encoder",
                format!("{}", encoder.output()),
                "must end in k code units",
            ));
        }
        let decoder = Net::new(
            Shape::vector(spec.k),
            &[
                LayerSpec::Dense {
                    outputs: spec.n_features,
                },
                LayerSpec::Activation {
                    act: spec.decoder_activation,
                },
            ],
            rng,
        )?;
        Ok(Autoencoder {
            spec,
            encoder,
            decoder,
            image_shape,
        })
    }

    /// Decoder weights `W_d` as a flat column-major `n_features × k` buffer.
    pub fn decoder_weights(&self) -> &[T] {
        &self.decoder.params[0].data
    }

    /// `W_d ← max(W_d, 0)` (§6.4, the reference's projection).
    pub fn project_decoder(&mut self) {
        use rayon::prelude::*;
        // `max` (not a compare-and-store) so that the loop vectorizes; elementwise, so chunks
        // on the current pool's threads give the same bits.
        struct Clamp<'a, T>(&'a mut [T]);
        impl<T: Real> Kernel for Clamp<'_, T> {
            type Out = ();
            #[inline(always)]
            fn run(self) {
                for v in self.0.iter_mut() {
                    *v = v.max(T::zero());
                }
            }
        }
        let clamp = |w: &mut [T]| simd_wide(Clamp(w));
        let w = &mut self.decoder.params[0].data;
        if w.len() >= 2 * crate::optim::PAR_CHUNK && rayon::current_num_threads() > 1 {
            w.par_chunks_mut(crate::optim::PAR_CHUNK).for_each(clamp);
        } else {
            clamp(w);
        }
    }

    /// Fraction of decoder weights below zero.
    pub fn negative_decoder_fraction(&self) -> f64 {
        let w = self.decoder_weights();
        w.iter().filter(|v| **v < T::zero()).count() as f64 / w.len().max(1) as f64
    }

    /// Number of trainable values (157,684 for the reference shallow AE, §6.1).
    pub fn n_params(&self) -> usize {
        self.encoder.n_params() + self.decoder.n_params()
    }

    /// Codes of a column-major batch (inference mode) into `out` (`k × batch`).
    pub(crate) fn encode_batch(&self, x: &[T], batch: usize, cache: &mut Cache<T>, par: Par) -> Vec<T> {
        self.encoder.forward(x, batch, false, cache, par);
        cache.outs.last().cloned().unwrap_or_default()
    }

    /// Every parameter and state tensor, named as in model files.
    pub(crate) fn named_tensors(&self) -> Vec<(String, &super::layers::Tensor<T>)> {
        let mut v = Vec::new();
        for t in self.encoder.params.iter().chain(&self.encoder.state) {
            v.push((format!("encoder.{}", t.name), t));
        }
        v.push(("atoms".to_string(), &self.decoder.params[0]));
        v.push(("decoder_bias".to_string(), &self.decoder.params[1]));
        v
    }

    /// Tensors and metadata of a model file: `atoms` (`k × n_features`, the decoder weights),
    /// `decoder_bias`, and `encoder.<layer>.<name>` in Keras' layouts.
    pub fn to_tensors(&self) -> Result<(Vec<FileTensor>, BTreeMap<String, String>)> {
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(name, t)| file_tensor(name, &t.shape, &t.data))
            .collect::<Result<Vec<_>>>()?;
        let mut meta = BTreeMap::new();
        meta.insert(KIND_KEY.to_string(), self.spec.architecture.kind().to_string());
        meta.insert(
            AE_SPEC_KEY.to_string(),
            serde_json::to_string(&self.spec).map_err(|e| Error::invalid("model", "spec", e.to_string()))?,
        );
        if let Some((h, w)) = self.image_shape {
            meta.insert(IMAGE_SHAPE_KEY.to_string(), format!("{h}x{w}"));
        }
        Ok((tensors, meta))
    }

    /// The model in a file's tensors and metadata (`path` for messages).
    pub fn from_file_parts(
        tensors: &[FileTensor],
        meta: &BTreeMap<String, String>,
        path: &Path,
    ) -> Result<Self> {
        let spec: AeSpec = meta
            .get(AE_SPEC_KEY)
            .ok_or_else(|| {
                Error::format(
                    path,
                    "the model metadata lacks its network description; re-run the fit",
                )
            })
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| {
                    Error::format(
                        path,
                        format!("unreadable network description ({e}); re-run the fit"),
                    )
                })
            })?;
        let available = tensors
            .iter()
            .map(|t| t.data.len())
            .fold(0usize, usize::saturating_add);
        spec.check_against(available, path)?;
        let image_shape = crate::nmf::model::image_shape_of(meta);
        let mut model = Autoencoder::<T>::new(spec, image_shape, &mut Rng::new(0))
            .map_err(|e| Error::format(path, e.to_string()))?;
        model.load_tensors(tensors, "", path)?;
        Ok(model)
    }

    /// Overwrites every tensor from `tensors` (names prefixed by `prefix`), checking shapes.
    pub fn load_tensors(&mut self, tensors: &[FileTensor], prefix: &str, path: &Path) -> Result<()> {
        let names: Vec<String> = self.named_tensors().into_iter().map(|(n, _)| n).collect();
        let mut slots: Vec<&mut super::layers::Tensor<T>> = self
            .encoder
            .params
            .iter_mut()
            .chain(self.encoder.state.iter_mut())
            .chain(self.decoder.params.iter_mut())
            .collect();
        for (name, slot) in names.iter().zip(slots.iter_mut()) {
            let full = format!("{prefix}{name}");
            let t = crate::io::tensor_by_name(tensors, &full, path)?;
            read_into(t, &slot.shape, &mut slot.data, path)?;
        }
        Ok(())
    }
}

/// A file tensor of `shape` holding `data` in `T`'s dtype.
pub(crate) fn file_tensor<T: Real>(name: String, shape: &[usize], data: &[T]) -> Result<FileTensor> {
    let d = if T::NAME == "f32" {
        TensorData::F32(data.iter().map(|&v| v.to_f64() as f32).collect())
    } else {
        TensorData::F64(data.iter().map(|&v| v.to_f64()).collect())
    };
    FileTensor::new(name, shape.to_vec(), d)
}

/// Copies a file tensor into `dst` after checking its shape and finiteness.
pub(crate) fn read_into<T: Real>(t: &FileTensor, shape: &[usize], dst: &mut [T], path: &Path) -> Result<()> {
    if t.shape != shape {
        return Err(Error::format(
            path,
            format!(
                "tensor '{}' has shape {:?}, the network needs {:?}; the file does not belong to this model",
                t.name, t.shape, shape
            ),
        ));
    }
    let values: Vec<f64> = match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F64(v) => v.clone(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!(
                "tensor '{}' holds a non-finite value at {i}; the file is damaged, re-run the fit",
                t.name
            ),
        ));
    }
    for (d, v) in dst.iter_mut().zip(values) {
        *d = T::from_f64(v);
    }
    Ok(())
}

impl<T: Real> PartModel<T> for Autoencoder<T> {
    fn kind(&self) -> &str {
        self.spec.architecture.kind()
    }

    fn atoms(&self) -> MatRef<'_, T> {
        MatRef::from_column_major_slice(self.decoder_weights(), self.spec.n_features, self.spec.k).transpose()
    }

    /// A forward pass of the encoder in inference mode (batch normalization with its running
    /// statistics), `ENCODE_CHUNK` samples at a time.
    fn encode(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        let (n, m, k) = (x.nrows(), self.spec.n_features, self.spec.k);
        crate::protocol::check_encode_input(x, m)?;
        let par = linalg::par(threads);
        linalg::with_threads(threads, || {
            let mut codes = Mat::<T>::zeros(n, k);
            let mut cache = Cache::default();
            let mut buf = Vec::new();
            for start in (0..n).step_by(ENCODE_CHUNK) {
                let b = ENCODE_CHUNK.min(n - start);
                buf.clear();
                for i in start..start + b {
                    buf.extend((0..m).map(|j| x[(i, j)]));
                }
                let h = self.encode_batch(&buf, b, &mut cache, par);
                for (c, col) in h.chunks(k).enumerate() {
                    for (j, &v) in col.iter().enumerate() {
                        codes[(start + c, j)] = v;
                    }
                }
            }
            codes
        })
    }

    /// `σ_d(codes · atoms + b_d)`: the bias image is added as learned (never replaced).
    fn decode_with_atoms(&self, atoms: MatRef<'_, T>, codes: MatRef<'_, T>) -> Result<Mat<T>> {
        let (k, m) = (self.spec.k, self.spec.n_features);
        check_decode_shapes(k, m, atoms, codes)?;
        let mut out = Mat::<T>::zeros(codes.nrows(), m);
        linalg::matmul(out.as_mut(), Accum::Replace, codes, atoms, T::one(), Par::Seq);
        let bias = &self.decoder.params[1].data;
        let act = self.spec.decoder_activation;
        for j in 0..m {
            let col = out.col_as_slice_mut(j);
            col.iter_mut().for_each(|v| *v = *v + bias[j]);
            act.forward(col);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shallow_ae_has_157684_parameters() {
        let spec = AeSpec::new(
            Architecture::Shallow,
            100,
            784,
            Some((28, 28)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let ae = Autoencoder::<f32>::new(spec, Some((28, 28)), &mut Rng::new(0)).unwrap();
        assert_eq!(ae.n_params(), 157_684);
    }

    #[test]
    fn asymmetric_encoder_has_the_published_shapes() {
        let spec = AeSpec::new(
            Architecture::Asymmetric,
            100,
            784,
            Some((28, 28)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let ae = Autoencoder::<f32>::new(spec, Some((28, 28)), &mut Rng::new(0)).unwrap();
        let outs: Vec<String> = ae.encoder.layers.iter().map(|l| l.output.to_string()).collect();
        assert_eq!(
            outs,
            [
                "14×14×64",
                "14×14×64",
                "7×7×128",
                "7×7×128",
                "7×7×128",
                "6272",
                "1024",
                "1024",
                "1024",
                "100",
                "100"
            ]
        );
        // Without an image shape the convolutional encoder is refused with a hint.
        let e = AeSpec::new(Architecture::Asymmetric, 10, 50, None, Act::Sigmoid)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image data"), "{e}");
    }

    #[test]
    fn model_file_round_trip_and_protocol() {
        let spec = AeSpec::new(
            Architecture::Asymmetric,
            5,
            64,
            Some((8, 8)),
            Act::LeakyRelu { slope: 0.1 },
        )
        .unwrap();
        let mut ae = Autoencoder::<f32>::new(spec, Some((8, 8)), &mut Rng::new(1)).unwrap();
        // Non-default batch-norm statistics must survive the round trip.
        ae.encoder.state[0].data.iter_mut().for_each(|v| *v = 0.25);
        ae.project_decoder();
        let x = Mat::<f32>::from_fn(7, 64, |i, j| ((i * 13 + j * 7) % 11) as f32 / 10.0);
        let codes = ae.encode(x.as_ref(), 1).unwrap();
        assert!(codes.col_iter().all(|c| c.iter().all(|v| *v > 0.0 && *v < 1.0)));
        let (t, meta) = ae.to_tensors().unwrap();
        let dir = std::env::temp_dir().join(format!("partlearn-ae-model-{}", std::process::id()));
        let path = dir.join("model.safetensors");
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let loaded = crate::protocol::load_model::<f32>(&path).unwrap();
        assert_eq!(loaded.model.kind(), "asym-ae");
        assert_eq!(loaded.image_shape, Some((8, 8)));
        assert_eq!(loaded.model.encode(x.as_ref(), 2).unwrap(), codes);
        assert_eq!(loaded.model.atoms(), ae.atoms());
        // decode = σ_d(codes·atoms + b).
        let r = loaded.model.decode(codes.as_ref()).unwrap();
        let lin = &codes * ae.atoms();
        let b = &ae.decoder.params[1].data;
        for i in 0..7 {
            for j in 0..64 {
                let z = lin[(i, j)] + b[j];
                let expect = if z > 0.0 { z } else { 0.1 * z };
                assert!((r[(i, j)] - expect).abs() < 1e-5);
            }
        }
        // A tensor of the wrong shape is refused.
        let mut bad = t.clone();
        let i = bad.iter().position(|t| t.name == "atoms").unwrap();
        bad[i] = file_tensor::<f32>("atoms".into(), &[64, 5], &vec![0.0; 320]).unwrap();
        crate::io::write_safetensors(&path, &bad, &meta).unwrap();
        let e = crate::protocol::load_model::<f32>(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("shape"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn forged_network_descriptions_are_refused_before_allocating() {
        let spec = AeSpec::new(Architecture::Asymmetric, 5, 64, Some((8, 8)), Act::Sigmoid).unwrap();
        let ae = Autoencoder::<f32>::new(spec.clone(), Some((8, 8)), &mut Rng::new(0)).unwrap();
        assert_eq!(spec.n_values(), Some(ae.n_params() + 2 * 128 + 2 * 1024));
        let (tensors, meta) = ae.to_tensors().unwrap();
        let path = Path::new("forged.safetensors");
        let load = |spec: serde_json::Value| {
            let mut meta = meta.clone();
            meta.insert(AE_SPEC_KEY.into(), spec.to_string());
            Autoencoder::<f32>::from_file_parts(&tensors, &meta, path)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let mut forged = serde_json::to_value(&spec).unwrap();
        // A dense layer of 10^12 outputs (it aborted in the allocator).
        forged["encoder"][6] = serde_json::json!({"layer": "dense", "outputs": 1_000_000_000_000u64});
        let e = load(forged);
        assert!(e.contains("forged") && e.contains("declares"), "{e}");
        // An input of 2^21 × 2^21 × 2^21 (capacity overflow).
        let mut forged = serde_json::to_value(&spec).unwrap();
        forged["input"] = serde_json::json!({"h": 1u64 << 21, "w": 1u64 << 21, "c": 1u64 << 21});
        let e = load(forged);
        assert!(e.contains("forged") && e.contains("input"), "{e}");
        let mut forged = serde_json::to_value(&spec).unwrap();
        forged["n_features"] = serde_json::json!(1u64 << 62);
        forged["input"] = serde_json::json!({"h": 1u64 << 31, "w": 1u64 << 31, "c": 1});
        let e = load(forged);
        assert!(e.contains("forged") && e.contains("overflow"), "{e}");
    }
}
