//! Networks for RLHF with PPO: a decoder-only transformer (Llama / Qwen2 / Qwen3 family) as
//! policy, frozen reference and critic (backbone + scalar value head), batched KV-cache
//! sampling, tokenizers, and DeBERTa-v2/v3 sequence classifiers as reward models.
//!
//! Parameter names equal the Hugging Face tensor names (`model.layers.0.self_attn.q_proj`, …).
//! Linear weights are stored `[in, out]` (burn's layout), the transpose of PyTorch's.
//!
//! ```
//! use burn::tensor::Device;
//! use ppo_models::{ByteTokenizer, CausalLm, Rng, SamplingConfig, Tokenizer, TransformerConfig, generate};
//!
//! let device = Device::flex();
//! let config = TransformerConfig::tiny(ByteTokenizer::VOCAB_SIZE);
//! let policy = CausalLm::init(&config, &mut Rng::new(0), &device);
//! let tok = ByteTokenizer;
//! let prompts = vec![tok.encode("2+2="), tok.encode("如何制作一杯好咖啡？")];
//! let sampling = SamplingConfig { max_new_tokens: 4, ..SamplingConfig::default() };
//! let out = generate(&policy, &prompts, &sampling, tok.eos_id(), tok.pad_id(), &mut Rng::new(1));
//! assert_eq!(out.batch_size, 2);
//! assert!(out.response_len <= 4);
//! ```

mod config;
mod deberta;
mod error;
mod generate;
pub mod hf;
mod layers;
mod logprobs;
mod lora;
mod mask;
mod ops;
mod precision;
mod rng;
mod tokenizer;
mod transformer;

pub use config::TransformerConfig;
pub use deberta::{
    Activation, DebertaConfig, DebertaForSequenceClassification, log_bucket_position,
};
pub use error::ModelError;
pub use generate::{Generation, SamplingConfig, Stop, generate, generate_chunked, sample_token};
pub use logprobs::{response_logprobs, token_logprobs, token_logprobs_and_entropy};
pub use lora::{
    LORA_TARGETS, LoraConfig, LoraConfigError, LoraRole, adapter_counts, lora_trains, merged,
};
pub use mask::{Batch, left_pad};
pub use precision::Precision;
pub use rng::{Rng, RngState};
pub use tokenizer::{
    ByteTokenizer, ChatMessage, HfTokenizer, PairEncoding, PromptFormat, TOKENIZER_FILES,
    Tokenizer, TokenizerError,
};
pub use transformer::{CausalLm, KvCache, TransformerModel, ValueModel};

/// Copies a float tensor to the host as `f32` values (row-major).
pub fn to_f32_vec<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("tensor converted to f32 reads back as f32")
}
