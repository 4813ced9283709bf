//! Decoder-only transformer of the Llama / Qwen2 / Qwen3 family, read top to bottom:
//! rotary embedding → MLP → attention → decoder layer → model → `CausalLm` and `ValueModel`.
//!
//! Rotary embeddings use Hugging Face's rotate-half layout with per-row position ids, so
//! left-padded rows match the same prompt run alone.
//!
//! Precision: the activations run in the model's compute precision ([`Precision`], f32 unless
//! set), the parameters stay in the dtype they are stored in and are cast at use. Whatever the
//! compute precision, RMSNorm statistics, attention scores and softmax are f32, and so are the
//! logits and values handed out.

use crate::ops::{silu, softmax};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::layers::{Embedding, Linear, RmsNorm};
use crate::mask::{attention_bias, position_ids};
use crate::precision::{CastParams, cast_to};
use crate::{Precision, Rng, TransformerConfig};

/// cos and sin tables `[batch, 1, seq, head_dim]` for the given position ids `[batch, seq]`.
fn rotary_tables(
    positions: &[i64],
    batch: usize,
    seq: usize,
    head_dim: usize,
    theta: f64,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let half = head_dim / 2;
    // As transformers: inv_freq in f32, the product position·inv_freq in f32.
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
        .collect();
    let mut cos = Vec::with_capacity(positions.len() * head_dim);
    let mut sin = Vec::with_capacity(positions.len() * head_dim);
    for &p in positions {
        for _ in 0..2 {
            for &f in &inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    let shape = [batch, 1, seq, head_dim];
    (
        Tensor::from_data(TensorData::new(cos, shape), device),
        Tensor::from_data(TensorData::new(sin, shape), device),
    )
}

/// `x·cos + rotate_half(x)·sin` with rotate_half(x) = [-x₂, x₁]; x: `[batch, heads, seq, head_dim]`.
fn apply_rotary(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// SwiGLU feed-forward: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        let (h, i, std) = (
            config.hidden_size,
            config.intermediate_size,
            config.initializer_range,
        );
        Self {
            gate_proj: Linear::init(h, i, false, std, rng, device),
            up_proj: Linear::init(h, i, false, std, rng, device),
            down_proj: Linear::init(i, h, false, std, rng, device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

/// Per-layer key/value cache (in the compute precision) plus the key mask of everything cached
/// so far.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// `[batch, cached_len]`, row-major
    key_mask: Vec<bool>,
    batch_size: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions cached per row.
    pub fn len(&self) -> usize {
        self.key_mask
            .len()
            .checked_div(self.batch_size)
            .unwrap_or(0)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.key_mask.is_empty()
    }

    /// Appends the mask of `q_len` new positions per row; returns the full key mask.
    fn extend_mask(&mut self, new_mask: &[bool], batch: usize, q_len: usize) -> &[bool] {
        let old_len = self.len();
        let mut merged = Vec::with_capacity(batch * (old_len + q_len));
        for b in 0..batch {
            merged.extend_from_slice(&self.key_mask[b * old_len..(b + 1) * old_len]);
            merged.extend_from_slice(&new_mask[b * q_len..(b + 1) * q_len]);
        }
        self.key_mask = merged;
        self.batch_size = batch;
        &self.key_mask
    }
}

/// Multi-head attention with grouped-query heads, optional qkv bias and q/k norm.
#[derive(Module, Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        let h = config.hidden_size;
        let q = config.num_attention_heads * config.head_dim;
        let kv = config.num_key_value_heads * config.head_dim;
        let std = config.initializer_range;
        let bias = config.attention_bias;
        let norm = || RmsNorm::init(config.head_dim, config.rms_norm_eps, device);
        Self {
            q_proj: Linear::init(h, q, bias, std, rng, device),
            k_proj: Linear::init(h, kv, bias, std, rng, device),
            v_proj: Linear::init(h, kv, bias, std, rng, device),
            o_proj: Linear::init(q, h, false, std, rng, device),
            q_norm: config.qk_norm.then(norm),
            k_norm: config.qk_norm.then(norm),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    /// x: `[batch, seq, hidden]`, cos/sin: `[batch, 1, seq, head_dim]`,
    /// bias: `[batch, 1, seq, keys]` → `[batch, seq, hidden]`
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        bias: &Tensor<4>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let split = |y: Tensor<3>, heads: usize| y.reshape([b, t, heads, hd]);
        let mut q = split(self.q_proj.forward(x.clone()), nh);
        let mut k = split(self.k_proj.forward(x.clone()), nkv);
        let v = split(self.v_proj.forward(x), nkv).swap_dims(1, 2);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(q);
            k = kn.forward(k);
        }
        let q = apply_rotary(q.swap_dims(1, 2), cos, sin);
        let mut k = apply_rotary(k.swap_dims(1, 2), cos, sin);
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((past_k, past_v)) = slot.take() {
                k = Tensor::cat(vec![past_k, k], 2);
                v = Tensor::cat(vec![past_v, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        // Scores and softmax in f32 whatever the compute precision (flash attention accumulates
        // them in f32 too); the probabilities meet the values in the compute precision.
        let q = cast_to(q, DType::F32);
        let k = repeat_kv(cast_to(k, DType::F32), nh / nkv);
        let v = repeat_kv(v, nh / nkv);
        let scale = (hd as f64).powf(-0.5);
        let scores = q.matmul(k.swap_dims(2, 3)) * scale + bias.clone();
        let probs = cast_to(softmax(scores, 3), v.dtype());
        let out = probs.matmul(v); // [b, nh, t, hd]
        self.o_proj
            .forward(out.swap_dims(1, 2).reshape([b, t, nh * hd]))
    }
}

/// `[b, n_kv, s, d]` → `[b, n_kv·n_rep, s, d]`, each kv head repeated for its query group.
fn repeat_kv(x: Tensor<4>, n_rep: usize) -> Tensor<4> {
    if n_rep == 1 {
        return x;
    }
    let [b, n_kv, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, n_kv, n_rep, s, d])
        .reshape([b, n_kv * n_rep, s, d])
}

/// Pre-norm decoder layer: attention and MLP, each with a residual connection.
#[derive(Module, Debug)]
struct DecoderLayer {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        Self {
            self_attn: Attention::init(config, rng, device),
            mlp: Mlp::init(config, rng, device),
            input_layernorm: RmsNorm::init(config.hidden_size, config.rms_norm_eps, device),
            post_attention_layernorm: RmsNorm::init(
                config.hidden_size,
                config.rms_norm_eps,
                device,
            ),
        }
    }

    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        bias: &Tensor<4>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), cos, sin, bias, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// The transformer backbone (`model.*` in Hugging Face checkpoints).
#[derive(Module, Debug)]
pub struct TransformerModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    #[module(skip)]
    config: TransformerConfig,
    /// Precision of the activations; not a parameter, kept by `valid`, `map`, `clone`, ….
    #[module(skip)]
    compute: Precision,
}

impl TransformerModel {
    /// Fresh weights drawn from `rng` (normal with `initializer_range`, norms at 1).
    pub fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        let std = config.initializer_range;
        Self {
            embed_tokens: Embedding::init(config.vocab_size, config.hidden_size, std, rng, device),
            layers: (0..config.num_hidden_layers)
                .map(|_| DecoderLayer::init(config, rng, device))
                .collect(),
            norm: RmsNorm::init(config.hidden_size, config.rms_norm_eps, device),
            config: config.clone(),
            compute: Precision::F32,
        }
    }

    /// The same weights, run in `precision` from now on (the parameters are not cast).
    pub fn with_compute_dtype(mut self, precision: Precision) -> Self {
        self.compute = precision;
        self
    }

    /// The precision the activations are computed in.
    pub fn compute_dtype(&self) -> Precision {
        self.compute
    }

    /// The shape this model was built with.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// Final hidden states `[batch, q_len, hidden]`, in the compute precision, of `input_ids`
    /// `[batch, q_len]` (row-major) with their `attention_mask`. With a cache, the new
    /// positions attend to everything cached before them and are appended to it.
    pub fn forward(
        &self,
        input_ids: &[u32],
        attention_mask: &[bool],
        batch: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let q_len = input_ids.len() / batch.max(1);
        let device = self.device();
        let (bias, positions) = match cache.as_deref_mut() {
            Some(cache) => {
                if cache.layers.is_empty() {
                    cache.layers = (0..self.layers.len()).map(|_| None).collect();
                }
                let keys = cache.extend_mask(attention_mask, batch, q_len);
                let k_len = keys.len() / batch.max(1);
                let all_positions = position_ids(keys, batch, k_len);
                let positions: Vec<i64> = all_positions
                    .chunks(k_len.max(1))
                    .flat_map(|row| row[k_len - q_len..].iter().copied())
                    .collect();
                (attention_bias(keys, batch, q_len), positions)
            }
            None => (
                attention_bias(attention_mask, batch, q_len),
                position_ids(attention_mask, batch, q_len),
            ),
        };
        let k_len = bias.len() / (batch * q_len).max(1);
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [batch, 1, q_len, k_len]), &device);
        let compute = self.compute.dtype();
        let (cos, sin) = rotary_tables(
            &positions,
            batch,
            q_len,
            self.config.head_dim,
            self.config.rope_theta,
            &device,
        );
        // As transformers: the f32 tables rounded to the compute precision, applied in it.
        let (cos, sin) = (cast_to(cos, compute), cast_to(sin, compute));
        let ids: Vec<i64> = input_ids.iter().map(|&id| i64::from(id)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, q_len]), &device);
        let mut x = cast_to(self.embed_tokens.forward(ids), compute);
        for (layer_idx, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[layer_idx]);
            x = layer.forward(x, &cos, &sin, &bias, slot);
        }
        self.norm.forward(x)
    }
}

/// `config` with a zero initialisation scale: init then draws nothing.
fn zero_init(config: &TransformerConfig) -> TransformerConfig {
    TransformerConfig {
        initializer_range: 0.0,
        ..config.clone()
    }
}

/// Gives every parameter a fresh id, so a copied backbone has optimiser state of its own.
struct FreshIds;

impl ModuleMapper for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        Param::from_tensor(param.val())
    }
}

/// Causal language model: backbone + output projection (`lm_head`, or the tied embedding).
#[derive(Module, Debug)]
pub struct CausalLm {
    model: TransformerModel,
    lm_head: Option<Linear>,
}

impl CausalLm {
    /// Fresh weights drawn from `rng`.
    pub fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        let model = TransformerModel::init(config, rng, device);
        let lm_head = (!config.tie_word_embeddings).then(|| {
            Linear::init(
                config.hidden_size,
                config.vocab_size,
                false,
                config.initializer_range,
                rng,
                device,
            )
        });
        Self { model, lm_head }
    }

    /// Zero weights of the shape of `config`, made without random draws, for a checkpoint
    /// loader to overwrite.
    pub(crate) fn zeros(config: &TransformerConfig, device: &Device) -> Self {
        let mut model = Self::init(&zero_init(config), &mut Rng::new(0), device);
        model.model.config = config.clone();
        model
    }

    /// The backbone.
    pub fn backbone(&self) -> &TransformerModel {
        &self.model
    }

    /// The shape this model was built with.
    pub fn config(&self) -> &TransformerConfig {
        self.model.config()
    }

    /// The same model, run in `precision` from now on: with [`Precision::Bf16`] each weight is
    /// cast to bf16 where it is used and the parameters (master weights) keep their dtype, so
    /// gradients arrive in it. The logits stay f32.
    pub fn with_compute_dtype(mut self, precision: Precision) -> Self {
        self.model = self.model.with_compute_dtype(precision);
        self
    }

    /// The precision the forward pass computes in.
    pub fn compute_dtype(&self) -> Precision {
        self.model.compute_dtype()
    }

    /// Every parameter cast to `precision` (same ids), e.g. bf16 for a frozen reference at half
    /// the memory. The compute precision is left as it is: with bf16 compute the casts at use
    /// become no-ops, with f32 compute the weights are widened at use.
    pub fn into_storage_dtype(self, precision: Precision) -> Self {
        self.map(&mut CastParams(precision))
    }

    /// Logits `[batch, q_len, vocab]` in f32 (projected in the compute precision); see
    /// [`TransformerModel::forward`].
    pub fn forward(
        &self,
        input_ids: &[u32],
        attention_mask: &[bool],
        batch: usize,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let hidden = self.model.forward(input_ids, attention_mask, batch, cache);
        self.project(hidden)
    }

    /// The logits that predict the response: those of positions `prompt_len − 1 .. q_len − 1`,
    /// `[batch, q_len − prompt_len, vocab]` in f32, for a sequence whose first `prompt_len`
    /// positions are the prompt. The same values as the matching rows of
    /// [`forward`](Self::forward), with the output head run on those rows only (the prompt's
    /// rows would be projected onto the vocabulary and thrown away: at Qwen3-0.6B's vocabulary
    /// the head is a quarter of the model's FLOPs). `prompt_len` must be at least 1.
    pub fn response_logits(
        &self,
        input_ids: &[u32],
        attention_mask: &[bool],
        batch: usize,
        prompt_len: usize,
    ) -> Tensor<3> {
        let hidden = self.model.forward(input_ids, attention_mask, batch, None);
        let [b, l, h] = hidden.dims();
        assert!(
            prompt_len >= 1 && prompt_len <= l,
            "prompt_len {prompt_len} out of 1..={l}"
        );
        self.project(hidden.slice([0..b, prompt_len - 1..l - 1, 0..h]))
    }

    /// The output head: `[batch, t, hidden]` → logits `[batch, t, vocab]` in f32.
    fn project(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let [b, t, h] = hidden.dims();
                // [vocab, hidden]
                let table = cast_to(self.model.embed_tokens.weight.val(), hidden.dtype());
                let vocab = table.dims()[0];
                // (table · hiddenᵀ)ᵀ rather than hidden · tableᵀ: the same products, but the
                // GEMM then streams the row-major table as its left operand, 1.3–5× faster on
                // flex for the few rows of a decoding step (docs/PERFORMANCE.md).
                table
                    .matmul(hidden.reshape([b * t, h]).transpose())
                    .transpose()
                    .reshape([b, t, vocab])
            }
        };
        cast_to(logits, DType::F32)
    }
}

/// Critic: backbone + scalar value head (`score`), one value per token.
#[derive(Module, Debug)]
pub struct ValueModel {
    model: TransformerModel,
    score: Linear,
}

impl ValueModel {
    /// Fresh backbone and value head drawn from `rng`.
    pub fn init(config: &TransformerConfig, rng: &mut Rng, device: &Device) -> Self {
        let model = TransformerModel::init(config, rng, device);
        Self::from_backbone(&model, rng)
    }

    /// Zero weights of the shape of `config`, made without random draws, for a checkpoint
    /// loader to overwrite.
    pub(crate) fn zeros(config: &TransformerConfig, device: &Device) -> Self {
        let mut model = Self::init(&zero_init(config), &mut Rng::new(0), device);
        model.model.config = config.clone();
        model
    }

    /// A copy of `backbone` (with parameter ids of its own) plus a fresh value head.
    pub fn from_backbone(backbone: &TransformerModel, rng: &mut Rng) -> Self {
        let model = backbone.clone().map(&mut FreshIds);
        let config = model.config().clone();
        let device = model.device();
        let score = Linear::init(
            config.hidden_size,
            1,
            false,
            config.initializer_range,
            rng,
            &device,
        );
        Self { model, score }
    }

    /// The shape of the backbone.
    pub fn config(&self) -> &TransformerConfig {
        self.model.config()
    }

    /// The transformer under the value head.
    pub fn backbone(&self) -> &TransformerModel {
        &self.model
    }

    /// The same critic with `map(backbone)` under its value head.
    pub(crate) fn map_backbone(
        mut self,
        map: impl FnOnce(TransformerModel) -> TransformerModel,
    ) -> Self {
        self.model = map(self.model);
        self
    }

    /// The same model, run in `precision` from now on; see [`CausalLm::with_compute_dtype`].
    /// The values stay f32.
    pub fn with_compute_dtype(mut self, precision: Precision) -> Self {
        self.model = self.model.with_compute_dtype(precision);
        self
    }

    /// The precision the forward pass computes in.
    pub fn compute_dtype(&self) -> Precision {
        self.model.compute_dtype()
    }

    /// Every parameter cast to `precision` (same ids); see [`CausalLm::into_storage_dtype`].
    pub fn into_storage_dtype(self, precision: Precision) -> Self {
        self.map(&mut CastParams(precision))
    }

    /// Values `[batch, seq]` in f32: the value estimate after reading each position.
    pub fn forward(&self, input_ids: &[u32], attention_mask: &[bool], batch: usize) -> Tensor<2> {
        let hidden = self.model.forward(input_ids, attention_mask, batch, None);
        let [b, t, _] = hidden.dims();
        cast_to(self.score.forward(hidden), DType::F32).reshape([b, t])
    }
}
