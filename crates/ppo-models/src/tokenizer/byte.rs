//! The embedded byte-level tokenizer: each UTF-8 byte is its own id (0..=255), then three
//! special tokens, so any prompt in any script works with no vocabulary file.

use super::Tokenizer;

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
