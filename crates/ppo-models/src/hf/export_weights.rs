//! The parameters of a module as safetensors entries: Hugging Face names, PyTorch's `[out, in]`
//! layout for Linear weights, F32 or BF16 bytes produced a chunk at a time while the file is
//! written (a few MiB beyond the model, whatever its size).

use burn::module::{ModuleVisitor, Param};
use burn::tensor::Tensor;

use super::export::{ExportDtype, safetensors_dtype};
use super::safetensors_io::{CHUNK_ELEMENTS, OutTensor};
use crate::to_f32_vec;

/// The file name of a parameter path, or `None` to leave the parameter out.
pub(super) type Rename = fn(&str) -> Option<String>;

/// Collects every float parameter under its Hugging Face name, in PyTorch's layout.
pub(super) struct ExportTensors {
    path: Vec<String>,
    /// The tensors in visiting order.
    pub(super) tensors: Vec<OutTensor>,
    dtype: ExportDtype,
    rename: Rename,
}

impl ExportTensors {
    /// Every parameter, named by its path (our paths are Hugging Face's names).
    pub(super) fn new(dtype: ExportDtype) -> Self {
        Self::renamed(dtype, |path| Some(path.to_owned()))
    }

    /// The parameters `rename` names, under those names.
    pub(super) fn renamed(dtype: ExportDtype, rename: Rename) -> Self {
        Self {
            path: Vec::new(),
            tensors: Vec::new(),
            dtype,
            rename,
        }
    }
}

impl ModuleVisitor for ExportTensors {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(name) = (self.rename)(&self.path.join(".")) else {
            return;
        };
        let tensor = param.val().detach();
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let dtype = self.dtype;
        let byte_len = numel * safetensors_dtype(dtype).bitsize() / 8;
        // Linear weights are `[in, out]` here, `[out, in]` in PyTorch; embeddings agree.
        let transpose = D == 2 && !name.ends_with("embed_tokens.weight");
        let (shape, write): (Vec<usize>, WriteFn) = if transpose {
            let (rows_in, cols_out) = (dims[0], dims[1]);
            let matrix: Tensor<2> = tensor.reshape([rows_in, cols_out]);
            // File rows are our columns: k of them at a time, transposed on the device.
            let k = (CHUNK_ELEMENTS / rows_in.max(1)).clamp(1, cols_out.max(1));
            let write: WriteFn = Box::new(move |sink| {
                for start in (0..cols_out).step_by(k) {
                    let end = (start + k).min(cols_out);
                    let chunk = matrix.clone().slice([0..rows_in, start..end]).transpose();
                    sink(&encode(&to_f32_vec(chunk), dtype))?;
                }
                Ok(())
            });
            (vec![cols_out, rows_in], write)
        } else {
            let flat: Tensor<1> = tensor.reshape([numel]);
            let write: WriteFn = Box::new(move |sink| {
                for start in (0..numel).step_by(CHUNK_ELEMENTS) {
                    let end = (start + CHUNK_ELEMENTS).min(numel);
                    sink(&encode(&to_f32_vec(flat.clone().slice(start..end)), dtype))?;
                }
                Ok(())
            });
            (dims.to_vec(), write)
        };
        self.tensors.push(OutTensor {
            name,
            dtype: safetensors_dtype(dtype),
            shape,
            byte_len,
            write,
        });
    }
}

/// Produces a tensor's bytes, handing each chunk to the sink in file order.
pub(super) type WriteFn =
    Box<dyn Fn(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()>>;

/// Little-endian bytes of `values` in `dtype`.
fn encode(values: &[f32], dtype: ExportDtype) -> Vec<u8> {
    match dtype {
        ExportDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ExportDtype::Bf16 => values
            .iter()
            .flat_map(|&v| bf16_bits(v).to_le_bytes())
            .collect(),
    }
}

/// bfloat16 bits of `x`: rounded to nearest, ties to even; NaN stays a (quiet) NaN of the
/// same sign; values past the largest bfloat16 round to infinity.
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        // Keep the sign and the top of the payload; set the quiet bit so it stays NaN.
        return ((bits >> 16) as u16) | 0x0040;
    }
    let lowest_kept_bit = (bits >> 16) & 1;
    // Below half of the last kept bit rounds down, above up, exactly half to the even one.
    ((bits + 0x7FFF + lowest_kept_bit) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::bf16_bits;
    use burn::tensor::bf16;

    fn round(bits: u32) -> u16 {
        bf16_bits(f32::from_bits(bits))
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        let cases: [(u32, u16); 16] = [
            (0x3F80_0000, 0x3F80), // 1.0 exactly
            (0x3F80_7FFF, 0x3F80), // just below half an ulp: down
            (0x3F80_8000, 0x3F80), // tie, 0x3F80 even: down
            (0x3F80_8001, 0x3F81), // just above half: up
            (0x3F81_8000, 0x3F82), // tie, 0x3F81 odd: up to even
            (0xBF80_8000, 0xBF80), // negative tie: toward the even magnitude
            (0xBF81_8000, 0xBF82),
            (0x0000_0000, 0x0000), // +0
            (0x8000_0000, 0x8000), // -0 keeps its sign
            (0x0000_8000, 0x0000), // subnormal tie to even (zero)
            (0x0001_8000, 0x0002), // subnormal tie up to even
            (0x0000_0001, 0x0000), // smallest subnormal: to zero
            (0x7F80_0000, 0x7F80), // +inf
            (0xFF80_0000, 0xFF80), // -inf
            (0x7F7F_FFFF, 0x7F80), // f32::MAX is past the largest bf16 + half ulp: inf
            (0x7F7F_7FFF, 0x7F7F), // below that tie: the largest finite bf16
        ];
        for (input, expected) in cases {
            assert_eq!(round(input), expected, "{input:#010x}");
        }
        // 1 + 3·2^-9 lies above 1 + 2^-8, the midpoint of its neighbours 1 and 1 + 2^-7.
        assert_eq!(bf16_bits(1.0 + 3.0 / 512.0), 0x3F81);
        assert_eq!(bf16_bits(-2.5), 0xC020);
    }

    #[test]
    fn bf16_keeps_nan_a_nan_with_its_sign() {
        for bits in [0x7FC0_0000u32, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF] {
            let out = round(bits);
            assert!(
                f32::from_bits(u32::from(out) << 16).is_nan(),
                "{bits:#x} → {out:#x}"
            );
            assert_eq!(out & 0x8000, ((bits >> 16) as u16) & 0x8000);
        }
    }

    #[test]
    fn bf16_agrees_with_the_half_crate_on_random_bit_patterns() {
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let x = f32::from_bits((state >> 32) as u32);
            if x.is_nan() {
                continue;
            }
            assert_eq!(bf16_bits(x), bf16::from_f32(x).to_bits(), "{x:e}");
        }
    }
}
