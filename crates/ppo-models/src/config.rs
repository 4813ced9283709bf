//! Transformer configuration, with the Hugging Face `config.json` key names.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Shape and numerics of a decoder-only transformer of the Llama / Qwen2 / Qwen3 family.
///
/// Field names equal the keys of a Hugging Face `config.json`, so the same struct describes
/// the embedded demo model and a real checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than the query heads).
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Base of the rotary embedding frequencies.
    pub rope_theta: f64,
    /// Longest sequence the model is meant for.
    pub max_position_embeddings: usize,
    /// Output projection shares the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2).
    pub attention_bias: bool,
    /// Per-head RMSNorm on queries and keys before the rotary embedding (Qwen3).
    pub qk_norm: bool,
    /// Standard deviation of the normal weight initialisation.
    pub initializer_range: f64,
}

impl TransformerConfig {
    /// A very small model for tests and examples: 2 layers, width 32, GQA with 4/2 heads,
    /// Qwen3-style q/k norm and tied embeddings.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 8,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            max_position_embeddings: 512,
            tie_word_embeddings: true,
            attention_bias: false,
            qk_norm: true,
            initializer_range: 0.02,
        }
    }

    /// Qwen3-0.6B's published shape (its config.json): 28 layers, width 1024, MLP 3072, GQA
    /// 16/8 heads of 128, q/k norm, tied embeddings, vocabulary 151 936, RoPE θ 10⁶; 596 M
    /// parameters. For memory plans, benchmarks and tests that need the real size without the
    /// weights.
    pub fn qwen3_0_6b() -> Self {
        Self {
            vocab_size: 151_936,
            hidden_size: 1024,
            intermediate_size: 3072,
            num_hidden_layers: 28,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 128,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            max_position_embeddings: 40_960,
            tie_word_embeddings: true,
            attention_bias: false,
            qk_norm: true,
            initializer_range: 0.02,
        }
    }

    /// Checks the shape is buildable; the error names the offending key.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ModelError::InvalidConfig(format!("{key} must be positive")));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(ModelError::InvalidConfig(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::InvalidConfig(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            )));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(ModelError::InvalidConfig(
                "rms_norm_eps must be positive".into(),
            ));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return Err(ModelError::InvalidConfig(
                "rope_theta must be positive".into(),
            ));
        }
        if !(self.initializer_range > 0.0 && self.initializer_range.is_finite()) {
            return Err(ModelError::InvalidConfig(
                "initializer_range must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Number of parameters of a causal LM with this shape.
    pub fn num_params(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let norms = if self.qk_norm { 2 * self.head_dim } else { 0 };
        let layer =
            h * (q + 2 * kv) + bias + q * h + 3 * h * self.intermediate_size + 2 * h + norms;
        let head = if self.tie_word_embeddings {
            0
        } else {
            h * self.vocab_size
        };
        self.vocab_size * h + self.num_hidden_layers * layer + h + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let mut c = TransformerConfig::tiny(10);
        c.num_key_value_heads = 3;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
        let mut c = TransformerConfig::tiny(10);
        c.head_dim = 7;
        assert!(c.validate().unwrap_err().to_string().contains("head_dim"));
        assert!(TransformerConfig::tiny(10).validate().is_ok());
    }
}
