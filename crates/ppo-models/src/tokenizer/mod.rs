//! Tokenizers: the [`Tokenizer`] trait, the embedded byte-level default ([`ByteTokenizer`])
//! and Hugging Face tokenizers with their chat templates ([`HfTokenizer`]).

mod byte;
mod chat;
mod config;
mod error;
mod hf;
mod pair;

pub use byte::ByteTokenizer;
pub use chat::ChatMessage;
pub use error::TokenizerError;
pub use hf::{HfTokenizer, PromptFormat, TOKENIZER_FILES};
pub use pair::PairEncoding;

/// Turns text into token ids and back.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`, without special tokens.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// Text of `ids`; special tokens are dropped, invalid UTF-8 is replaced.
    fn decode(&self, ids: &[u32]) -> String;
    /// Number of ids the model must accept.
    fn vocab_size(&self) -> usize;
    /// End-of-sequence id: generation stops after it.
    fn eos_id(&self) -> u32;
    /// Every id that ends a response: [`eos_id`](Self::eos_id) and, for Hugging Face
    /// tokenizers, each `eos_token_id` of `generation_config.json`.
    fn stop_ids(&self) -> Vec<u32> {
        vec![self.eos_id()]
    }
    /// Padding id: fills positions that are masked out.
    fn pad_id(&self) -> u32;
    /// Beginning-of-sequence id, prepended to prompts when the tokenizer uses one.
    fn bos_id(&self) -> Option<u32>;
    /// Token ids the policy sees for a user prompt: by default BOS (when there is one) then
    /// the encoded text. Tokenizers with a chat template render it here.
    fn encode_prompt(&self, prompt: &str) -> Vec<u32> {
        self.bos_id()
            .into_iter()
            .chain(self.encode(prompt))
            .collect()
    }
    /// Token ids a reward model sees for a (prompt, response) pair: by default the prompt as
    /// [`Tokenizer::encode_prompt`] renders it followed by the encoded response. Tokenizers
    /// with a chat template render the conversation (user turn, assistant turn) here.
    fn encode_conversation(&self, prompt: &str, response: &str) -> Vec<u32> {
        let mut ids = self.encode_prompt(prompt);
        ids.extend(self.encode(response));
        ids
    }
}
