//! A stack of NMF layers `X ≈ A⁽⁰⁾A⁽¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾` as one model of the protocol (issue: "the deep
//! models implement the model protocol through their first layer's atoms and the composed
//! codes"): the atoms are the first layer's `A⁽⁰⁾` (rows of `A⁽⁰⁾ᵀ`), the codes of a sample are
//! `A⁽¹⁾⋯A⁽ᴸ⁾s⁽ᴸ⁾` with `s⁽ᴸ⁾` from NNLS layer by layer (Neural NMF's forward pass, §4.3), and
//! decoding is linear. Used for Neural NMF; hierarchical and Deep NMF fit the same structure.

use std::collections::BTreeMap;
use std::path::Path;

use faer::{Mat, MatRef, Par};

use super::neural::NeuralNmf;
use crate::error::{Error, Result};
use crate::io::Tensor;
use crate::linalg;
use crate::nmf::model::{IMAGE_SHAPE_KEY, KIND_KEY};
use crate::protocol::{linear_decode, PartModel};
use crate::real::Real;

/// A fitted stack of layers.
#[derive(Clone, Debug)]
pub struct DeepModel<T: Real> {
    kind: String,
    net: NeuralNmf<T>,
    /// `A⁽⁰⁾ᵀ`, `k₀ × m`.
    atoms: Mat<T>,
}

impl<T: Real> DeepModel<T> {
    /// The model of a layer stack (`A⁽⁰⁾` is `m × k₀`); `kind` is e.g. `"neural-nmf"`.
    pub fn new(kind: &str, net: NeuralNmf<T>) -> Result<Self> {
        if net.a.is_empty() {
            return Err(Error::invalid(
                "layers",
                0,
                "a deep model needs at least one layer",
            ));
        }
        for w in net.a.windows(2) {
            if w[0].ncols() != w[1].nrows() {
                return Err(Error::invalid(
                    "layers",
                    "shapes",
                    "consecutive layers must chain (k_i rows after k_i columns)",
                ));
            }
        }
        let atoms = net.a[0].transpose().to_owned();
        Ok(DeepModel {
            kind: kind.to_string(),
            net,
            atoms,
        })
    }

    /// The layers and classifier.
    pub fn net(&self) -> &NeuralNmf<T> {
        &self.net
    }

    /// Ranks `k₀ > k₁ > …`.
    pub fn ranks(&self) -> Vec<usize> {
        self.net.a.iter().map(|a| a.ncols()).collect()
    }

    /// The codes of every layer, `S⁽ⁱ⁾ᵀ` (`n × k_i`, first layer first), of samples `x` (rows,
    /// `n × m`) by the forward pass through the NNLS layers (METHODS.md §4.3, "Transform"); the
    /// last are the top-layer codes the classifier sees. [`PartModel::encode`] composes them
    /// back to `n × k₀`.
    pub fn layer_codes(&self, x: MatRef<'_, T>, threads: usize) -> Result<Vec<Mat<T>>> {
        let s = self.forward(x, threads)?;
        Ok(s.into_iter().map(|m| m.transpose().to_owned()).collect())
    }

    /// `S⁽ⁱ⁾` (`k_i × n`) of every layer for samples `x` given as rows, checked.
    fn forward(&self, x: MatRef<'_, T>, threads: usize) -> Result<Vec<Mat<T>>> {
        crate::protocol::check_encode_input(x, self.atoms.ncols())?;
        let f = linalg::with_threads(threads, || {
            self.net.forward(x.transpose(), None, linalg::par(threads))
        })??;
        Ok(f.s)
    }

    /// Tensors (`atoms` `k₀ × m`, `layer.<i>` for `i ≥ 1`, `classifier` if any) and metadata.
    pub fn to_tensors(
        &self,
        image_shape: Option<(usize, usize)>,
    ) -> Result<(Vec<Tensor>, BTreeMap<String, String>)> {
        let mut t = vec![Tensor::from_mat("atoms", self.atoms.as_ref())];
        for (i, a) in self.net.a.iter().enumerate().skip(1) {
            t.push(Tensor::from_mat(format!("layer.{i}"), a.as_ref()));
        }
        if let Some(b) = &self.net.b {
            t.push(Tensor::from_mat("classifier", b.as_ref()));
        }
        let mut meta = BTreeMap::new();
        meta.insert(KIND_KEY.to_string(), self.kind.clone());
        meta.insert("partlearn.ranks".to_string(), format!("{:?}", self.ranks()));
        if let Some((h, w)) = image_shape {
            meta.insert(IMAGE_SHAPE_KEY.to_string(), format!("{h}x{w}"));
        }
        Ok((t, meta))
    }

    /// The model in a file's tensors and metadata.
    pub fn from_file_parts(tensors: &[Tensor], meta: &BTreeMap<String, String>, path: &Path) -> Result<Self> {
        let kind = meta.get(KIND_KEY).cloned().unwrap_or_default();
        let a0 = crate::io::tensor_by_name(tensors, "atoms", path)?
            .to_mat::<T>()?
            .transpose()
            .to_owned();
        let mut a = vec![a0];
        for i in 1.. {
            match tensors.iter().find(|t| t.name == format!("layer.{i}")) {
                Some(t) => a.push(t.to_mat::<T>()?),
                None => break,
            }
        }
        let b = tensors
            .iter()
            .find(|t| t.name == "classifier")
            .map(|t| t.to_mat::<T>())
            .transpose()?;
        if let Some(bad) = a
            .iter()
            .flat_map(|m| m.col_iter().flat_map(|c| c.iter().copied()))
            .find(|v| !(v.is_finite() && *v >= T::zero()))
        {
            return Err(Error::format(
                path,
                format!("a layer holds {bad}, layers must be finite and ≥ 0; re-run the fit"),
            ));
        }
        DeepModel::new(&kind, NeuralNmf { a, b }).map_err(|e| Error::format(path, e.to_string()))
    }
}

impl<T: Real> PartModel<T> for DeepModel<T> {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn atoms(&self) -> MatRef<'_, T> {
        self.atoms.as_ref()
    }

    /// Composed codes `(A⁽¹⁾⋯A⁽ᴸ⁾S⁽ᴸ⁾)ᵀ`, `n × k₀`.
    fn encode(&self, x: MatRef<'_, T>, threads: usize) -> Result<Mat<T>> {
        let s = self.forward(x, threads)?;
        let par = linalg::par(threads);
        linalg::with_threads(threads, || {
            let mut c = s[s.len() - 1].clone();
            for a in self.net.a[1..].iter().rev() {
                c = linalg::mul(a.as_ref(), c.as_ref(), par);
            }
            c.transpose().to_owned()
        })
    }

    fn decode_with_atoms(&self, atoms: MatRef<'_, T>, codes: MatRef<'_, T>) -> Result<Mat<T>> {
        linear_decode(self.atoms.nrows(), self.atoms.ncols(), atoms, codes, Par::Seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn file_round_trip_and_protocol() {
        let net = NeuralNmf::<f64>::init(12, &[5, 3], Some(2), &mut Rng::new(2));
        let m = DeepModel::new("neural-nmf", net.clone()).unwrap();
        let x = Mat::<f64>::from_fn(7, 12, |i, j| ((i * 5 + j * 3) % 7) as f64);
        let codes = m.encode(x.as_ref(), 1).unwrap();
        assert_eq!(codes.shape(), (7, 5));
        // decode(codes) = A⁽⁰⁾A⁽¹⁾S⁽¹⁾ = the stack's reconstruction.
        let f = net.forward(x.transpose(), None, Par::Seq).unwrap();
        let expect = (&net.a[0] * &net.a[1] * &f.s[1]).transpose().to_owned();
        let got = m.decode(codes.as_ref()).unwrap();
        assert!(linalg::frob_sq((&got - &expect).as_ref()) < 1e-20);
        let layers = m.layer_codes(x.as_ref(), 1).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0], f.s[0].transpose().to_owned());
        assert_eq!(layers[1], f.s[1].transpose().to_owned());
        let composed = &layers[1] * net.a[1].transpose();
        assert!(linalg::frob_sq((&composed - &codes).as_ref()) < 1e-20);
        assert!(m.layer_codes(x.subcols(0, 5), 1).is_err());
        let dir = std::env::temp_dir().join(format!("partlearn-deep-model-{}", std::process::id()));
        let path = dir.join("model.safetensors");
        let (t, meta) = m.to_tensors(None).unwrap();
        crate::io::write_safetensors(&path, &t, &meta).unwrap();
        let back = crate::protocol::load_model::<f64>(&path).unwrap();
        assert_eq!(back.model.kind(), "neural-nmf");
        assert_eq!(back.model.encode(x.as_ref(), 2).unwrap(), codes);
        let _ = std::fs::remove_dir_all(dir);
    }
}
