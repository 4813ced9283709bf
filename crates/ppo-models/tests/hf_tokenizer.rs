//! `HfTokenizer` against transformers 5: the fixtures of `scripts/make_tokenizer_fixtures.py`
//! hold tiny tokenizers and what `AutoTokenizer` does with them (ids with and without special
//! tokens, decoded text, special token ids, `apply_chat_template` text and ids). Then the
//! errors, each of which must name the file and the key or template at fault.

use std::path::{Path, PathBuf};

use ppo_models::{ChatMessage, HfTokenizer, PromptFormat, Tokenizer, TokenizerError};
use serde::Deserialize;

const CASES: [&str; 3] = ["qwen_chatml", "llama3_bos", "wordpiece_flags"];

#[derive(Deserialize)]
struct Expected {
    len: usize,
    max_id: u32,
    bos_token_id: Option<u32>,
    eos_token_id: u32,
    pad_token_id: Option<u32>,
    encode: Vec<EncodeCase>,
    plain_prompts: Vec<PlainPrompt>,
    chats: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct EncodeCase {
    text: String,
    ids: Vec<u32>,
    ids_with_special_tokens: Vec<u32>,
    decoded: String,
}

#[derive(Deserialize)]
struct PlainPrompt {
    prompt: String,
    response: String,
    prompt_ids: Vec<u32>,
    response_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct ChatCase {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    enable_thinking: Option<bool>,
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

impl ChatCase {
    fn messages(&self) -> Vec<ChatMessage> {
        self.messages
            .iter()
            .map(|m| ChatMessage::new(&m.role, &m.content))
            .collect()
    }

    /// The system prompt, if the conversation opens with one.
    fn system_prompt(&self) -> Option<String> {
        let first = &self.messages[0];
        (first.role == "system").then(|| first.content.clone())
    }

    fn user_prompt(&self) -> &str {
        let user = self.messages.iter().find(|m| m.role == "user");
        &user.expect("every fixture chat has a user turn").content
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name)
}

fn load(name: &str) -> (HfTokenizer, Expected) {
    let dir = fixture(name);
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let expected: Expected = serde_json::from_str(&text).unwrap();
    let tokenizer = HfTokenizer::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    (tokenizer, expected)
}

fn chat_format(system_prompt: Option<String>, enable_thinking: Option<bool>) -> PromptFormat {
    PromptFormat {
        use_chat_template: true,
        system_prompt,
        enable_thinking,
    }
}

#[test]
fn encode_and_decode_match_transformers() {
    for name in CASES {
        let (tok, expected) = load(name);
        assert!(!expected.encode.is_empty());
        for case in &expected.encode {
            let text = &case.text;
            assert_eq!(tok.encode(text), case.ids, "{name}: encode({text:?})");
            // Plain prompt format = tokenizer(text) with add_special_tokens=True.
            assert_eq!(
                tok.encode_prompt(text),
                case.ids_with_special_tokens,
                "{name}: encode_prompt({text:?})"
            );
            assert_eq!(
                tok.decode(&case.ids_with_special_tokens),
                case.decoded,
                "{name}: decode of {text:?}"
            );
        }
    }
}

#[test]
fn special_token_ids_match_transformers() {
    for name in CASES {
        let (tok, expected) = load(name);
        assert_eq!(tok.eos_id(), expected.eos_token_id, "{name}: eos");
        // transformers has no pad token for llama3_bos; the convention is pad = eos.
        let pad = expected.pad_token_id.unwrap_or(expected.eos_token_id);
        assert_eq!(tok.pad_id(), pad, "{name}: pad");
        // BOS counts only where transformers' tokenizer("") really starts with it.
        let empty = expected.encode.iter().find(|c| c.text.is_empty()).unwrap();
        let prepended = expected
            .bos_token_id
            .filter(|&bos| empty.ids_with_special_tokens.first() == Some(&bos));
        assert_eq!(tok.bos_id(), prepended, "{name}: bos");
        assert_eq!(
            tok.vocab_size(),
            expected.max_id as usize + 1,
            "{name}: vocab size"
        );
        assert!(
            tok.vocab_size() >= expected.len,
            "{name}: vocab size below len(tokenizer)"
        );
    }
    let (llama, _) = load("llama3_bos");
    assert_eq!(llama.bos_id(), llama.token_id("<|begin_of_text|>"));
    assert!(llama.bos_id().is_some());
    // A literal special token in the text is that token, not its characters.
    let (qwen, _) = load("qwen_chatml");
    let im_end = qwen.token_id("<|im_end|>").unwrap();
    assert!(qwen.encode("a<|im_end|>b").contains(&im_end));
    assert_eq!(qwen.decode(&qwen.encode("a<|im_end|>b")), "ab");
}

#[test]
fn chat_templates_match_transformers() {
    for name in CASES {
        let (tok, expected) = load(name);
        assert!(!expected.chats.is_empty(), "{name}: no chat cases");
        for case in &expected.chats {
            let tok = tok
                .clone()
                .with_prompt_format(chat_format(None, case.enable_thinking))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let what = format!(
                "{name}: {} messages, add_generation_prompt={}, enable_thinking={:?}",
                case.messages.len(),
                case.add_generation_prompt,
                case.enable_thinking
            );
            let messages = case.messages();
            let text = tok.render_chat(&messages, case.add_generation_prompt);
            assert_eq!(text.unwrap(), case.text, "{what}");
            let ids = tok.encode_chat(&messages, case.add_generation_prompt);
            assert_eq!(ids.unwrap(), case.ids, "{what}");
            assert_eq!(tok.decode(&case.ids), case.decoded, "{what}");
        }
    }
}

#[test]
fn prompts_and_conversations_use_the_chat_template() {
    for name in CASES {
        let (tok, expected) = load(name);
        let (mut prompts, mut conversations) = (0, 0);
        for case in &expected.chats {
            let has_response = case.messages.iter().any(|m| m.role == "assistant");
            let format = chat_format(case.system_prompt(), case.enable_thinking);
            let tok = tok.clone().with_prompt_format(format).unwrap();
            let prompt = case.user_prompt();
            if case.add_generation_prompt {
                assert_eq!(tok.encode_prompt(prompt), case.ids, "{name}: {prompt:?}");
                prompts += 1;
            } else if has_response {
                let response = &case.messages.last().unwrap().content;
                assert_eq!(
                    tok.encode_conversation(prompt, response),
                    case.ids,
                    "{name}: {prompt:?} / {response:?}"
                );
                conversations += 1;
            }
        }
        assert!(prompts > 0 && conversations > 0, "{name}");
    }
}

#[test]
fn plain_prompts_match_tokenizer_call() {
    for name in CASES {
        let (tok, expected) = load(name);
        let tok = tok.with_prompt_format(PromptFormat::default()).unwrap();
        for case in &expected.plain_prompts {
            assert_eq!(tok.encode_prompt(&case.prompt), case.prompt_ids, "{name}");
            let both: Vec<u32> = case
                .prompt_ids
                .iter()
                .chain(&case.response_ids)
                .copied()
                .collect();
            assert_eq!(
                tok.encode_conversation(&case.prompt, &case.response),
                both,
                "{name}"
            );
        }
    }
}

#[test]
fn usable_as_a_boxed_tokenizer() {
    let (tok, expected) = load("qwen_chatml");
    let boxed: Box<dyn Tokenizer> = Box::new(tok);
    assert_eq!(boxed.eos_id(), expected.eos_token_id);
    let handle = std::thread::spawn(move || boxed.encode("如何制作一杯好咖啡？"));
    let ids = handle.join().unwrap();
    let case = expected
        .encode
        .iter()
        .find(|c| c.text == "如何制作一杯好咖啡？")
        .unwrap();
    assert_eq!(ids, case.ids);
}

/// A temporary tokenizer directory with `files` copied from fixture `name`.
fn copy_fixture(name: &str, files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::copy(fixture(name).join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// Rewrites the JSON object in `path` with `edit`.
fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_string(&value).unwrap()).unwrap();
}

/// The error and its sources, as one line.
fn chain(error: &TokenizerError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[test]
fn missing_tokenizer_json_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    let path = dir.path().join("tokenizer.json");
    assert!(
        matches!(&err, TokenizerError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_json_names_the_file() {
    let dir = copy_fixture("qwen_chatml", &["tokenizer.json"]);
    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(&config, "{\"eos_token\": ").unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Json { path, .. } if *path == config),
        "{err:?}"
    );

    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3}").unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::TokenizerJson { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn eos_token_outside_the_vocabulary_is_refused() {
    let dir = copy_fixture("qwen_chatml", &["tokenizer.json", "tokenizer_config.json"]);
    let config = dir.path().join("tokenizer_config.json");
    edit_json(&config, |c| {
        c.insert("eos_token".into(), "<|nope|>".into());
    });
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    match &err {
        TokenizerError::UnknownToken { path, key, token } => {
            assert_eq!(
                (path, key.as_str(), token.as_str()),
                (&config, "eos_token", "<|nope|>")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("eos_token") && err.to_string().contains("<|nope|>"));

    edit_json(&config, |c| {
        c.insert("pad_token".into(), serde_json::json!(["<|endoftext|>"]));
    });
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Key { key, .. } if key == "pad_token"),
        "{err:?}"
    );
}

#[test]
fn eos_falls_back_to_generation_config() {
    let dir = copy_fixture("qwen_chatml", &["tokenizer.json", "tokenizer_config.json"]);
    edit_json(&dir.path().join("tokenizer_config.json"), |c| {
        c.remove("eos_token");
        c.remove("pad_token");
    });
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(&err, TokenizerError::NoEosToken { .. }), "{err:?}");
    assert!(err.to_string().contains("generation_config.json"), "{err}");

    let generation = dir.path().join("generation_config.json");
    std::fs::write(
        &generation,
        r#"{"eos_token_id": [2, 0], "bos_token_id": null}"#,
    )
    .unwrap();
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!((tok.eos_id(), tok.pad_id()), (2, 2));
    assert_eq!(tok.stop_ids(), [2, 0], "every eos_token_id ends a response");

    std::fs::write(&generation, r#"{"eos_token_id": 100000}"#).unwrap();
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Key { path, key, .. } if *path == generation && key == "eos_token_id"),
        "{err:?}"
    );
}

#[test]
fn every_generation_config_eos_id_stops_besides_the_tokenizers_eos() {
    // Qwen3: eos_token <|im_end|> in the tokenizer config, and generation_config.json's
    // eos_token_id lists <|im_end|> and <|endoftext|>.
    let dir = copy_fixture("qwen_chatml", &["tokenizer.json", "tokenizer_config.json"]);
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    let eos = tok.eos_id();
    assert_eq!(tok.stop_ids(), [eos]);
    std::fs::write(
        dir.path().join("generation_config.json"),
        format!(r#"{{"eos_token_id": [{eos}, 3]}}"#),
    )
    .unwrap();
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.eos_id(), eos);
    assert_eq!(tok.stop_ids(), [eos, 3]);
}

#[test]
fn chat_template_required_only_when_used() {
    let dir = copy_fixture("llama3_bos", &["tokenizer.json", "tokenizer_config.json"]);
    edit_json(&dir.path().join("tokenizer_config.json"), |c| {
        c.remove("chat_template");
    });
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert!(!tok.has_chat_template());
    let err = tok
        .clone()
        .with_prompt_format(chat_format(None, None))
        .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::NoChatTemplate { dir: d } if d == dir.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
    let err = tok
        .render_chat(&[ChatMessage::user("hi")], true)
        .unwrap_err();
    assert!(matches!(err, TokenizerError::NoChatTemplate { .. }));
    // Without the template the tokenizer still works.
    let tok = tok.with_prompt_format(PromptFormat::default()).unwrap();
    assert_eq!(tok.encode_prompt("hi")[0], tok.bos_id().unwrap());
}

#[test]
fn template_syntax_error_names_the_template_file() {
    let dir = copy_fixture("qwen_chatml", &["tokenizer.json", "tokenizer_config.json"]);
    let file = dir.path().join("chat_template.jinja");
    std::fs::write(&file, "{% for m in messages %}{{ m.content }\n").unwrap();
    // The tokenizer loads; the template is reported when it is needed.
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert!(tok.has_chat_template());
    assert!(!tok.encode("hi").is_empty());
    let err = tok.with_prompt_format(chat_format(None, None)).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::TemplateSyntax { path, .. } if *path == file),
        "{err:?}"
    );
    let message = chain(&err);
    assert!(
        message.contains("chat_template.jinja") && message.contains("syntax error"),
        "{message}"
    );

    // A template in tokenizer_config.json is reported against that file.
    std::fs::remove_file(&file).unwrap();
    let config = dir.path().join("tokenizer_config.json");
    edit_json(&config, |c| {
        c.insert("chat_template".into(), "{% if %}".into());
    });
    let err = HfTokenizer::from_dir(dir.path())
        .and_then(|t| t.render_chat(&[ChatMessage::user("hi")], true))
        .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::TemplateSyntax { path, .. } if *path == config),
        "{err:?}"
    );
}

#[test]
fn template_exceptions_surface_when_the_format_is_set() {
    // The qwen template refuses a system message that is not first; the Llama one refuses
    // roles other than user and assistant.
    let (tok, _) = load("qwen_chatml");
    let messages = [ChatMessage::user("a"), ChatMessage::system("b")];
    let err = tok.render_chat(&messages, true).unwrap_err();
    assert!(matches!(err, TokenizerError::TemplateRender { .. }));
    assert!(
        chain(&err).contains("The system message must come first."),
        "{}",
        chain(&err)
    );

    let dir = copy_fixture("qwen_chatml", &["tokenizer.json", "tokenizer_config.json"]);
    let template = "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ messages[-1].content }}";
    std::fs::write(dir.path().join("chat_template.jinja"), template).unwrap();
    let tok = HfTokenizer::from_dir(dir.path()).unwrap();
    assert!(
        tok.clone()
            .with_prompt_format(chat_format(None, None))
            .is_ok()
    );
    let err = tok
        .with_prompt_format(chat_format(Some("be brief".into()), None))
        .unwrap_err();
    let message = chain(&err);
    assert!(
        message.contains("System role not supported") && message.contains("chat_template.jinja"),
        "{message}"
    );
}

#[test]
fn chat_template_list_needs_a_default() {
    let dir = copy_fixture(
        "wordpiece_flags",
        &["tokenizer.json", "tokenizer_config.json"],
    );
    let config = dir.path().join("tokenizer_config.json");
    edit_json(&config, |c| {
        c.insert(
            "chat_template".into(),
            serde_json::json!([{"name": "rag", "template": "x"}]),
        );
    });
    let err = HfTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Key { path, key, .. } if *path == config && key == "chat_template"),
        "{err:?}"
    );
}
