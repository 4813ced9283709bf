//! The commands shown in README.md and docs/*.md cannot drift from the binary: every `ppo-cli`
//! command in a fenced `sh` block names a real subcommand, only flags that subcommand has, only
//! `--set` keys the configuration has, and `--config` files that exist; every `cargo xtask`
//! subcommand exists. (Commands are checked, not run: most need models, data or minutes.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (file, line, command) of every command line in the fenced `sh` blocks of the docs, with
/// continuation lines joined and comments removed.
fn doc_commands() -> Vec<(String, usize, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (mut in_sh, mut pending, mut start) = (false, String::new(), 0);
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_sh = !in_sh && trimmed == "```sh";
                continue;
            }
            if !in_sh {
                continue;
            }
            let code = strip_comment(line);
            if pending.is_empty() {
                start = i + 1;
            }
            match code.trim_end().strip_suffix('\\') {
                Some(head) => {
                    pending.push_str(head);
                    pending.push(' ');
                }
                None => {
                    pending.push_str(&code);
                    if !pending.trim().is_empty() {
                        out.push((name.clone(), start, pending.trim().to_string()));
                    }
                    pending.clear();
                }
            }
        }
    }
    out
}

/// `line` without a trailing `# comment` (a `#` outside quotes that starts a word).
fn strip_comment(line: &str) -> String {
    let (mut quote, mut prev) = (None, ' ');
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return line[..i].to_string(),
            _ => {}
        }
        prev = c;
    }
    line.to_string()
}

/// Shell words of `command` (quotes removed), without `[optional]` groups.
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            _ => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    let mut kept = Vec::new();
    let mut depth = 0usize;
    for w in out {
        let opens = w.starts_with('[');
        if opens {
            depth += 1;
        }
        if depth == 0 {
            kept.push(w.clone());
        }
        if w.ends_with(']') && depth > 0 {
            depth -= 1;
        }
    }
    kept
}

/// The `--set` keys the configuration knows: every `key =` of configs/default.toml, dotted
/// with its section.
fn config_keys() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("configs/default.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let mut keys = Vec::new();
    for (k, v) in &table {
        match v {
            toml::Value::Table(t) => keys.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
            _ => keys.push(k.clone()),
        }
    }
    keys
}

fn help(sub: &str, cache: &mut HashMap<String, String>) -> String {
    cache
        .entry(sub.to_string())
        .or_insert_with(|| {
            let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
            assert!(
                out.status.success(),
                "ppo-cli {sub} --help failed: is `{sub}` a subcommand?"
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone()
}

/// Problems with one `ppo-cli` command (its words after `ppo-cli`).
fn check_ppo_cli(
    args: &[String],
    keys: &[String],
    cache: &mut HashMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(sub) = args.first() else {
        return vec!["no subcommand".into()];
    };
    let help = help(sub, cache);
    let mut rest = args[1..].iter();
    while let Some(word) = rest.next() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let flag = flag.split('=').next().unwrap();
        let named = format!("--{flag}");
        let has_flag = help.match_indices(&named).any(|(i, _)| {
            help[i + named.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'))
        });
        if !has_flag {
            problems.push(format!("`ppo-cli {sub}` has no --{flag}"));
        }
        match flag {
            "set" => {
                let value = rest.next().cloned().unwrap_or_default();
                let key = value.split('=').next().unwrap_or_default();
                if !keys.iter().any(|k| k == key) {
                    problems.push(format!("--set {value}: no config key `{key}`"));
                }
            }
            "config" => {
                let file = rest.next().cloned().unwrap_or_default();
                if file.starts_with("configs/") && !repo().join(&file).is_file() {
                    problems.push(format!("--config {file}: no such file in the repository"));
                }
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn every_command_in_the_docs_matches_the_binary() {
    let keys = config_keys();
    let xtask_usage = std::fs::read_to_string(repo().join("xtask/src/main.rs")).unwrap();
    let mut cache = HashMap::new();
    let (mut checked, mut problems) = (0, Vec::new());
    for (file, line, command) in doc_commands() {
        let w = words(&command);
        let ppo_cli_args = if let Some(i) = w.iter().position(|x| x == "--")
            && w[..i].windows(2).any(|p| p[0] == "-p" && p[1] == "ppo-cli")
            && w[..i].iter().any(|x| x == "run")
        {
            Some(w[i + 1..].to_vec())
        } else {
            w.iter()
                .position(|x| x == "ppo-cli" || x.ends_with("/ppo-cli"))
                .filter(|&i| !w[..i].iter().any(|x| x == "-p" || x == "build"))
                .map(|i| w[i + 1..].to_vec())
        };
        if let Some(args) = ppo_cli_args {
            checked += 1;
            for p in check_ppo_cli(&args, &keys, &mut cache) {
                problems.push(format!("{file}:{line}: {p}\n    {command}"));
            }
        }
        if let Some(i) = w
            .windows(2)
            .position(|p| p[0] == "cargo" && p[1] == "xtask")
        {
            checked += 1;
            let sub = w.get(i + 2).map(String::as_str).unwrap_or("");
            if sub.is_empty() || !xtask_usage.contains(&format!("\n  {sub} ")) {
                problems.push(format!(
                    "{file}:{line}: no `cargo xtask {sub}`\n    {command}"
                ));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} commands found: is the extraction broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_wrong_flag_key_and_file() {
    let keys = config_keys();
    let mut cache = HashMap::new();
    let args = words(
        "train --output x --sett x --set training.cliprange=0.2 --config configs/nope.toml --max-steps 3 \
         [--seed 1]",
    );
    let problems = check_ppo_cli(&args, &keys, &mut cache);
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].contains("--output"),
        "a prefix of --output-dir is not a flag"
    );
    assert!(problems[1].contains("--sett"));
    assert!(problems[2].contains("training.cliprange"));
    assert!(problems[3].contains("configs/nope.toml"));
    assert_eq!(
        words("a 'b c' \"d\" [--x y] e # f"),
        ["a", "b c", "d", "e", "#", "f"]
    );
    assert_eq!(strip_comment("ppo-cli x   # note"), "ppo-cli x   ");
    assert_eq!(strip_comment("echo '#x'"), "echo '#x'");
}
