//! Tokenizer and generation files next to an exported model: copies of the source
//! checkpoint's, a `generation_config.json` with the special token ids, or, for the built-in
//! [`ByteTokenizer`], a `tokenizer.json` that transformers reads as the same byte mapping.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::HfError;
use super::export::{TokenIds, io_error, write_atomically, write_json};
use crate::{ByteTokenizer, TOKENIZER_FILES};

const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// Copies those of [`TOKENIZER_FILES`] and `generation_config.json` that exist in `src_dir`
/// to `dst_dir` (created if needed); returns the names copied, in that order.
pub fn copy_tokenizer_files(
    src_dir: impl AsRef<Path>,
    dst_dir: impl AsRef<Path>,
) -> Result<Vec<String>, HfError> {
    let (src_dir, dst_dir) = (src_dir.as_ref(), dst_dir.as_ref());
    std::fs::create_dir_all(dst_dir).map_err(|source| io_error(dst_dir, source))?;
    let mut copied = Vec::new();
    for &name in TOKENIZER_FILES.iter().chain(&[GENERATION_CONFIG_FILE]) {
        let src = src_dir.join(name);
        if !src.is_file() {
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|source| io_error(&src, source))?;
        let dst = dst_dir.join(name);
        write_atomically(&dst, |temp| {
            std::fs::write(temp, &bytes).map_err(|source| io_error(&dst, source))
        })?;
        copied.push(name.to_owned());
    }
    Ok(copied)
}

/// Writes `dir/generation_config.json` with the ids given (for a model whose source has
/// none, such as the built-in byte-tokenizer model).
pub fn write_generation_config(dir: impl AsRef<Path>, token_ids: &TokenIds) -> Result<(), HfError> {
    let mut map = Map::new();
    for (key, id) in token_ids.entries() {
        if let Some(id) = id {
            map.insert(key.to_owned(), json!(id));
        }
    }
    write_json(
        &dir.as_ref().join(GENERATION_CONFIG_FILE),
        &Value::Object(map),
    )
}

/// Names of [`ByteTokenizer`]'s special tokens in the files written by
/// [`write_byte_tokenizer_files`], by id: BOS, EOS, PAD.
pub const BYTE_TOKENIZER_SPECIAL_TOKENS: [(u32, &str); 3] = [
    (ByteTokenizer::BOS, "<|bos|>"),
    (ByteTokenizer::EOS, "<|eos|>"),
    (ByteTokenizer::PAD, "<|pad|>"),
];

/// The character that GPT-2's byte-level alphabet gives byte `b`: printable Latin-1 bytes
/// stand for themselves, the other 68 take code points 256, 257, … in byte order.
fn byte_level_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&lower| !printable(lower)).count() as u32;
    char::from_u32(256 + rank).expect("code points 256..324 are characters")
}

/// Writes `tokenizer.json` and `tokenizer_config.json` for [`ByteTokenizer`] into `dir`, so
/// that transformers' `AutoTokenizer` gives the same ids: `tok(text, add_special_tokens=False)`
/// is [`Tokenizer::encode`](crate::Tokenizer::encode), `tok(text)` adds BOS as
/// [`Tokenizer::encode_prompt`](crate::Tokenizer::encode_prompt) does, and
/// `tok.decode(ids, skip_special_tokens=True)` is [`Tokenizer::decode`](crate::Tokenizer::decode).
///
/// A byte-pair model with no merges whose vocabulary maps the byte-level character of byte
/// `b` to id `b`; the special tokens are never matched in text (`split_special_tokens`), so
/// text that spells `<|eos|>` encodes as its bytes, as [`ByteTokenizer`] does.
pub fn write_byte_tokenizer_files(dir: impl AsRef<Path>) -> Result<(), HfError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let vocab: Map<String, Value> = (0..=u8::MAX)
        .map(|b| (byte_level_char(b).to_string(), json!(b)))
        .collect();
    let added_tokens: Vec<Value> = BYTE_TOKENIZER_SPECIAL_TOKENS
        .iter()
        .map(|&(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let [(bos_id, bos), (_, eos), (_, pad)] = BYTE_TOKENIZER_SPECIAL_TOKENS;
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                            "trim_offsets": false, "use_regex": false});
    let bos_piece = json!({"SpecialToken": {"id": bos, "type_id": 0}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        // BOS before the prompt (and before prompt + response for a pair), as
        // `encode_prompt` and `encode_conversation` do.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos_piece, sequence("A", 0)],
            "pair": [bos_piece, sequence("A", 0), sequence("B", 1)],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
        },
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": [],
        },
    });
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": pad,
        "split_special_tokens": true,
        "clean_up_tokenization_spaces": false,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "left",
    });
    write_json(&dir.join("tokenizer.json"), &tokenizer)?;
    write_json(&dir.join("tokenizer_config.json"), &config)
}

#[cfg(test)]
mod tests {
    use super::byte_level_char;
    use std::collections::BTreeSet;

    #[test]
    fn byte_level_alphabet_is_gpt2s() {
        assert_eq!(byte_level_char(b'A'), 'A');
        assert_eq!(byte_level_char(b'!'), '!');
        assert_eq!(byte_level_char(0xFF), 'ÿ');
        // Non-printable bytes in order: 0x00 → Ā (256), space 0x20 → Ġ (288), 0x7F → ġ (289),
        // 0xAD (soft hyphen) → Ń (323), the last of the 68.
        assert_eq!(byte_level_char(0x00), 'Ā');
        assert_eq!(byte_level_char(b' '), 'Ġ');
        assert_eq!(byte_level_char(b'\n'), 'Ċ');
        assert_eq!(byte_level_char(0x7F), 'ġ');
        assert_eq!(byte_level_char(0xAD), 'Ń');
        let all: BTreeSet<char> = (0..=u8::MAX).map(byte_level_char).collect();
        assert_eq!(all.len(), 256);
    }
}
