//! `pytorch_model.bin` (PyTorch's ZIP container, or the legacy pickle stream) read with
//! burn's `pytorch-reader`, which parses the pickle's data structures without running any of
//! its code: tensor names, dtypes and shapes at open, each tensor's bytes when asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use pytorch_reader::{DType, PytorchReader, Tensor as PtTensor};

use super::HfError;

/// An open `pytorch_model.bin`.
pub(crate) struct PytorchFile {
    path: PathBuf,
    tensors: BTreeMap<String, PtTensor>,
}

impl PytorchFile {
    /// Opens `path` and parses its pickle (no tensor data is read).
    pub(crate) fn open(path: &Path) -> Result<Self, HfError> {
        let reader = PytorchReader::new(path).map_err(|e| HfError::BadPytorch {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors: reader.into_tensors().into_iter().collect(),
        })
    }

    /// Tensor names, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Shape and dtype (as a name) of `name`, if the file holds it.
    pub(crate) fn entry(&self, name: &str) -> Option<(Vec<usize>, String)> {
        self.tensors
            .get(name)
            .map(|t| (t.shape().to_vec(), format!("{:?}", t.dtype())))
    }

    /// Tensor `name` as f32 values (F32, BF16 or F16 in the file); with `transpose`, a 2-D
    /// `[rows, cols]` tensor comes back as `[cols, rows]`. `None` for another dtype.
    pub(crate) fn read_f32(
        &self,
        name: &str,
        transpose: bool,
    ) -> Result<Option<Vec<f32>>, HfError> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| HfError::MissingTensor {
                tensor: name.to_owned(),
                path: self.path.clone(),
            })?;
        let size = match tensor.dtype() {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
            _ => return Ok(None),
        };
        let bytes = tensor.read().map_err(|source| HfError::Io {
            path: self.path.clone(),
            source,
        })?;
        // The reader returns native-endian bytes; these machines are little-endian.
        let values: Vec<f32> = bytes
            .chunks_exact(size)
            .map(|b| match tensor.dtype() {
                DType::F32 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                DType::BF16 => bf16::from_ne_bytes([b[0], b[1]]).to_f32(),
                _ => f16::from_ne_bytes([b[0], b[1]]).to_f32(),
            })
            .collect();
        Ok(Some(match tensor.shape() {
            [rows, cols] if transpose => {
                let (rows, cols) = (*rows, *cols);
                let mut out = vec![0f32; values.len()];
                for r in 0..rows {
                    for c in 0..cols {
                        out[c * rows + r] = values[r * cols + c];
                    }
                }
                out
            }
            _ => values,
        }))
    }
}
