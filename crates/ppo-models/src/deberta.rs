//! DeBERTa-v2/v3 encoder with a sequence-classification head, as transformers'
//! `DebertaV2ForSequenceClassification` computes it, read top to bottom: configuration →
//! activations → relative positions (log buckets) → embeddings → disentangled self-attention
//! → layer → ConvLayer → encoder → `ContextPooler` + classifier.
//!
//! Field names equal the Hugging Face tensor names (`deberta.encoder.layer.0.attention.self.
//! query_proj`, `LayerNorm`), with one exception Rust imposes: transformers' `attention.self`
//! is the field `self_` here (the loader maps it back).
//!
//! Dropout is the identity (inference only). Padding: the attention mask is transformers'
//! `mask[i]·mask[j]`, filled with `f32::MIN` before the softmax, so every position of a
//! padded batch computes what transformers computes; the pooler reads position 0, so a score
//! is independent of padding on the right (and is what transformers returns on the left).

// `LayerNorm` fields carry transformers' names; the lint fires in the derived code too.
#![allow(non_snake_case)]

use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::Rng;
use crate::layers::{Embedding, LayerNorm, Linear, normal_tensor};
use crate::ops::softmax;

/// An activation named by a DeBERTa `config.json` (`hidden_act`, `pooler_hidden_act`,
/// `conv_act`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// `gelu` (and `gelu_python`): the exact erf GELU.
    #[default]
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
    /// `tanh`.
    Tanh,
}

impl Activation {
    /// The activation of transformers' `ACT2FN[name]`, for the names implemented here.
    pub fn from_hf(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" | "gelu_python" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Self::GeluTanh,
            "relu" => Self::Relu,
            "tanh" => Self::Tanh,
            _ => return None,
        })
    }

    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => x.clone() * ((x * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5,
            Self::GeluTanh => {
                let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715)
                    * (2.0 / std::f64::consts::PI).sqrt();
                x * (inner.tanh() + 1.0) * 0.5
            }
            Self::Relu => x.clamp_min(0.0),
            Self::Tanh => x.tanh(),
        }
    }
}

/// The shape and options of a DeBERTa-v2/v3 sequence classifier, resolved from `config.json`
/// (see [`crate::hf::load_deberta`]): no option left to a default at run time.
#[derive(Clone, Debug, PartialEq)]
pub struct DebertaConfig {
    /// Rows of `word_embeddings`.
    pub vocab_size: usize,
    /// Width of the encoder.
    pub hidden_size: usize,
    /// Width of the embeddings (`embed_proj` maps it to `hidden_size` when they differ).
    pub embedding_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of one head (`hidden_size / num_attention_heads` unless given).
    pub attention_head_size: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer.
    pub hidden_act: Activation,
    /// Rows of the absolute position table, and the default of `max_relative_positions`.
    pub max_position_embeddings: usize,
    /// Rows of `token_type_embeddings`; 0: none (DeBERTa-v3).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Absolute position embeddings added to the input (`position_biased_input`).
    pub position_biased_input: bool,
    /// Relative-position attention on (`relative_attention`).
    pub relative_attention: bool,
    /// Largest relative distance (`max_relative_positions`, resolved: < 1 in the file means
    /// `max_position_embeddings`).
    pub max_relative_positions: usize,
    /// Log buckets of relative positions (`position_buckets`); 0: none.
    pub position_buckets: usize,
    /// Content-to-position attention (`"c2p"` in `pos_att_type`).
    pub c2p: bool,
    /// Position-to-content attention (`"p2c"` in `pos_att_type`).
    pub p2c: bool,
    /// Position projections shared with the content ones (`share_att_key`).
    pub share_att_key: bool,
    /// LayerNorm on the relative embeddings (`norm_rel_ebd = "layer_norm"`).
    pub norm_rel_ebd: bool,
    /// Kernel of the ConvLayer after the first layer; 0: no ConvLayer.
    pub conv_kernel_size: usize,
    /// Activation of the ConvLayer.
    pub conv_act: Activation,
    /// Activation of the `ContextPooler`.
    pub pooler_hidden_act: Activation,
    /// Outputs of the classifier.
    pub num_labels: usize,
    /// Standard deviation of freshly initialised weights.
    pub initializer_range: f64,
}

impl DebertaConfig {
    /// DeBERTa-v3-large with one label, the shape of `OpenAssistant/reward-model-deberta-v3-large-v2`.
    pub fn v3_large() -> Self {
        Self {
            vocab_size: 128_100,
            hidden_size: 1024,
            embedding_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            attention_head_size: 64,
            intermediate_size: 4096,
            hidden_act: Activation::Gelu,
            max_position_embeddings: 512,
            type_vocab_size: 0,
            layer_norm_eps: 1e-7,
            position_biased_input: false,
            relative_attention: true,
            max_relative_positions: 512,
            position_buckets: 256,
            c2p: true,
            p2c: true,
            share_att_key: true,
            norm_rel_ebd: true,
            conv_kernel_size: 0,
            conv_act: Activation::Tanh,
            pooler_hidden_act: Activation::Gelu,
            num_labels: 1,
            initializer_range: 0.02,
        }
    }

    /// Number of parameters of the classifier of this shape.
    pub fn num_params(&self) -> usize {
        let (h, e, i) = (
            self.hidden_size,
            self.embedding_size,
            self.intermediate_size,
        );
        let all = self.num_attention_heads * self.attention_head_size;
        let mut embeddings = self.vocab_size * e + 2 * h;
        if self.position_biased_input {
            embeddings += self.max_position_embeddings * e;
        }
        embeddings += self.type_vocab_size * e;
        if e != h {
            embeddings += e * h;
        }
        let separate = usize::from(self.relative_attention && !self.share_att_key)
            * (usize::from(self.c2p) + usize::from(self.p2c));
        let attention = (3 + separate) * (h * all + all) + all * h + h + 2 * h;
        let layer = attention + (h * i + i) + (i * h + h) + 2 * h;
        let mut encoder = self.num_hidden_layers * layer;
        if self.relative_attention {
            encoder += 2 * self.att_span() * h;
        }
        if self.norm_rel_ebd {
            encoder += 2 * h;
        }
        if self.conv_kernel_size > 0 {
            encoder += h * h * self.conv_kernel_size + h + 2 * h;
        }
        embeddings + encoder + (h * h + h) + (h * self.num_labels + self.num_labels)
    }

    /// Relative positions span `[-att_span, att_span)` after clamping: the bucket count when
    /// bucketing, else `max_relative_positions`.
    pub fn att_span(&self) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets
        } else {
            self.max_relative_positions
        }
    }

    /// Scores are divided by `sqrt(head_size · (1 + number of position attention types))`.
    fn scale_factor(&self) -> usize {
        1 + usize::from(self.c2p) + usize::from(self.p2c)
    }
}

/// transformers' `make_log_bucket_position` for one relative position: distances below
/// `buckets / 2` are kept, longer ones mapped logarithmically up to `max_position`, in f32
/// as PyTorch computes them.
pub fn log_bucket_position(relative: i64, buckets: usize, max_position: usize) -> i64 {
    let mid = (buckets / 2) as i64;
    let abs = if relative < mid && relative > -mid {
        mid - 1
    } else {
        relative.abs()
    };
    if abs <= mid {
        return relative;
    }
    let ratio =
        (abs as f32 / mid as f32).ln() / (((max_position - 1) as f64 / mid as f64) as f32).ln();
    let log_pos = (ratio * (mid - 1) as f32).ceil() + mid as f32;
    (log_pos * relative.signum() as f32) as i64
}

/// Relative position `i − j` of query `i` to key `j`, bucketed as the config says; `[t, t]`
/// row-major.
fn relative_positions(config: &DebertaConfig, t: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(t * t);
    for i in 0..t as i64 {
        for j in 0..t as i64 {
            let r = i - j;
            out.push(
                if config.position_buckets > 0 && config.max_relative_positions > 0 {
                    log_bucket_position(r, config.position_buckets, config.max_relative_positions)
                } else {
                    r
                },
            );
        }
    }
    out
}

/// Flat indices into `[t, 2·span]` rows that turn the position scores into `[t, t]` scores:
/// c2p reads row `i` at `clamp(rel(i, j) + span)`, p2c reads row `j` (the key) at
/// `clamp(span − rel(j, i))` (transformers' gather followed by a transpose).
fn relative_indices(rel: &[i64], t: usize, span: usize) -> (Vec<i64>, Vec<i64>) {
    let width = 2 * span as i64;
    let clamp = |x: i64| x.clamp(0, width - 1);
    let mut c2p = Vec::with_capacity(t * t);
    let mut p2c = Vec::with_capacity(t * t);
    for i in 0..t {
        for j in 0..t {
            c2p.push(i as i64 * width + clamp(rel[i * t + j] + span as i64));
            p2c.push(j as i64 * width + clamp(span as i64 - rel[j * t + i]));
        }
    }
    (c2p, p2c)
}

/// Word (+ absolute position) (+ token type) embeddings, projected to the hidden width when
/// `embedding_size` differs, normalised and zeroed on padding.
#[derive(Module, Debug)]
struct Embeddings {
    word_embeddings: Embedding,
    position_embeddings: Option<Embedding>,
    token_type_embeddings: Option<Embedding>,
    embed_proj: Option<Linear>,
    LayerNorm: LayerNorm,
}

impl Embeddings {
    fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let (e, std) = (config.embedding_size, config.initializer_range);
        Self {
            word_embeddings: Embedding::init(config.vocab_size, e, std, rng, device),
            position_embeddings: config
                .position_biased_input
                .then(|| Embedding::init(config.max_position_embeddings, e, std, rng, device)),
            token_type_embeddings: (config.type_vocab_size > 0)
                .then(|| Embedding::init(config.type_vocab_size, e, std, rng, device)),
            embed_proj: (e != config.hidden_size)
                .then(|| Linear::init(e, config.hidden_size, false, std, rng, device)),
            LayerNorm: LayerNorm::init(config.hidden_size, config.layer_norm_eps, device),
        }
    }

    /// ids, types: `[batch, seq]`, mask: `[batch, seq, 1]` (1 real, 0 padding) →
    /// `[batch, seq, hidden]`
    fn forward(&self, ids: Tensor<2, Int>, types: Tensor<2, Int>, mask: &Tensor<3>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let device = ids.device();
        let mut x = self.word_embeddings.forward(ids);
        if let Some(table) = &self.position_embeddings {
            // transformers' default position ids: 0..seq for every row, whatever the mask.
            let positions = Tensor::<1, Int>::arange(0..t as i64, &device)
                .reshape([1, t])
                .expand([b, t]);
            x = x + table.forward(positions);
        }
        if let Some(table) = &self.token_type_embeddings {
            x = x + table.forward(types);
        }
        if let Some(proj) = &self.embed_proj {
            x = proj.forward(x);
        }
        self.LayerNorm.forward(x) * mask.clone()
    }
}

/// What every layer's attention shares: the relative embeddings and the gather indices.
struct RelativeInputs {
    /// `[1, 2·span, hidden]`, LayerNorm applied when configured
    embeddings: Tensor<3>,
    /// `[t·t]` into `[t, 2·span]`
    c2p_index: Tensor<1, Int>,
    /// `[t·t]` into `[t, 2·span]`
    p2c_index: Tensor<1, Int>,
}

/// Multi-head attention whose scores add content-to-position and position-to-content terms.
#[derive(Module, Debug)]
struct DisentangledSelfAttention {
    query_proj: Linear,
    key_proj: Linear,
    value_proj: Linear,
    pos_key_proj: Option<Linear>,
    pos_query_proj: Option<Linear>,
    num_heads: usize,
    head_size: usize,
    scale_factor: usize,
    c2p: bool,
    p2c: bool,
    share_att_key: bool,
}

impl DisentangledSelfAttention {
    fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let (h, std) = (config.hidden_size, config.initializer_range);
        let all = config.num_attention_heads * config.attention_head_size;
        let separate = config.relative_attention && !config.share_att_key;
        Self {
            query_proj: Linear::init(h, all, true, std, rng, device),
            key_proj: Linear::init(h, all, true, std, rng, device),
            value_proj: Linear::init(h, all, true, std, rng, device),
            pos_key_proj: (separate && config.c2p)
                .then(|| Linear::init(h, all, true, std, rng, device)),
            pos_query_proj: (separate && config.p2c)
                .then(|| Linear::init(h, all, true, std, rng, device)),
            num_heads: config.num_attention_heads,
            head_size: config.attention_head_size,
            scale_factor: config.scale_factor(),
            c2p: config.c2p,
            p2c: config.p2c,
            share_att_key: config.share_att_key,
        }
    }

    /// `[batch, seq, heads·head]` → `[batch, heads, seq, head]`
    fn heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, t, _] = x.dims();
        x.reshape([b, t, self.num_heads, self.head_size])
            .swap_dims(1, 2)
    }

    /// x: `[batch, seq, hidden]`, keep: `[batch, heads, seq, seq]` (false: masked) →
    /// `[batch, seq, heads·head]`
    fn forward(
        &self,
        x: Tensor<3>,
        keep: &Tensor<4, Bool>,
        relative: Option<&RelativeInputs>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let q = self.heads(self.query_proj.forward(x.clone()));
        let k = self.heads(self.key_proj.forward(x.clone()));
        let v = self.heads(self.value_proj.forward(x));
        let scale = (self.head_size as f32 * self.scale_factor as f32).sqrt();
        let mut scores = q.clone().matmul(k.clone().swap_dims(2, 3)) / f64::from(scale);
        if let Some(rel) = relative {
            let (nh, hd) = (self.num_heads, self.head_size);
            let span2 = rel.embeddings.dims()[1];
            // Position keys/queries: [1, 2·span, hidden] → [batch, heads, 2·span, head].
            let project = |proj: &Linear| {
                self.heads(proj.forward(rel.embeddings.clone()))
                    .expand([b, nh, span2, hd])
            };
            // Scores of every query against every relative position, [b, h, t, 2·span],
            // read at each (query, key)'s relative position.
            let gather = |position_scores: Tensor<4>, index: &Tensor<1, Int>| {
                position_scores
                    .reshape([b * nh, t * span2])
                    .select(1, index.clone())
                    .reshape([b, nh, t, t])
            };
            if self.c2p {
                let proj = match (&self.pos_key_proj, self.share_att_key) {
                    (Some(p), false) => p,
                    _ => &self.key_proj,
                };
                let pos_key = project(proj);
                let c2p = q.clone().matmul(pos_key.swap_dims(2, 3));
                scores = scores + gather(c2p, &rel.c2p_index) / f64::from(scale);
            }
            if self.p2c {
                let proj = match (&self.pos_query_proj, self.share_att_key) {
                    (Some(p), false) => p,
                    _ => &self.query_proj,
                };
                let pos_query = project(proj);
                let p2c = k.matmul(pos_query.swap_dims(2, 3));
                scores = scores + gather(p2c, &rel.p2c_index) / f64::from(scale);
            }
        }
        let scores = scores.mask_fill(keep.clone().bool_not(), f32::MIN);
        let context = softmax(scores, 3).matmul(v); // [b, h, t, head]
        context
            .swap_dims(1, 2)
            .reshape([b, t, self.num_heads * self.head_size])
    }
}

/// `LayerNorm(dense(x) + residual)`, after attention (`attention.output`) and after the
/// feed-forward layer (`output`).
#[derive(Module, Debug)]
struct DenseResidualNorm {
    dense: Linear,
    LayerNorm: LayerNorm,
}

impl DenseResidualNorm {
    fn init(d_input: usize, config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        Self {
            dense: Linear::init(
                d_input,
                config.hidden_size,
                true,
                config.initializer_range,
                rng,
                device,
            ),
            LayerNorm: LayerNorm::init(config.hidden_size, config.layer_norm_eps, device),
        }
    }

    fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.LayerNorm.forward(self.dense.forward(x) + residual)
    }
}

/// `attention.self` (disentangled attention) and `attention.output`.
#[derive(Module, Debug)]
struct Attention {
    /// transformers' `self`.
    self_: DisentangledSelfAttention,
    output: DenseResidualNorm,
}

/// The feed-forward layer's first projection and activation.
#[derive(Module, Debug)]
struct Intermediate {
    dense: Linear,
    #[module(skip)]
    act: Activation,
}

/// Attention, then the feed-forward layer, each closed by a residual LayerNorm.
#[derive(Module, Debug)]
struct Layer {
    attention: Attention,
    intermediate: Intermediate,
    output: DenseResidualNorm,
}

impl Layer {
    fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let all = config.num_attention_heads * config.attention_head_size;
        Self {
            attention: Attention {
                self_: DisentangledSelfAttention::init(config, rng, device),
                output: DenseResidualNorm::init(all, config, rng, device),
            },
            intermediate: Intermediate {
                dense: Linear::init(
                    config.hidden_size,
                    config.intermediate_size,
                    true,
                    config.initializer_range,
                    rng,
                    device,
                ),
                act: config.hidden_act,
            },
            output: DenseResidualNorm::init(config.intermediate_size, config, rng, device),
        }
    }

    fn forward(
        &self,
        x: Tensor<3>,
        keep: &Tensor<4, Bool>,
        relative: Option<&RelativeInputs>,
    ) -> Tensor<3> {
        let context = self.attention.self_.forward(x.clone(), keep, relative);
        let attended = self.attention.output.forward(context, x);
        let hidden = self
            .intermediate
            .act
            .apply(self.intermediate.dense.forward(attended.clone()));
        self.output.forward(hidden, attended)
    }
}

/// A 1-D convolution over the sequence, same padding, one group; weight `[out, in, kernel]`
/// as PyTorch stores it.
#[derive(Module, Debug)]
struct Conv1d {
    weight: Param<Tensor<3>>,
    bias: Param<Tensor<1>>,
}

impl Conv1d {
    /// x: `[batch, seq, channels]` → `[batch, seq, channels]`
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let weight = self.weight.val();
        let [out, _, kernel] = weight.dims();
        let pad = (kernel - 1) / 2;
        let device = x.device();
        let zeros = Tensor::<3>::zeros([b, pad, c], &device);
        let padded = Tensor::cat(vec![zeros.clone(), x, zeros], 1);
        let mut y = self.bias.val().reshape([1, 1, out]).expand([b, t, out]);
        for tap in 0..kernel {
            let w = weight
                .clone()
                .slice([0..out, 0..c, tap..tap + 1])
                .reshape([out, c])
                .transpose(); // [in, out]
            let window = padded.clone().slice([0..b, tap..tap + t, 0..c]);
            y = y + window.reshape([b * t, c]).matmul(w).reshape([b, t, out]);
        }
        y
    }
}

/// transformers' `ConvLayer`: after the first layer,
/// `LayerNorm(layer_output + act(conv(embeddings) masked)) · mask`.
#[derive(Module, Debug)]
struct ConvLayer {
    conv: Conv1d,
    LayerNorm: LayerNorm,
    #[module(skip)]
    act: Activation,
}

impl ConvLayer {
    fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let (h, k) = (config.hidden_size, config.conv_kernel_size);
        Self {
            conv: Conv1d {
                weight: Param::from_tensor(normal_tensor(
                    [h, h, k],
                    config.initializer_range,
                    rng,
                    device,
                )),
                bias: Param::from_tensor(Tensor::zeros([h], device)),
            },
            LayerNorm: LayerNorm::init(h, config.layer_norm_eps, device),
            act: config.conv_act,
        }
    }

    /// embeddings, residual: `[batch, seq, hidden]`, mask: `[batch, seq, 1]`
    fn forward(&self, embeddings: Tensor<3>, residual: Tensor<3>, mask: &Tensor<3>) -> Tensor<3> {
        let out = self.act.apply(self.conv.forward(embeddings) * mask.clone());
        self.LayerNorm.forward(residual + out) * mask.clone()
    }
}

/// The layers, the relative-position table (with its LayerNorm) and the optional ConvLayer.
#[derive(Module, Debug)]
struct Encoder {
    layer: Vec<Layer>,
    rel_embeddings: Option<Embedding>,
    LayerNorm: Option<LayerNorm>,
    conv: Option<ConvLayer>,
}

impl Encoder {
    fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            layer: (0..config.num_hidden_layers)
                .map(|_| Layer::init(config, rng, device))
                .collect(),
            rel_embeddings: config.relative_attention.then(|| {
                Embedding::init(
                    2 * config.att_span(),
                    h,
                    config.initializer_range,
                    rng,
                    device,
                )
            }),
            LayerNorm: config
                .norm_rel_ebd
                .then(|| LayerNorm::init(h, config.layer_norm_eps, device)),
            conv: (config.conv_kernel_size > 0).then(|| ConvLayer::init(config, rng, device)),
        }
    }
}

/// The encoder under the head (`deberta.*` in Hugging Face checkpoints).
#[derive(Module, Debug)]
struct DebertaModel {
    embeddings: Embeddings,
    encoder: Encoder,
}

/// `ContextPooler`: the first token's hidden state through a dense layer and an activation.
#[derive(Module, Debug)]
struct ContextPooler {
    dense: Linear,
    #[module(skip)]
    act: Activation,
}

/// DeBERTa-v2/v3 sequence classifier: encoder, `pooler` and `classifier`
/// (transformers' `DebertaV2ForSequenceClassification`).
#[derive(Module, Debug)]
pub struct DebertaForSequenceClassification {
    deberta: DebertaModel,
    pooler: ContextPooler,
    classifier: Linear,
    #[module(skip)]
    config: DebertaConfig,
}

impl DebertaForSequenceClassification {
    /// Fresh weights drawn from `rng` (normal with `initializer_range`, LayerNorms at 1 and 0).
    pub fn init(config: &DebertaConfig, rng: &mut Rng, device: &Device) -> Self {
        let (h, std) = (config.hidden_size, config.initializer_range);
        Self {
            deberta: DebertaModel {
                embeddings: Embeddings::init(config, rng, device),
                encoder: Encoder::init(config, rng, device),
            },
            pooler: ContextPooler {
                dense: Linear::init(h, h, true, std, rng, device),
                act: config.pooler_hidden_act,
            },
            classifier: Linear::init(h, config.num_labels, true, std, rng, device),
            config: config.clone(),
        }
    }

    /// Zero weights of the shape of `config`, made without random draws, for a checkpoint
    /// loader to overwrite.
    pub(crate) fn zeros(config: &DebertaConfig, device: &Device) -> Self {
        let zero = DebertaConfig {
            initializer_range: 0.0,
            ..config.clone()
        };
        let mut model = Self::init(&zero, &mut Rng::new(0), device);
        model.config = config.clone();
        model
    }

    /// The shape this model was built with.
    pub fn config(&self) -> &DebertaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.classifier.weight.val().device()
    }

    /// Logits `[batch, num_labels]` of `input_ids` with their `token_type_ids` and
    /// `attention_mask`, all `[batch, seq]` row-major. Token types are ignored by a model
    /// without `token_type_embeddings`.
    pub fn forward(
        &self,
        input_ids: &[u32],
        token_type_ids: &[u32],
        attention_mask: &[bool],
        batch: usize,
    ) -> Tensor<2> {
        let t = input_ids.len() / batch.max(1);
        let device = self.device();
        let int = |values: &[u32]| {
            let values: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
            Tensor::<2, Int>::from_data(TensorData::new(values, [batch, t]), &device)
        };
        let mask_values: Vec<f32> = attention_mask
            .iter()
            .map(|&m| f32::from(u8::from(m)))
            .collect();
        let mask = Tensor::<3>::from_data(TensorData::new(mask_values, [batch, t, 1]), &device);
        // transformers' extended mask: query i may attend key j when both are real.
        let mut keep = Vec::with_capacity(batch * t * t);
        for row in attention_mask.chunks(t.max(1)) {
            for &qi in row {
                keep.extend(row.iter().map(|&kj| qi && kj));
            }
        }
        let heads = self.config.num_attention_heads;
        let keep = Tensor::<4, Bool>::from_data(TensorData::new(keep, [batch, 1, t, t]), &device)
            .expand([batch, heads, t, t]);

        let embeddings =
            self.deberta
                .embeddings
                .forward(int(input_ids), int(token_type_ids), &mask);
        let encoder = &self.deberta.encoder;
        let relative = encoder.rel_embeddings.as_ref().map(|table| {
            let mut rel = table.weight.val();
            if let Some(norm) = &encoder.LayerNorm {
                rel = norm.forward(rel);
            }
            let span = self.config.att_span();
            let positions = relative_positions(&self.config, t);
            let (c2p, p2c) = relative_indices(&positions, t, span);
            let index =
                |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [t * t]), &device);
            RelativeInputs {
                embeddings: rel.unsqueeze_dim(0),
                c2p_index: index(c2p),
                p2c_index: index(p2c),
            }
        });
        let mut x = embeddings.clone();
        for (layer_idx, layer) in encoder.layer.iter().enumerate() {
            x = layer.forward(x, &keep, relative.as_ref());
            if layer_idx == 0
                && let Some(conv) = &encoder.conv
            {
                x = conv.forward(embeddings.clone(), x, &mask);
            }
        }
        let [b, _, h] = x.dims();
        let first = x.slice([0..b, 0..1, 0..h]); // [b, 1, hidden]
        let pooled = self.pooler.act.apply(self.pooler.dense.forward(first));
        let logits = self.classifier.forward(pooled);
        logits.reshape([b, self.config.num_labels])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_short_distances_and_compress_long_ones() {
        // 256 buckets over 512 positions (DeBERTa-v3): |r| ≤ 128 kept, the rest logarithmic.
        for r in -128..=128 {
            assert_eq!(log_bucket_position(r, 256, 512), r);
        }
        assert!(log_bucket_position(129, 256, 512) > 128);
        assert_eq!(log_bucket_position(511, 256, 512), 255);
        assert_eq!(log_bucket_position(-511, 256, 512), -255);
    }

    #[test]
    fn num_params_counts_every_parameter() {
        let mut config = DebertaConfig::v3_large();
        config.num_hidden_layers = 2;
        config.vocab_size = 50;
        config.hidden_size = 16;
        config.embedding_size = 8;
        config.num_attention_heads = 2;
        config.attention_head_size = 8;
        config.intermediate_size = 24;
        config.position_buckets = 4;
        config.conv_kernel_size = 3;
        config.type_vocab_size = 2;
        config.position_biased_input = true;
        config.share_att_key = false;
        let model =
            DebertaForSequenceClassification::init(&config, &mut Rng::new(0), &Device::flex());
        assert_eq!(config.num_params(), model.num_params());
    }

    #[test]
    fn relative_indices_read_the_right_columns() {
        // t = 2, span 2: rel = [[0, -1], [1, 0]].
        let rel = [0, -1, 1, 0];
        let (c2p, p2c) = relative_indices(&rel, 2, 2);
        // c2p (i, j) = i·4 + rel(i, j) + 2
        assert_eq!(c2p, [2, 1, 4 + 3, 4 + 2]);
        // p2c (i, j) = j·4 + 2 − rel(j, i)
        assert_eq!(p2c, [2, 4 + 2 - 1, 2 + 1, 4 + 2]);
    }
}
