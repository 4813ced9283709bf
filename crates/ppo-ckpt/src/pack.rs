//! Module weights and named tensors as burnpack files, written and read one tensor at a time.
//!
//! burn's `Module::save_file` first copies every parameter into one in-memory record; for a
//! model of several GB that copy is what runs a machine out of memory at its first save. Here
//! the writer is handed *deferred* tensors: each parameter's bytes are produced when the
//! writer reaches it and dropped once written, so a save needs at most one tensor's bytes on
//! top of the model. Reading maps the file lazily and replaces parameters one by one. The
//! files are ordinary burnpack containers (module paths and parameter ids kept), readable by
//! `Module::load_file` and by checkpoints written before.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use burn_pack::{Reader, Scalar, Writer};

use crate::CkptError;

fn record_error(action: &'static str, path: &Path, message: impl ToString) -> CkptError {
    CkptError::Record {
        action,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Elements copied out of a tensor at a time (4 MiB of f32).
const CHUNK_ELEMENTS: usize = 1 << 20;

/// The little-endian bytes of `tensor`, copied out a chunk at a time into one buffer: about
/// one tensor of memory. (`into_data` on a shared tensor copies it, then copies it again to
/// align the buffer: twice the tensor at once.)
fn tensor_bytes<const D: usize>(tensor: &Tensor<D>) -> Bytes {
    let numel = tensor.shape().num_elements();
    let flat: Tensor<1> = tensor.clone().reshape([numel]);
    let mut out = Vec::with_capacity(numel * tensor.dtype().size());
    for start in (0..numel).step_by(CHUNK_ELEMENTS) {
        let end = (start + CHUNK_ELEMENTS).min(numel);
        out.extend_from_slice(flat.clone().slice(start..end).into_data().as_bytes());
    }
    Bytes::from_elems(out)
}

/// A tensor whose bytes are read from `tensor` only when the writer asks for them.
fn deferred<const D: usize>(
    name: String,
    param_id: Option<u64>,
    tensor: Tensor<D>,
) -> burn_pack::Tensor {
    let dtype = tensor.dtype();
    let shape = tensor.shape();
    let byte_len = shape.num_elements() * dtype.size();
    burn_pack::Tensor::deferred(name, dtype, shape, param_id, byte_len, move || {
        Ok(tensor_bytes(&tensor))
    })
}

fn write_pack(
    tensors: Vec<burn_pack::Tensor>,
    scalars: &BTreeMap<String, u64>,
    path: &Path,
) -> Result<(), CkptError> {
    let mut writer = Writer::new(tensors).auto_extension(false);
    for (key, value) in scalars {
        writer = writer.with_scalar(key, Scalar::from(*value));
    }
    // The checkpoint directory is made atomic as a whole (`write_atomic`), so the file is
    // written in place: no scratch copy, and the directory fsync covers it.
    writer
        .write_to_file_in_place(path)
        .map_err(|e| record_error("save", path, e))
}

/// The float parameters of a module `keep` accepts, as deferred tensors under their dotted
/// module paths.
struct Collect<'a> {
    path: Vec<String>,
    tensors: Vec<burn_pack::Tensor>,
    keep: &'a dyn Fn(&str) -> bool,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        if !(self.keep)(&name) {
            return;
        }
        let tensor = param.transform_for_save().val();
        self.tensors
            .push(deferred(name, Some(param.id.val()), tensor));
    }
}

/// Saves `module`'s weights as a burnpack file at `path`, one parameter at a time: the memory
/// it needs beyond the model is about the largest parameter.
pub fn save_module<M: Module>(module: &M, path: &Path) -> Result<(), CkptError> {
    save_module_where(module, path, &|_| true)
}

/// [`save_module`] for the parameters whose dotted path `keep` accepts (the trained part of
/// a module whose other parameters are rebuilt from elsewhere, e.g. LoRA adapters).
pub fn save_module_where<M: Module>(
    module: &M,
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(), CkptError> {
    let mut collect = Collect {
        path: Vec::new(),
        tensors: Vec::new(),
        keep,
    };
    module.visit(&mut collect);
    write_pack(collect.tensors, &BTreeMap::new(), path)
}

/// Loads a file written by [`save_module_where`] into `module`: the parameters whose path
/// `expected` accepts must all be in the file (an error names the first one missing); the
/// others keep their values.
pub fn load_module_part<M: Module>(
    module: M,
    path: &Path,
    expected: &dyn Fn(&str) -> bool,
) -> Result<M, CkptError> {
    let reader = Reader::from_file(path).map_err(|e| record_error("load", path, e))?;
    let names: std::collections::HashSet<String> = reader
        .tensor_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    drop(reader);
    let mut wanted = Paths::default();
    module.visit(&mut wanted);
    if let Some(missing) = wanted
        .0
        .iter()
        .find(|p| expected(p.as_str()) && !names.contains(p.as_str()))
    {
        return Err(record_error(
            "load",
            path,
            format!("tensor `{missing}` is missing (a checkpoint of another model or settings?)"),
        ));
    }
    let record = burn::store::ModuleRecord::load(path)
        .map_err(|e| record_error("load", path, e))?
        .allow_partial(true);
    module
        .try_load_record(record)
        .map_err(|e| record_error("load", path, e))
}

/// The dotted paths of a module's float parameters.
#[derive(Default)]
struct Paths(Vec<String>, Vec<String>);

impl ModuleVisitor for Paths {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.1.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.1.pop();
    }

    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        self.0.push(self.1.join("."));
    }
}

/// Loads weights saved by [`save_module`] into `module` (same shape), keeping the file's
/// parameter ids. Parameters are read from disk and replaced one by one; pass a module no one
/// else holds and the old values are freed as the new ones arrive.
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, CkptError> {
    let record =
        burn::store::ModuleRecord::load(path).map_err(|e| record_error("load", path, e))?;
    module
        .try_load_record(record)
        .map_err(|e| record_error("load", path, e))
}

/// Writes named flat tensors and integer scalars (an optimiser state, say) as a burnpack file,
/// one tensor at a time. Names must be unique.
pub fn save_tensors(
    path: &Path,
    tensors: Vec<(String, Tensor<1>)>,
    scalars: &BTreeMap<String, u64>,
) -> Result<(), CkptError> {
    let tensors = tensors
        .into_iter()
        .map(|(name, tensor)| deferred(name, None, tensor))
        .collect();
    write_pack(tensors, scalars, path)
}

/// Named flat tensors and scalars read back by [`load_tensors`].
pub struct TensorPack {
    /// The tensors, in name order, on the requested device.
    pub tensors: Vec<(String, Tensor<1>)>,
    /// The integer scalars.
    pub scalars: BTreeMap<String, u64>,
}

/// Reads a file written by [`save_tensors`] onto `device`, one tensor at a time.
pub fn load_tensors(path: &Path, device: &Device) -> Result<TensorPack, CkptError> {
    let err = |e: burn_pack::Error| record_error("load", path, e);
    let reader = Reader::from_file(path).map_err(err)?;
    let mut scalars = BTreeMap::new();
    for (key, value) in reader.scalars() {
        let value = u64::try_from(*value).map_err(|_| {
            record_error(
                "load",
                path,
                format!("scalar `{key}` is not an unsigned integer"),
            )
        })?;
        scalars.insert(key.clone(), value);
    }
    let mut tensors = Vec::new();
    for tensor in reader.into_tensors().map_err(err)? {
        let (name, dtype, shape, _, bytes) = tensor.into_parts().map_err(err)?;
        if shape.num_dims() != 1 {
            return Err(record_error(
                "load",
                path,
                format!("`{name}` has shape {shape:?}, expected a flat tensor"),
            ));
        }
        let data = TensorData::from_bytes(bytes, shape, dtype);
        tensors.push((name, Tensor::from_data(data, device)));
    }
    Ok(TensorPack { tensors, scalars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Module, Debug)]
    struct Small {
        weight: Param<Tensor<2>>,
        bias: Param<Tensor<1>>,
    }

    fn small(w: Vec<f32>, b: Vec<f32>) -> Small {
        let device = Device::flex();
        Small {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [2, 2]), &device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(b, [2]), &device)),
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn streamed_module_file_is_burns_format_with_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bpk");
        let m = small(vec![1.5, -2.25, 1e-7, 3.0], vec![0.5, f32::MIN_POSITIVE]);
        save_module(&m, &path).unwrap();
        // burn's own reader takes it, parameter ids included
        let by_burn = small(vec![0.0; 4], vec![0.0; 2]).load_file(&path);
        assert_eq!(by_burn.weight.id, m.weight.id);
        assert_eq!(values(by_burn.weight.val()), values(m.weight.val()));
        // and a file burn wrote loads here
        let burns = dir.path().join("b.bpk");
        m.clone().save_file(&burns).unwrap();
        let ours = load_module(small(vec![0.0; 4], vec![0.0; 2]), &burns).unwrap();
        assert_eq!(values(ours.bias.val()), values(m.bias.val()));
        assert_eq!(ours.bias.id, m.bias.id);
        // a module of another shape is refused, naming the file
        #[derive(Module, Debug)]
        struct Other {
            weight: Param<Tensor<2>>,
        }
        let other = Other {
            weight: Param::from_tensor(Tensor::zeros([3, 2], &Device::flex())),
        };
        let err = load_module(other, &path).unwrap_err().to_string();
        assert!(err.contains("m.bpk"), "{err}");
    }

    #[test]
    fn named_tensors_round_trip_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optim.bpk");
        let device = Device::flex();
        let a = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -0.0, 7e-39], [3]), &device);
        let b = Tensor::<1>::from_data(TensorData::new(vec![f32::MAX], [1]), &device);
        let scalars = BTreeMap::from([("a".to_owned(), 3u64), ("b".to_owned(), 1 << 40)]);
        save_tensors(
            &path,
            vec![("b.x".into(), b), ("a.x".into(), a.clone())],
            &scalars,
        )
        .unwrap();
        let pack = load_tensors(&path, &device).unwrap();
        assert_eq!(pack.scalars, scalars);
        let names: Vec<&str> = pack.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.x", "b.x"]);
        let bits = |t: Tensor<1>| -> Vec<u32> { values(t).iter().map(|v| v.to_bits()).collect() };
        assert_eq!(bits(pack.tensors[0].1.clone()), bits(a));
        let err = load_tensors(&dir.path().join("missing.bpk"), &device)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.bpk"), "{err}");
    }

    #[derive(Module, Debug)]
    struct Two {
        frozen: Param<Tensor<1>>,
        trained: Param<Tensor<1>>,
    }

    fn two(frozen: f32, trained: f32) -> Two {
        let device = Device::flex();
        let t = |v: f32| {
            Param::from_tensor(Tensor::from_data(TensorData::new(vec![v; 3], [3]), &device))
        };
        Two {
            frozen: t(frozen),
            trained: t(trained),
        }
    }

    fn first(p: &Param<Tensor<1>>) -> f32 {
        values(p.val())[0]
    }

    #[test]
    fn a_part_is_saved_alone_and_loaded_over_the_rest_and_a_missing_part_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part.bpk");
        save_module_where(&two(1.0, 2.0), &path, &|p| p == "trained").unwrap();
        let names: Vec<String> = Reader::from_file(&path)
            .unwrap()
            .tensor_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(names, ["trained"]);
        let loaded = load_module_part(two(5.0, 6.0), &path, &|p| p == "trained").unwrap();
        assert_eq!((first(&loaded.frozen), first(&loaded.trained)), (5.0, 2.0));
        let err = load_module_part(two(5.0, 6.0), &path, &|_| true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`frozen` is missing"), "{err}");
    }
}
