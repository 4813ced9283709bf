//! The safetensors container read and written one tensor, and within a tensor one chunk, at a
//! time: the memory a load or an export needs on top of the model is about one tensor, never
//! the file.
//!
//! Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
//! `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets into the data that follows;
//! `"__metadata__"` holds string pairs), padded with spaces to a multiple of 8, then the data.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use safetensors::Dtype;
use safetensors::tensor::TensorInfo;
use serde_json::{Map, Value};

use super::HfError;

/// Elements converted per chunk (4 MiB of f32).
pub(super) const CHUNK_ELEMENTS: usize = 1 << 20;
/// Headers larger than this are refused (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    /// Absolute offset of the data in the file.
    begin: u64,
}

/// An open safetensors file: its header parsed, the data read on demand.
pub(crate) struct SafetensorsFile {
    path: PathBuf,
    file: File,
    entries: BTreeMap<String, Entry>,
}

fn bad(path: &Path, reason: impl Into<String>) -> HfError {
    HfError::BadSafetensors {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io(path: &Path, source: std::io::Error) -> HfError {
    HfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes of `numel` elements of `dtype`; `None` when that is not a whole number of bytes or
/// overflows.
fn byte_size(dtype: Dtype, numel: usize) -> Option<usize> {
    let bits = numel.checked_mul(dtype.bitsize())?;
    bits.is_multiple_of(8).then_some(bits / 8)
}

impl SafetensorsFile {
    /// Opens `path` and reads its header; checks every tensor's range lies in the file and
    /// matches its shape and dtype.
    pub(crate) fn open(path: &Path) -> Result<Self, HfError> {
        let mut file = File::open(path).map_err(|e| io(path, e))?;
        let file_len = file.metadata().map_err(|e| io(path, e))?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|_| bad(path, "shorter than its 8-byte header length"))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER || 8 + header_len > file_len {
            return Err(bad(
                path,
                format!("header length {header_len} does not fit a {file_len}-byte file"),
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| io(path, e))?;
        let header: BTreeMap<String, Value> = serde_json::from_slice(&header)
            .map_err(|e| bad(path, format!("header is not a JSON object ({e})")))?;
        let data_start = 8 + header_len;
        let mut entries = BTreeMap::new();
        for (name, value) in header {
            if name == "__metadata__" {
                continue;
            }
            let info: TensorInfo = serde_json::from_value(value)
                .map_err(|e| bad(path, format!("tensor `{name}` has a malformed entry ({e})")))?;
            let (begin, end) = info.data_offsets;
            let (begin, end) = (begin as u64 + data_start, end as u64 + data_start);
            let expected = info
                .shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .and_then(|numel| byte_size(info.dtype, numel));
            if end < begin || end > file_len || expected != Some((end - begin) as usize) {
                return Err(bad(
                    path,
                    format!(
                        "tensor `{name}` ({:?} {:?}) has data offsets that do not match its \
                         size or the file's",
                        info.dtype, info.shape
                    ),
                ));
            }
            entries.insert(
                name,
                Entry {
                    dtype: info.dtype,
                    shape: info.shape,
                    begin,
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Tensor names, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The entry of `name`, if the file holds it.
    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Tensor `name` as f32 values (F32, BF16 or F16 in the file), reading a chunk at a time.
    /// With `transpose`, a 2-D `[rows, cols]` tensor comes back as `[cols, rows]`.
    /// `None` for another dtype.
    pub(crate) fn read_f32(
        &mut self,
        name: &str,
        transpose: bool,
    ) -> Result<Option<Vec<f32>>, HfError> {
        let Some(entry) = self.entries.get(name).cloned() else {
            return Err(HfError::MissingTensor {
                tensor: name.to_owned(),
                path: self.path.clone(),
            });
        };
        let size = match entry.dtype {
            Dtype::F32 => 4,
            Dtype::BF16 | Dtype::F16 => 2,
            _ => return Ok(None),
        };
        let numel: usize = entry.shape.iter().product();
        let (rows, cols) = match entry.shape.as_slice() {
            [rows, cols] if transpose => (*rows, *cols),
            _ => (1, numel),
        };
        let mut out = vec![0f32; numel];
        let path = self.path.clone();
        self.file
            .seek(SeekFrom::Start(entry.begin))
            .map_err(|e| io(&path, e))?;
        // Whole file rows per chunk when transposing, so each element's row is known.
        let step = if transpose {
            (CHUNK_ELEMENTS / cols.max(1)).max(1) * cols
        } else {
            CHUNK_ELEMENTS
        };
        let mut buffer = vec![0u8; step.min(numel.max(1)) * size];
        let mut done = 0;
        while done < numel {
            let n = step.min(numel - done);
            let bytes = &mut buffer[..n * size];
            self.file.read_exact(bytes).map_err(|e| io(&path, e))?;
            let values = bytes.chunks_exact(size).map(|b| match entry.dtype {
                Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                Dtype::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                _ => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            });
            if transpose {
                for (i, v) in values.enumerate() {
                    let (r, c) = ((done + i) / cols, (done + i) % cols);
                    out[c * rows + r] = v;
                }
            } else {
                for (slot, v) in out[done..done + n].iter_mut().zip(values) {
                    *slot = v;
                }
            }
            done += n;
        }
        Ok(Some(out))
    }
}

/// A tensor to write: its name, dtype and shape in the file, and a producer of its bytes in
/// chunks (called once, in order, with a sink for each chunk).
pub(super) struct OutTensor {
    pub(super) name: String,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) byte_len: usize,
    pub(super) write: super::export_weights::WriteFn,
}

/// Writes `tensors` (in order) and `metadata` as a safetensors file at `path`, one chunk at a
/// time.
pub(super) fn write_file(
    path: &Path,
    tensors: &[OutTensor],
    metadata: &HashMap<String, String>,
) -> Result<(), HfError> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        let meta: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut offset = 0usize;
    for t in tensors {
        let info = TensorInfo {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data_offsets: (offset, offset + t.byte_len),
        };
        let info = serde_json::to_value(info).map_err(|source| HfError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        header.insert(t.name.clone(), info);
        offset += t.byte_len;
    }
    let mut text = serde_json::to_vec(&Value::Object(header)).map_err(|source| HfError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    text.resize(text.len().next_multiple_of(8), b' ');
    let file = File::create(path).map_err(|e| io(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let failed = |e| io(path, e);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(failed)?;
    out.write_all(&text).map_err(failed)?;
    for t in tensors {
        let mut written = 0usize;
        (t.write)(&mut |chunk: &[u8]| {
            written += chunk.len();
            out.write_all(chunk)
        })
        .map_err(failed)?;
        if written != t.byte_len {
            return Err(HfError::BadSafetensors {
                path: path.to_path_buf(),
                reason: format!(
                    "tensor `{}` produced {written} bytes, {} expected",
                    t.name, t.byte_len
                ),
            });
        }
    }
    out.flush().map_err(failed)?;
    out.get_ref().sync_all().map_err(failed)
}
