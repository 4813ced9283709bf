//! Chat templates rendered as transformers renders them: Jinja with `trim_blocks` and
//! `lstrip_blocks`, loop controls, Python's string and dict methods, and the globals
//! transformers adds (`raise_exception`, `strftime_now`, a `tojson` that writes what Python's
//! `json.dumps` writes, without HTML escaping). `{% generation %}` blocks (assistant-mask
//! markers) render their body.
//!
//! Known differences from Jinja2: values converted to text by `~` or `|string` print `none`,
//! `true`, `false` (`{{ … }}` output prints Python's `None`, `True`, `False`), and lists print
//! with double quotes.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};

use super::TokenizerError;

/// One message of a conversation, as chat templates read it (`message.role`,
/// `message.content`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The template's name inside its environment.
const NAME: &str = "chat_template";

/// A compiled chat template and the file it came from.
#[derive(Clone, Debug)]
pub(super) struct ChatTemplate {
    env: Environment<'static>,
    path: PathBuf,
}

/// A chat template as loaded: compiled, or the syntax error it gave (reported when the
/// template is used, so that a template the renderer cannot parse does not stop the tokenizer
/// from being used without it).
#[derive(Clone, Debug)]
pub(super) enum LoadedTemplate {
    /// Ready to render.
    Ready(Box<ChatTemplate>),
    /// Did not parse.
    Broken {
        /// The file holding it.
        path: PathBuf,
        /// The parser's error.
        error: Arc<Error>,
    },
}

impl LoadedTemplate {
    /// Compiles `source`, read from `path`.
    pub fn load(source: &str, path: PathBuf) -> Self {
        match ChatTemplate::compile(source, path.clone()) {
            Ok(template) => Self::Ready(Box::new(template)),
            Err(error) => Self::Broken {
                path,
                error: Arc::new(error),
            },
        }
    }

    /// The template, or its syntax error.
    pub fn get(&self) -> Result<&ChatTemplate, TokenizerError> {
        match self {
            Self::Ready(template) => Ok(template),
            Self::Broken { path, error } => Err(TokenizerError::TemplateSyntax {
                path: path.clone(),
                source: Arc::clone(error),
            }),
        }
    }
}

impl ChatTemplate {
    /// Parses `source` in an environment configured like transformers' sandbox.
    fn compile(source: &str, path: PathBuf) -> Result<Self, Error> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.trim_blocks(true).lstrip_blocks(true);
        env.set_syntax(syntax.build()?);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(python_formatter);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, rewrite_generation_tags(source).into_owned())?;
        Ok(Self { env, path })
    }

    /// Renders `messages` with the variables transformers passes: `messages`, `tools` and
    /// `documents` (none), `add_generation_prompt`, then `variables` (special tokens,
    /// `enable_thinking`).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        variables: &[(&str, Value)],
    ) -> Result<String, TokenizerError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let fixed = [
            ("messages", Value::from(messages)),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
        ];
        let context =
            Value::from_pairs(variables.iter().map(|(k, v)| (*k, v.clone())).chain(fixed));
        let render_error = |source| TokenizerError::TemplateRender {
            path: self.path.clone(),
            source,
        };
        self.env
            .get_template(NAME)
            .and_then(|t| t.render(context))
            .map_err(render_error)
    }
}

/// Prints `None`, `True` and `False` as Python does; everything else as MiniJinja does.
fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::None => "None",
        ValueKind::Bool if value.is_true() => "True",
        ValueKind::Bool => "False",
        _ => return minijinja::escape_formatter(out, state, value),
    };
    out.write_str(text).map_err(Error::from)
}

/// `raise_exception(message)`: fails the rendering with `message`.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the local time formatted like Python's `strftime`.
fn strftime_now(format: String) -> Result<String, Error> {
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {format:?}"),
        )
    })?;
    Ok(out)
}

/// Replaces `{% generation %}` / `{% endgeneration %}` (transformers' assistant-mask
/// extension) by an always-true `if` block, keeping whitespace control, so that the body
/// renders exactly as transformers renders it.
fn rewrite_generation_tags(source: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = source[search..].find("{%") {
        let start = search + found;
        search = start + 2;
        let rest = &source[search..];
        let marker = rest.starts_with(['-', '+']) as usize;
        let inner = &rest[marker..];
        let keyword_at = inner.len() - inner.trim_start().len();
        let after_space = &inner[keyword_at..];
        let keyword_len = after_space
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after_space.len());
        let replacement = match &after_space[..keyword_len] {
            "generation" => "if true",
            "endgeneration" => "endif",
            _ => continue,
        };
        let tail = after_space[keyword_len..].trim_start();
        let tail = tail.strip_prefix(['-', '+']).unwrap_or(tail);
        if !tail.starts_with("%}") {
            continue;
        }
        let keyword_start = search + marker + keyword_at;
        out.push_str(&source[copied..keyword_start]);
        out.push_str(replacement);
        copied = keyword_start + keyword_len;
    }
    if copied == 0 {
        Cow::Borrowed(source)
    } else {
        out.push_str(&source[copied..]);
        Cow::Owned(out)
    }
}

/// How `json.dumps` lays out its output.
struct JsonStyle {
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, each overridable by keyword.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(usize::try_from(n).unwrap_or(0))),
            (None, Some(s)) => Some(s.to_owned()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                ));
            }
        },
    };
    let separators: Option<Value> = kwargs.get("separators")?;
    let (item_separator, key_separator) = match separators.filter(|v| !v.is_none()) {
        Some(v) => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .filter(|p: &Vec<String>| p.len() == 2)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    )
                })?;
            (parts[0].clone(), parts[1].clone())
        }
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let style = JsonStyle {
        indent,
        item_separator,
        key_separator,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, value, &style, 0)?;
    Ok(out)
}

fn not_serializable(value: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "tojson: a value of kind {} is not JSON serializable",
            value.kind()
        ),
    )
}

fn write_json(
    out: &mut String,
    value: &Value,
    style: &JsonStyle,
    depth: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.is_integer() => out.push_str(&value.to_string()),
        ValueKind::Number => out.push_str(&python_float(f64::try_from(value.clone())?)),
        ValueKind::String => write_json_string(out, value.as_str().unwrap_or_default(), style),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('[', ']'), items.len(), style, depth, |out, i| {
                write_json(out, &items[i], style, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = value
                .try_iter()?
                .map(|key| {
                    let item = value.get_item(&key)?;
                    let key = match key.kind() {
                        ValueKind::String => key.as_str().unwrap_or_default().to_owned(),
                        ValueKind::None => "null".to_owned(),
                        ValueKind::Bool | ValueKind::Number => {
                            let mut k = String::new();
                            write_json(&mut k, &key, style, 0)?;
                            k
                        }
                        _ => return Err(not_serializable(&key)),
                    };
                    Ok((key, item))
                })
                .collect::<Result<_, Error>>()?;
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, ('{', '}'), entries.len(), style, depth, |out, i| {
                write_json_string(out, &entries[i].0, style);
                out.push_str(&style.key_separator);
                write_json(out, &entries[i].1, style, depth + 1)
            })?;
        }
        _ => return Err(not_serializable(value)),
    }
    Ok(())
}

/// Writes `n` items between `brackets`, separated and indented as `json.dumps` does.
fn write_container(
    out: &mut String,
    brackets: (char, char),
    n: usize,
    style: &JsonStyle,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(brackets.0);
    if n > 0 {
        for i in 0..n {
            if i > 0 {
                out.push_str(&style.item_separator);
            }
            if let Some(indent) = &style.indent {
                out.push('\n');
                out.push_str(&indent.repeat(depth + 1));
            }
            item(out, i)?;
        }
        if let Some(indent) = &style.indent {
            out.push('\n');
            out.push_str(&indent.repeat(depth));
        }
    }
    out.push(brackets.1);
    Ok(())
}

fn write_json_string(out: &mut String, s: &str, style: &JsonStyle) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (style.ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `repr(float)` of Python: shortest round-trip digits, exponent form below 1e-4 and from
/// 1e16 on.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` output has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    if f == 0.0 || (-4..16).contains(&exponent) {
        let plain = f.to_string();
        if plain.contains('.') {
            plain
        } else {
            plain + ".0"
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, ctx: Value) -> Result<String, Error> {
        let template = ChatTemplate::compile(source, PathBuf::from("test.jinja"))?;
        template.env.get_template(NAME)?.render(ctx)
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let value = Value::from_pairs([
            (
                "b",
                Value::from(vec![Value::from(1), Value::from(2.5), Value::from(1e-5)]),
            ),
            ("a", Value::from("é \"<tag>\"\n")),
            ("c", Value::from(())),
        ]);
        let ctx = Value::from_pairs([("x", value)]);
        // json.dumps(x, ensure_ascii=False) and with indent=2, sort_keys=True.
        assert_eq!(
            render("{{ x | tojson }}", ctx.clone()).unwrap(),
            r#"{"b": [1, 2.5, 1e-05], "a": "é \"<tag>\"\n", "c": null}"#
        );
        assert_eq!(
            render("{{ x | tojson(indent=2, sort_keys=true) }}", ctx.clone()).unwrap(),
            "{\n  \"a\": \"é \\\"<tag>\\\"\\n\",\n  \"b\": [\n    1,\n    2.5,\n    1e-05\n  ],\n  \"c\": null\n}"
        );
        assert_eq!(
            render("{{ x.a | tojson(ensure_ascii=true) }}", ctx).unwrap(),
            r#""\u00e9 \"<tag>\"\n""#
        );
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(-0.0), "-0.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(123.456), "123.456");
    }

    #[test]
    fn prints_python_literals_and_raises() {
        let ctx = Value::from_pairs([("t", Value::from(true)), ("n", Value::from(()))]);
        assert_eq!(
            render("{{ t }} {{ n }} {{ not t }}", ctx).unwrap(),
            "True None False"
        );
        let err = render("{{ raise_exception('no system role') }}", Value::from(())).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }

    #[test]
    fn strftime_now_formats_the_current_date() {
        let year = render("{{ strftime_now('%Y') }}", Value::from(())).unwrap();
        assert_eq!(year, chrono::Local::now().format("%Y").to_string());
    }

    #[test]
    fn generation_blocks_render_their_body() {
        let source = "{% for m in messages %}\n{%- generation -%}\n  [{{ m }}]\n{%- endgeneration %}\n{% endfor %}";
        assert_eq!(
            rewrite_generation_tags(source),
            "{% for m in messages %}\n{%- if true -%}\n  [{{ m }}]\n{%- endif %}\n{% endfor %}"
        );
        let ctx = Value::from_pairs([("messages", Value::from(vec!["a", "b"]))]);
        assert_eq!(render(source, ctx).unwrap(), "[a][b]");
        assert!(matches!(
            rewrite_generation_tags("{% if x %}"),
            Cow::Borrowed(_)
        ));
    }
}
