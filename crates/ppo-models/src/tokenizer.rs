//! Tokenizers: the [`Tokenizer`] trait and the embedded byte-level default.
//!
//! The byte tokenizer maps each UTF-8 byte to its own id (0..=255) and adds three special
//! tokens, so any prompt in any script works with no vocabulary file.

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

/// Byte-level tokenizer: ids 0..=255 are bytes, then BOS, EOS, PAD.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// Id of the beginning-of-sequence token.
    pub const BOS: u32 = 256;
    /// Id of the end-of-sequence token.
    pub const EOS: u32 = 257;
    /// Id of the padding token.
    pub const PAD: u32 = 258;
    /// Vocabulary size (256 bytes + 3 special tokens).
    pub const VOCAB_SIZE: usize = 259;
}

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter_map(|&id| u8::try_from(id).ok()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn vocab_size(&self) -> usize {
        Self::VOCAB_SIZE
    }

    fn eos_id(&self) -> u32 {
        Self::EOS
    }

    fn pad_id(&self) -> u32 {
        Self::PAD
    }

    fn bos_id(&self) -> Option<u32> {
        Some(Self::BOS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_chinese_and_drops_specials() {
        let tok = ByteTokenizer;
        let text = "如何制作一杯好咖啡？";
        let mut ids = tok.encode(text);
        assert_eq!(ids.len(), text.len());
        assert!(ids.iter().all(|&id| id < 256));
        ids.insert(0, ByteTokenizer::BOS);
        ids.push(ByteTokenizer::EOS);
        assert_eq!(tok.decode(&ids), text);
    }
}
