//! Safetensors weights (one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`), or one `pytorch_model.bin`, copied into a module whose
//! parameter paths are the Hugging Face tensor names (a field `self_` stands for
//! transformers' `self`, which Rust cannot name a field).
//!
//! The module is walked once per file with a [`ModuleMapper`] that tracks the parameter path;
//! each parameter found in the file is replaced, converted to f32 and, for Linear weights,
//! transposed from PyTorch's `[out, in]` to our `[in, out]`. Files are read one tensor at a
//! time (a few MiB at a time within a tensor), never whole: a load needs about one tensor's
//! memory beyond the model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use super::HfError;
use super::pytorch_io::PytorchFile;
use super::safetensors_io::SafetensorsFile;

const SINGLE_FILE: &str = "model.safetensors";
const INDEX_FILE: &str = "model.safetensors.index.json";
const PYTORCH_FILE: &str = "pytorch_model.bin";

/// One weights file, of either format.
enum TensorFile {
    Safetensors(SafetensorsFile),
    Pytorch(PytorchFile),
}

impl TensorFile {
    fn open(path: &Path) -> Result<Self, HfError> {
        if path.extension().is_some_and(|e| e == "bin") {
            Ok(Self::Pytorch(PytorchFile::open(path)?))
        } else {
            Ok(Self::Safetensors(SafetensorsFile::open(path)?))
        }
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Self::Safetensors(f) => f.names().collect(),
            Self::Pytorch(f) => f.names().collect(),
        }
    }

    /// Shape and dtype name of `name`, if the file holds it.
    fn entry(&self, name: &str) -> Option<(Vec<usize>, String)> {
        match self {
            Self::Safetensors(f) => f
                .entry(name)
                .map(|e| (e.shape.clone(), format!("{:?}", e.dtype))),
            Self::Pytorch(f) => f.entry(name),
        }
    }

    fn read_f32(&mut self, name: &str, transpose: bool) -> Result<Option<Vec<f32>>, HfError> {
        match self {
            Self::Safetensors(f) => f.read_f32(name, transpose),
            Self::Pytorch(f) => f.read_f32(name, transpose),
        }
    }
}

/// The Hugging Face name of a module path segment: `self_` is transformers' `self`.
fn hf_segment(name: &str) -> &str {
    if name == "self_" { "self" } else { name }
}

/// Whether a 2-D tensor is stored as burn stores it (embedding tables), not transposed
/// like a Linear weight.
fn is_embedding(name: &str) -> bool {
    name.ends_with("embed_tokens.weight") || name.ends_with("embeddings.weight")
}

/// Which file holds each tensor.
pub(crate) struct WeightFiles {
    /// The shard files in the order they are read.
    files: Vec<PathBuf>,
    /// Tensor name → file, when sharded; `None` when one file holds everything.
    weight_map: Option<(PathBuf, BTreeMap<String, PathBuf>)>,
}

impl WeightFiles {
    /// Finds the weights in `dir`: `model.safetensors`, else the sharded index, else
    /// `pytorch_model.bin`.
    pub(crate) fn locate(dir: &Path) -> Result<Self, HfError> {
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Ok(Self {
                files: vec![single],
                weight_map: None,
            });
        }
        let index_path = dir.join(INDEX_FILE);
        let pytorch = dir.join(PYTORCH_FILE);
        if !index_path.is_file() && pytorch.is_file() {
            return Ok(Self {
                files: vec![pytorch],
                weight_map: None,
            });
        }
        if !index_path.is_file() {
            return Err(HfError::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        let text = read_to_string(&index_path)?;
        let index: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| HfError::Json {
                path: index_path.clone(),
                source,
            })?;
        let Some(entries) = index.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(HfError::Config {
                path: index_path,
                key: "weight_map".into(),
                message: "missing or not an object".into(),
            });
        };
        let mut map = BTreeMap::new();
        let mut files = Vec::new();
        for (tensor, file) in entries {
            let Some(file) = file.as_str() else {
                return Err(HfError::Config {
                    path: index_path,
                    key: format!("weight_map.{tensor}"),
                    message: format!("expected a file name, found {file}"),
                });
            };
            let file = dir.join(file);
            if !files.contains(&file) {
                files.push(file.clone());
            }
            map.insert(tensor.clone(), file);
        }
        files.sort();
        Ok(Self {
            files,
            weight_map: Some((index_path, map)),
        })
    }

    /// The file that should hold `tensor`, or the error naming the index that lacks it.
    fn file_of(&self, tensor: &str) -> Result<&Path, HfError> {
        match &self.weight_map {
            None => Ok(&self.files[0]),
            Some((index_path, map)) => {
                map.get(tensor)
                    .map(PathBuf::as_path)
                    .ok_or_else(|| HfError::MissingTensor {
                        tensor: tensor.to_owned(),
                        path: index_path.clone(),
                    })
            }
        }
    }
}

fn read_to_string(path: &Path) -> Result<String, HfError> {
    std::fs::read_to_string(path).map_err(|source| HfError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Copies every parameter of `module` from the files, by path. Tensors in the files that
/// are not parameters are an error unless `ignored(name)` says otherwise.
pub(crate) fn load_into<M: Module>(
    module: M,
    files: &WeightFiles,
    ignored: impl Fn(&str) -> bool,
) -> Result<M, HfError> {
    let mut names = ParamNames::default();
    module.visit(&mut names);
    // Fail on a tensor absent from the index before reading any shard.
    for name in &names.names {
        files.file_of(name)?;
    }
    let wanted: BTreeSet<&str> = names.names.iter().map(String::as_str).collect();
    let mut module = module;
    for file in &files.files {
        let mut tensors = TensorFile::open(file)?;
        if let Some(extra) = tensors
            .names()
            .into_iter()
            .find(|name| !wanted.contains(name) && !ignored(name))
        {
            return Err(HfError::UnexpectedTensor {
                tensor: extra.to_owned(),
                path: file.clone(),
            });
        }
        let mut loader = Loader {
            files,
            file,
            tensors: &mut tensors,
            path: Vec::new(),
            error: None,
        };
        module = module.map(&mut loader);
        if let Some(error) = loader.error {
            return Err(error);
        }
    }
    Ok(module)
}

/// Collects the dotted path of every float parameter.
#[derive(Default)]
struct ParamNames {
    path: Vec<String>,
    names: Vec<String>,
}

impl ModuleVisitor for ParamNames {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(hf_segment(name).to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        self.names.push(self.path.join("."));
    }
}

/// Replaces the parameters held by one file; records the first error.
struct Loader<'a> {
    files: &'a WeightFiles,
    file: &'a Path,
    tensors: &'a mut TensorFile,
    path: Vec<String>,
    error: Option<HfError>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(hf_segment(name).to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.join(".");
        match self.files.file_of(&name) {
            Ok(file) if file == self.file => {}
            Ok(_) => return param,
            Err(error) => {
                self.error = Some(error);
                return param;
            }
        }
        let shape: [usize; D] = param.val().dims();
        match self.read(&name, shape) {
            Ok(data) => param.map(|old| {
                let tensor = Tensor::from_data(data, &old.device());
                if old.is_require_grad() {
                    tensor.require_grad()
                } else {
                    tensor
                }
            }),
            Err(error) => {
                self.error = Some(error);
                param
            }
        }
    }
}

impl Loader<'_> {
    /// Tensor `name` as f32 data of our `shape` (Linear weights transposed).
    fn read<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<TensorData, HfError> {
        let (found, dtype) = self
            .tensors
            .entry(name)
            .ok_or_else(|| HfError::MissingTensor {
                tensor: name.to_owned(),
                path: self.file.to_path_buf(),
            })?;
        // Linear weights are `[out, in]` in PyTorch, `[in, out]` here; embeddings agree.
        let transpose = D == 2 && !is_embedding(name);
        let mut expected = shape.to_vec();
        if transpose {
            expected.reverse();
        }
        if found != expected {
            return Err(HfError::ShapeMismatch {
                tensor: name.to_owned(),
                path: self.file.to_path_buf(),
                expected,
                found,
            });
        }
        let values =
            self.tensors
                .read_f32(name, transpose)?
                .ok_or_else(|| HfError::UnsupportedDtype {
                    tensor: name.to_owned(),
                    path: self.file.to_path_buf(),
                    dtype,
                })?;
        Ok(TensorData::new(values, shape))
    }
}
