//! Reading a configuration: the embedded default ⊕ a base (a checkpoint's snapshot) ⊕ the
//! user's file ⊕ `--set` overrides, remembering where each key was written so that an error
//! names the user's file and line, or the `--set` argument.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::aliases::{did_you_mean, with_suggestion};
use super::{DEFAULT_TOML, RawConfig, Resolved, resolve};

/// Merges `overlay` into `base`, table by table.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies one `section.key=value` override (`--set`); the value is read as TOML, or else as a
/// string. Returns the dotted key.
fn apply_set(table: &mut toml::Table, assignment: &str) -> Result<String> {
    let (path, value) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment:?}: expected section.key=value"))?;
    let value: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.trim().into()),
    };
    let keys: Vec<&str> = path.trim().split('.').collect();
    let (last, sections) = keys.split_last().context("--set: empty key")?;
    let mut current = table;
    for section in sections {
        current = match current.get_mut(*section) {
            Some(toml::Value::Table(t)) => t,
            _ => bail!(with_suggestion(
                format!("--set {path}: unknown section `{section}`"),
                path.trim()
            )),
        };
    }
    if !current.contains_key(*last) {
        bail!(with_suggestion(
            format!("--set {path}: unknown key `{path}`"),
            path.trim()
        ));
    }
    current.insert((*last).to_string(), value);
    Ok(path.trim().to_owned())
}

/// Default ⊕ file ⊕ overrides → validated config. Errors name the key.
pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Resolved> {
    resolve(load_raw(None, file, sets)?)
}

/// `base` (TOML text, e.g. a checkpoint's config snapshot) ⊕ file ⊕ overrides, resolved.
pub fn load_over(
    base: &str,
    base_name: &str,
    file: Option<&Path>,
    sets: &[String],
) -> Result<Resolved> {
    resolve(load_raw(Some((base, base_name)), file, sets)?)
}

/// The embedded default ⊕ `base` ⊕ file ⊕ overrides, as written (not validated). Keys added
/// to ppo-rs after `base` was written take their default.
pub fn load_raw(
    base: Option<(&str, &str)>,
    file: Option<&Path>,
    sets: &[String],
) -> Result<RawConfig> {
    let mut table: toml::Table = DEFAULT_TOML
        .parse()
        .context("embedded default config is not valid TOML")?;
    // Where each key's value came from, so that an error names the user's line, not ours.
    let mut origins: Origins = BTreeMap::new();
    if let Some((text, name)) = base {
        let overlay: toml::Table = text
            .parse()
            .with_context(|| format!("{name} is not valid TOML"))?;
        record_origins(
            "",
            &overlay,
            &Origin::Text(name.to_owned(), text.to_owned()),
            &mut origins,
        );
        merge(&mut table, overlay);
    }
    if let Some(path) = file {
        let text = fs_err::read_to_string(path)?;
        let overlay: toml::Table = text
            .parse()
            .with_context(|| format!("failed to parse config file {}", path.display()))?;
        let origin = Origin::Text(path.display().to_string(), text);
        record_origins("", &overlay, &origin, &mut origins);
        merge(&mut table, overlay);
    }
    for set in sets {
        let key = apply_set(&mut table, set)?;
        origins.insert(key, Origin::Set(set.clone()));
    }
    // Re-read as text: the error's position in it says which key is wrong.
    let merged = toml::to_string(&table).context("failed to merge configuration")?;
    toml::from_str(&merged).map_err(|e| {
        let key = e.span().and_then(|span| key_at(&merged, span.start));
        let message = e.message().trim();
        match key {
            Some(key) => {
                let origin = origins
                    .get(&key)
                    .map_or_else(|| "the embedded default".to_owned(), |o| o.describe(&key));
                let error = format!("invalid config key `{key}` ({origin}): {message}");
                if message.starts_with("unknown field") {
                    anyhow::anyhow!(with_suggestion(error, &key))
                } else {
                    anyhow::anyhow!(error)
                }
            }
            None => match e.span().and_then(|span| header_at(&merged, span.start)) {
                Some(section) if message.starts_with("unknown field") => {
                    anyhow::anyhow!(unknown_section(&table, &origins, &section, message))
                }
                _ => anyhow::anyhow!("invalid configuration: {e}"),
            },
        }
    })
}

/// The error for a section `[section]` of no known name: where its first key was written, and
/// the key each of its keys may have meant.
fn unknown_section(table: &toml::Table, origins: &Origins, section: &str, message: &str) -> String {
    let mut keys = Vec::new();
    let mut current = Some(table);
    for name in section.split('.') {
        current = current
            .and_then(|t| t.get(name))
            .and_then(toml::Value::as_table);
    }
    if let Some(t) = current {
        flatten_keys(section, t, &mut keys);
    }
    let origin = keys
        .first()
        .and_then(|k| origins.get(k).map(|o| o.describe(k)))
        .unwrap_or_else(|| "the embedded default".to_owned());
    let mut error = format!("invalid config section `[{section}]` ({origin}): {message}");
    for key in &keys {
        if let Some(suggestion) = did_you_mean(key) {
            error.push_str(&format!("; `{key}`: {suggestion}"));
        }
    }
    error
}

/// The dotted keys (under `prefix`) of every value of `table`.
fn flatten_keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = format!("{prefix}.{k}");
        match v {
            toml::Value::Table(t) => flatten_keys(&key, t, out),
            _ => out.push(key),
        }
    }
}

/// The section a header line (`[a.b]`) of the TOML `text` that holds byte `offset` opens.
fn header_at(text: &str, offset: usize) -> Option<String> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        if (start..end).contains(&offset) {
            return section_of(line).map(str::to_owned);
        }
        start = end;
    }
    None
}

/// Where a configuration value was written.
#[derive(Clone, Debug)]
enum Origin {
    /// A TOML text (a `--config` file, a checkpoint's snapshot): its name and contents.
    Text(String, String),
    /// A `--set` argument.
    Set(String),
}

type Origins = BTreeMap<String, Origin>;

impl Origin {
    /// "FILE line N" or "--set ARG".
    fn describe(&self, key: &str) -> String {
        match self {
            Self::Set(arg) => format!("--set {arg}"),
            Self::Text(name, text) => match line_of(text, key) {
                Some(line) => format!("{name} line {line}"),
                None => name.clone(),
            },
        }
    }
}

/// Records `origin` for every key of `table` (dotted, under `prefix`); an array of tables
/// counts as one key.
fn record_origins(prefix: &str, table: &toml::Table, origin: &Origin, out: &mut Origins) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => record_origins(&key, t, origin, out),
            _ => {
                out.insert(key, origin.clone());
            }
        }
    }
}

/// The section header a TOML line opens (`[a.b]` or `[[a.b]]`), if it is one.
fn section_of(line: &str) -> Option<&str> {
    let line = line.trim();
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    inner
        .or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(str::trim)
}

/// The key a `key = value` line sets, if it is one.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('#')).then_some(key)
}

/// Each line of the TOML `text`: its byte range and the dotted key it sets, if it sets one.
fn keyed_lines(text: &str) -> impl Iterator<Item = (Range<usize>, Option<String>)> + '_ {
    let mut section = String::new();
    let mut start = 0;
    text.split_inclusive('\n').map(move |line| {
        let range = start..start + line.len();
        start = range.end;
        let key = match section_of(line) {
            Some(s) => {
                section = s.to_owned();
                None
            }
            None => key_of(line).map(|k| match section.as_str() {
                "" => k.to_owned(),
                s => format!("{s}.{k}"),
            }),
        };
        (range, key)
    })
}

/// The dotted key whose line holds byte `offset` of the TOML `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    keyed_lines(text)
        .find(|(range, _)| range.contains(&offset))?
        .1
}

/// The 1-based line of `text` that sets the dotted `key`.
fn line_of(text: &str, key: &str) -> Option<usize> {
    keyed_lines(text)
        .position(|(_, k)| k.as_deref() == Some(key))
        .map(|i| i + 1)
}

/// Dotted keys whose values differ between two configs, in file order.
pub fn differing_keys(a: &RawConfig, b: &RawConfig) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            v => out.push((prefix.to_string(), v.to_string())),
        }
    }
    let flat = |c: &RawConfig| {
        let mut out = Vec::new();
        if let Ok(v) = toml::Value::try_from(c) {
            flatten("", &v, &mut out);
        }
        out
    };
    let (fa, fb) = (flat(a), flat(b));
    let mut keys: Vec<String> = fa
        .iter()
        .filter(|(k, v)| fb.iter().find(|(kb, _)| kb == k).map(|(_, vb)| vb) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(
        fb.iter()
            .filter(|(k, _)| !fa.iter().any(|(ka, _)| ka == k))
            .map(|(k, _)| k.clone()),
    );
    keys
}

/// Keys a resumed run may not change: the model shape, the seed (the frozen reference and the
/// data order are rebuilt from it), the data and its split, and the advantage estimator (it
/// decides whether a critic exists).
pub fn is_resume_locked(key: &str) -> bool {
    key.starts_with("model.")
        || key == "seed"
        || key == "algorithm.advantage_estimator"
        || key.starts_with("data.")
        || key == "eval.eval_split"
        || matches!(
            key,
            "lora.rank" | "lora.alpha" | "lora.target_modules" | "lora.critic"
        )
}
