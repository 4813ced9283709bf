//! [`HfTokenizer`]: a Hugging Face tokenizer directory (`tokenizer.json` and its
//! configuration files) behaving as transformers 5 behaves with it, and the prompt format
//! (plain text, or the model's chat template) the policy sees.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use minijinja::Value;
use tokenizers::models::ModelWrapper;
use tokenizers::{AddedToken, Tokenizer as Backend};

use super::chat::{ChatMessage, LoadedTemplate};
use super::config::{NAMED_TOKENS, TokenizerConfig, read_config};
use super::{PairEncoding, Tokenizer, TokenizerError};

/// Files a Hugging Face model directory may hold for its tokenizer, to copy along when
/// exporting.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
];

/// How a prompt becomes the policy's input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptFormat {
    /// Render prompts (and prompt–response pairs) with the model's chat template, as
    /// `apply_chat_template` does; otherwise encode them as `tokenizer(prompt)` does.
    pub use_chat_template: bool,
    /// A system message before the user turn (only with the chat template).
    pub system_prompt: Option<String>,
    /// Passed to the template as `enable_thinking` when set (Qwen3's switch for its
    /// reasoning block); templates that do not read it ignore it.
    pub enable_thinking: Option<bool>,
}

/// A Hugging Face tokenizer (`tokenizer.json` through the `tokenizers` library) with the
/// special tokens and chat template of its configuration files.
///
/// Semantics follow transformers 5: [`Tokenizer::encode`] adds no special tokens but
/// recognises special tokens written in the text; [`Tokenizer::decode`] skips special tokens
/// (and applies `clean_up_tokenization_spaces` where transformers does, i.e. not for BPE
/// models); the pad id falls back to EOS when there is no pad token.
///
/// ```no_run
/// use ppo_models::{ChatMessage, HfTokenizer, PromptFormat, Tokenizer};
///
/// let tokenizer = HfTokenizer::from_dir("Qwen3-0.6B")?.with_prompt_format(PromptFormat {
///     use_chat_template: true,
///     system_prompt: Some("Answer with a number.".into()),
///     enable_thinking: Some(false),
/// })?;
/// // apply_chat_template([system, user], add_generation_prompt=True, enable_thinking=False)
/// let prompt_ids = tokenizer.encode_prompt("What is 12 * 7?");
/// assert!(prompt_ids.len() < 64);
/// let text = tokenizer.render_chat(&[ChatMessage::user("What is 12 * 7?")], true)?;
/// assert!(text.ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
/// # Ok::<(), ppo_models::TokenizerError>(())
/// ```
#[derive(Clone)]
pub struct HfTokenizer {
    dir: PathBuf,
    backend: Backend,
    eos_id: u32,
    /// `eos_id`, then the other `eos_token_id`s of `generation_config.json`.
    stop_ids: Vec<u32>,
    pad_id: u32,
    bos_id: Option<u32>,
    vocab_size: usize,
    clean_up_spaces: bool,
    /// Named special tokens that are set, as template variables (`bos_token`, …).
    template_tokens: Vec<(&'static str, String)>,
    template: Option<LoadedTemplate>,
    format: PromptFormat,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("dir", &self.dir)
            .field("vocab_size", &self.vocab_size)
            .field("eos_id", &self.eos_id)
            .field("stop_ids", &self.stop_ids)
            .field("pad_id", &self.pad_id)
            .field("bos_id", &self.bos_id)
            .field("has_chat_template", &self.has_chat_template())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl HfTokenizer {
    /// Loads `dir/tokenizer.json` with `tokenizer_config.json`, `special_tokens_map.json`,
    /// `generation_config.json` (EOS when the tokenizer config names none) and
    /// `chat_template.jinja` where present. The prompt format is plain text.
    ///
    /// A chat template that does not parse is reported when it is first needed
    /// ([`HfTokenizer::with_prompt_format`], [`HfTokenizer::render_chat`]).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        if !path.exists() && dir.join("spm.model").is_file() {
            return Err(TokenizerError::OnlySentencePiece {
                dir: dir.to_owned(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|source| TokenizerError::Io {
            path: path.clone(),
            source,
        })?;
        let backend_error = |source| TokenizerError::TokenizerJson {
            path: path.clone(),
            source,
        };
        let mut backend = Backend::from_bytes(&bytes).map_err(backend_error)?;
        backend.with_truncation(None).map_err(backend_error)?;
        backend.with_padding(None);
        let config = read_config(dir)?;
        register_special_tokens(&mut backend, &config)?;
        backend.set_encode_special_tokens(config.split_special_tokens);

        let id_of = |key: &str| {
            config
                .named(key)
                .and_then(|t| backend.token_to_id(&t.content))
        };
        let eos_id = resolve_eos(&backend, &config, dir)?;
        let mut stop_ids = vec![eos_id];
        for &id in config.generation_eos.iter().flat_map(|(ids, _)| ids) {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        let pad_id = id_of("pad_token").unwrap_or(eos_id);
        // BOS only where the post-processor really prepends it.
        let empty = backend
            .encode_fast("", true)
            .map_err(|source| TokenizerError::Encode {
                path: path.clone(),
                source,
            })?;
        let bos_id = id_of("bos_token").filter(|id| empty.get_ids().first() == Some(id));
        let vocab_size = backend
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1);
        let is_bpe = matches!(backend.get_model(), ModelWrapper::BPE(_));
        let template_tokens = NAMED_TOKENS
            .iter()
            .filter_map(|&key| config.named(key).map(|t| (key, t.content.clone())))
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            backend,
            eos_id,
            stop_ids,
            pad_id,
            bos_id,
            vocab_size,
            clean_up_spaces: config.clean_up_tokenization_spaces
                && (!is_bpe || config.clean_up_for_bpe),
            template_tokens,
            template: config
                .chat_template
                .map(|t| LoadedTemplate::load(&t.source, t.path)),
            format: PromptFormat::default(),
        })
    }

    /// Sets how prompts are encoded. With `use_chat_template`, fails when there is no chat
    /// template, when it does not parse, or when it fails on a probe conversation in this
    /// format (so that [`Tokenizer::encode_prompt`] and [`Tokenizer::encode_conversation`]
    /// can render later prompts).
    pub fn with_prompt_format(mut self, format: PromptFormat) -> Result<Self, TokenizerError> {
        self.format = format;
        if self.format.use_chat_template {
            self.try_encode_prompt("ppo-rs probe prompt")?;
            self.try_encode_conversation("ppo-rs probe prompt", "ppo-rs probe response")?;
        }
        Ok(self)
    }

    /// The prompt format in use.
    pub fn prompt_format(&self) -> &PromptFormat {
        &self.format
    }

    /// The directory the tokenizer was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory has a chat template (it may still fail to parse).
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The id of `token` (vocabulary or added token).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.backend.token_to_id(token)
    }

    /// Renders `messages` with the chat template as `apply_chat_template(messages,
    /// add_generation_prompt=…, tokenize=False)` does, with the special tokens and this
    /// format's `enable_thinking` as template variables.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let template = self
            .template
            .as_ref()
            .ok_or_else(|| TokenizerError::NoChatTemplate {
                dir: self.dir.clone(),
            })?
            .get()?;
        let mut variables: Vec<(&str, Value)> = self
            .template_tokens
            .iter()
            .map(|(key, token)| (*key, Value::from(token.as_str())))
            .collect();
        if let Some(enable_thinking) = self.format.enable_thinking {
            variables.push(("enable_thinking", Value::from(enable_thinking)));
        }
        template.render(messages, add_generation_prompt, &variables)
    }

    /// Token ids of the rendered chat, as `apply_chat_template(…, tokenize=True)` returns
    /// them: the rendered text encoded without adding special tokens.
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let text = self.render_chat(messages, add_generation_prompt)?;
        self.try_encode(&text, false)
    }

    /// [`Tokenizer::encode_prompt`], with template failures as errors.
    pub fn try_encode_prompt(&self, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
        if self.format.use_chat_template {
            self.encode_chat(&self.messages(prompt, None), true)
        } else {
            self.try_encode(prompt, true)
        }
    }

    /// [`Tokenizer::encode_conversation`], with template failures as errors.
    pub fn try_encode_conversation(
        &self,
        prompt: &str,
        response: &str,
    ) -> Result<Vec<u32>, TokenizerError> {
        if self.format.use_chat_template {
            self.encode_chat(&self.messages(prompt, Some(response)), false)
        } else {
            let mut ids = self.try_encode(prompt, true)?;
            ids.extend(self.try_encode(response, false)?);
            Ok(ids)
        }
    }

    /// `[system?, user(prompt), assistant(response)?]`.
    fn messages(&self, prompt: &str, response: Option<&str>) -> Vec<ChatMessage> {
        let system = self
            .format
            .system_prompt
            .as_deref()
            .map(ChatMessage::system);
        system
            .into_iter()
            .chain([ChatMessage::user(prompt)])
            .chain(response.map(ChatMessage::assistant))
            .collect()
    }

    /// `first` and `second` as one pair with the post-processor's special tokens and token
    /// types (transformers' `tokenizer(first, second)`), untruncated.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<PairEncoding, TokenizerError> {
        let encoding = self
            .backend
            .encode_fast((first, second), true)
            .map_err(|source| TokenizerError::Encode {
                path: self.dir.join("tokenizer.json"),
                source,
            })?;
        Ok(PairEncoding {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            sequence_ids: encoding.get_sequence_ids(),
        })
    }

    fn try_encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.backend
            .encode_fast(text, add_special_tokens)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|source| TokenizerError::Encode {
                path: self.dir.join("tokenizer.json"),
                source,
            })
    }

    /// Panics with the error: the trait's methods cannot return one.
    fn unwrap_or_panic<T>(&self, result: Result<T, TokenizerError>) -> T {
        result.unwrap_or_else(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            panic!("tokenizer of {}: {message}", self.dir.display())
        })
    }
}

/// The id of `eos_token`, else of `generation_config.json`'s first `eos_token_id`.
fn resolve_eos(
    backend: &Backend,
    config: &TokenizerConfig,
    dir: &Path,
) -> Result<u32, TokenizerError> {
    if let Some(id) = config
        .named("eos_token")
        .and_then(|t| backend.token_to_id(&t.content))
    {
        return Ok(id);
    }
    let Some((ids, path)) = &config.generation_eos else {
        return Err(TokenizerError::NoEosToken {
            dir: dir.to_owned(),
        });
    };
    let id = &ids[0];
    if backend.id_to_token(*id).is_none() {
        return Err(TokenizerError::Key {
            path: path.clone(),
            key: "eos_token_id".into(),
            message: format!("id {id} is not in the vocabulary of tokenizer.json"),
        });
    }
    Ok(*id)
}

/// Marks the named and extra special tokens as special added tokens, as transformers does
/// (so they are recognised in text and skipped when decoding). Named tokens must be in the
/// vocabulary; extra tokens that are not get new ids, as in transformers.
fn register_special_tokens(
    backend: &mut Backend,
    config: &TokenizerConfig,
) -> Result<(), TokenizerError> {
    for token in &config.named {
        if backend.token_to_id(&token.content).is_none() {
            return Err(TokenizerError::UnknownToken {
                path: token.path.clone(),
                key: token.key.clone(),
                token: token.content.clone(),
            });
        }
    }
    let mut added: HashSet<String> = backend
        .get_added_tokens_decoder()
        .into_values()
        .map(|t| t.content)
        .collect();
    let new: Vec<AddedToken> = config
        .named
        .iter()
        .chain(&config.extra)
        .filter(|t| added.insert(t.content.clone()))
        .map(|t| AddedToken::from(t.content.clone(), true))
        .collect();
    backend.add_special_tokens(&new);
    Ok(())
}

/// transformers' `clean_up_tokenization`: drops the space a word-level decoder leaves before
/// punctuation and English contractions.
fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
}

/// The trait's methods cannot return errors: encoding and decoding failures of the tokenizers
/// library (which its byte-level, BPE, WordPiece and Unigram models do not produce) and chat
/// template failures (which [`HfTokenizer::with_prompt_format`] rules out for templates that
/// do not depend on the text of the prompt) panic with the error chain. Use the `try_*`
/// methods to handle them.
impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        self.unwrap_or_panic(self.try_encode(text, false))
    }

    fn decode(&self, ids: &[u32]) -> String {
        let text = self
            .backend
            .decode(ids, true)
            .map_err(|source| TokenizerError::Decode {
                path: self.dir.join("tokenizer.json"),
                source,
            });
        let text = self.unwrap_or_panic(text);
        if self.clean_up_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        }
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn eos_id(&self) -> u32 {
        self.eos_id
    }

    fn stop_ids(&self) -> Vec<u32> {
        self.stop_ids.clone()
    }

    fn pad_id(&self) -> u32 {
        self.pad_id
    }

    fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// With the chat template: `apply_chat_template([system?, user], add_generation_prompt
    /// =True)`; without: `tokenizer(prompt)["input_ids"]` (special tokens added by the
    /// post-processor, e.g. a Llama BOS).
    fn encode_prompt(&self, prompt: &str) -> Vec<u32> {
        self.unwrap_or_panic(self.try_encode_prompt(prompt))
    }

    /// With the chat template: `apply_chat_template([system?, user, assistant])`; without:
    /// [`Tokenizer::encode_prompt`] followed by the encoded response.
    fn encode_conversation(&self, prompt: &str, response: &str) -> Vec<u32> {
        self.unwrap_or_panic(self.try_encode_conversation(prompt, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("hello , world ! it ' s fine . is n't it ? we 're done"),
            "hello, world! it's fine. isn't it? we're done"
        );
    }
}
