//! The commands shown in README.md and docs/*.md cannot drift from the binary.
//!
//! - Checked: every `ppo-cli` command in a fenced `sh` block names a real subcommand, only flags
//!   that subcommand has, only `--set` keys the configuration has, and `--config` files that
//!   exist; every `cargo xtask` subcommand exists.
//! - Executed: the same blocks run in order, README.md first, then docs/*.md, in one scratch
//!   directory, as a reader would paste them (see `the_docs_commands_run_offline_in_order` for
//!   the few substitutions and the commands that cannot run offline, each with its reason).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ppo-cli");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a reader of the docs is told to do, in order.
#[derive(Debug)]
enum Step {
    /// A command line of a fenced `sh` block (continuation lines joined, comment removed), with
    /// the output the docs show for it: a `# {…}` comment line right after it.
    Command {
        line: usize,
        text: String,
        expected: Option<String>,
    },
    /// A fenced block of another language whose first line names the file it is
    /// (`# remote.toml`, `# reward_server.py: …`): the reader saves it under that name.
    File { name: String, text: String },
}

/// README.md, then docs/*.md by name.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The file name a block's first line gives: `# NAME` or `# NAME: …` with a known extension.
fn named_file(first_line: &str) -> Option<String> {
    let rest = first_line.trim().strip_prefix("# ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || "._-".contains(*c))
        .collect();
    let tail = &rest[name.len()..];
    let ext = name.rsplit_once('.')?.1;
    (["toml", "py", "json", "jsonl"].contains(&ext) && (tail.is_empty() || tail.starts_with(':')))
        .then_some(name)
}

/// The steps of one markdown text.
fn doc_steps(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    // The open fence's language, and the lines of a non-`sh` block so far.
    let (mut fence, mut block): (Option<String>, Vec<&str>) = (None, Vec::new());
    let (mut pending, mut start) = (String::new(), 0);
    // Whether the previous line ended a command (a `# {…}` line may follow it).
    let mut after_command = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let follows_command = std::mem::take(&mut after_command);
        if let Some(info) = trimmed.strip_prefix("```") {
            match fence.take() {
                None => fence = Some(info.trim().to_string()),
                Some(lang) => {
                    if lang != "sh"
                        && let Some(name) = block.first().and_then(|l| named_file(l))
                    {
                        steps.push(Step::File {
                            name,
                            text: block.join("\n") + "\n",
                        });
                    }
                    block.clear();
                }
            }
            continue;
        }
        match fence.as_deref() {
            None => continue,
            Some("sh") => {}
            Some(_) => {
                block.push(line);
                continue;
            }
        }
        let code = strip_comment(line);
        if pending.is_empty() && code.trim().is_empty() {
            // A comment line right after a command: `# {…}` is its output.
            if let (Some(shown), Some(Step::Command { expected, .. })) =
                (trimmed.strip_prefix("# "), steps.last_mut())
                && shown.starts_with('{')
                && follows_command
            {
                *expected = Some(shown.to_string());
            }
            continue;
        }
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
                steps.push(Step::Command {
                    line: start,
                    text: pending.trim().to_string(),
                    expected: None,
                });
                pending.clear();
                after_command = true;
            }
        }
    }
    steps
}

/// (file, steps) for README.md and docs/*.md.
fn all_steps() -> Vec<(String, Vec<Step>)> {
    doc_files()
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            (name, doc_steps(&text))
        })
        .collect()
}

/// (file, line, command) of every command line in the fenced `sh` blocks of the docs.
fn doc_commands() -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for (file, steps) in all_steps() {
        for step in steps {
            if let Step::Command { line, text, .. } = step {
                out.push((file.clone(), line, text));
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

/// Commands of the docs that cannot run offline in a test, with the reason; each must still
/// match a command in the docs (a stale entry fails the test).
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo test",
        "the test suite: this test is part of that run",
    ),
    (
        "huggingface-cli download",
        "downloads from the Hugging Face hub: the walk starts with stand-ins for what it \
         downloads (`stand_ins`)",
    ),
    (
        "pip install",
        "installs from PyPI (network, GBs): .ci/run installs what the tests need",
    ),
    ("scripts/install-", "installs from PyPI, as above"),
    (
        "python3 -m venv",
        "a virtual environment for the installs above",
    ),
    (
        "mlflow",
        "an MLflow server: crates/ppo-log/tests/mlflow.rs trains against a real one",
    ),
    ("tracking.enabled=true", "needs the MLflow server above"),
    (
        "tensorboard --logdir",
        "TensorBoard's web UI: train_tensorboard.rs reads the event files with TensorBoard's reader",
    ),
    (
        "cargo xtask bench",
        "benchmarks, minutes each: `cargo xtask bench`, not the tests",
    ),
    (
        "--features tch",
        "the LibTorch build: scripts/test-tch.sh builds it and runs its tests",
    ),
    ("LD_LIBRARY_PATH", "part of the LibTorch set-up above"),
    (
        "./target/release/ppo-cli",
        "the binary of the LibTorch build above",
    ),
    ("scripts/gpu-check.sh", "needs a GPU machine"),
    (
        "scripts/make_data_fixtures.py",
        "rewrites the committed data fixtures (and needs pyarrow from PyPI)",
    ),
];

/// `PATH` shims that run what a reader runs with the binary under test: `ppo-cli` and
/// `cargo run --release -p ppo-cli -- …` run it; `cargo xtask plot|clean-checkpoints …` run the
/// binary's own `plot` / `clean-checkpoints` (the same library code, README "Resume, clean,
/// plot"). The one change to a command: a `train` that starts a run (no `--resume PATH`, no
/// existing run in `--output-dir`, or `--resume never`) without `--max-steps` or `--stop-after`
/// gets `--max-steps 2`: here what matters is that each command works end to end, not the
/// minutes of a full run (the main job's). A resume keeps the length its run was given.
fn write_shims(bin_dir: &Path) {
    std::fs::create_dir_all(bin_dir).unwrap();
    let ppo_cli = format!(
        r#"#!/bin/sh
if [ "$1" = train ]; then
    cap=yes prev= fresh= dir_has_run=
    for a in "$@"; do
        case "$a" in --max-steps|--max-steps=*|--stop-after|--stop-after=*) cap=no ;; esac
        case "$prev" in
            --resume) if [ "$a" = never ]; then fresh=yes; else cap=no; fi ;;
            --output-dir) [ -d "$a/checkpoints" ] && dir_has_run=yes ;;
        esac
        prev=$a
    done
    [ -n "$dir_has_run" ] && [ -z "$fresh" ] && cap=no
    [ $cap = yes ] && set -- "$@" --max-steps 2
fi
exec '{BIN}' "$@"
"#
    );
    let cargo = r#"#!/bin/sh
case "$*" in
    "run --release -p ppo-cli -- "*) shift 5; exec ppo-cli "$@" ;;
    "xtask plot "*|"xtask clean-checkpoints "*) shift; exec ppo-cli "$@" ;;
esac
echo "doc_commands: 'cargo $*' is not a command the docs walk runs" >&2
exit 97
"#;
    for (name, text) in [("ppo-cli", ppo_cli.as_str()), ("cargo", cargo)] {
        let path = bin_dir.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Writes a one-row-group parquet file with UTF-8 columns `question` and `answer`.
fn write_parquet(path: &Path, rows: &[(String, String)]) {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    let schema = parse_message_type(
        "message schema { REQUIRED BYTE_ARRAY question (UTF8); REQUIRED BYTE_ARRAY answer (UTF8); }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column_index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        let values: Vec<ByteArray> = rows
            .iter()
            .map(|(q, a)| ByteArray::from(if column_index == 0 { q } else { a }.as_str()))
            .collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        column.close().unwrap();
        column_index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

/// What the skipped hub downloads would have put in the scratch directory, made offline:
/// `models/Qwen3-0.6B` is a one-layer, width-32 version of the built-in Qwen3-style model after
/// one iteration, exported in Hugging Face format (byte tokenizer), with the ChatML template of
/// the tokenizer fixtures and a 1024-token context; `data/gsm8k/main/{train,test}-00000-of-00001
/// .parquet` hold 40 and 16 GSM8K-style problems (`question`, `answer` ending in `#### N`).
fn stand_ins(dir: &Path) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["train", "--max-steps", "1", "--output-dir", ".stand-in"])
        .args(
            [
                "model.max_position_embeddings=1024",
                "model.hidden_size=32",
                "model.intermediate_size=64",
                "model.num_hidden_layers=1",
                "model.head_dim=8",
                "plots=false",
            ]
            .iter()
            .flat_map(|kv| ["--set", kv]),
        )
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the stand-in model's run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = dir.join("models/Qwen3-0.6B");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(dir.join(".stand-in/final/policy")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        repo().join("crates/ppo-models/tests/fixtures/tokenizer/qwen_chatml/chat_template.jinja"),
        model.join("chat_template.jinja"),
    )
    .unwrap();
    std::fs::remove_dir_all(dir.join(".stand-in")).unwrap();
    let data = dir.join("data/gsm8k/main");
    std::fs::create_dir_all(&data).unwrap();
    let problems = |range: std::ops::Range<u32>| -> Vec<(String, String)> {
        range
            .map(|i| {
                let (a, b) = (3 + i % 7, 2 + i / 7);
                (
                    format!("Sam has {a} boxes of {b} pencils. How many pencils is that?"),
                    format!(
                        "{a} boxes of {b} pencils is {a}*{b}=<<{a}*{b}={p}>>{p}.\n#### {p}",
                        p = a * b
                    ),
                )
            })
            .collect()
    };
    write_parquet(&data.join("train-00000-of-00001.parquet"), &problems(0..40));
    write_parquet(&data.join("test-00000-of-00001.parquet"), &problems(40..56));
}

/// A command of the docs run by `sh` in `dir`; its output goes to `log`.
fn run_shell(dir: &Path, path_var: &str, command: &str, log: &Path) -> std::process::Child {
    let output = std::fs::File::create(log).unwrap();
    Command::new("sh")
        .current_dir(dir)
        .args(["-c", command])
        .env("PATH", path_var)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap()
}

/// Whether two JSON texts hold the same values, numbers equal to 1e-5 relative (a score printed
/// by another CPU's SIMD path may differ in the last digits).
fn same_json(printed: &str, shown: &str) -> bool {
    fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value::{Array, Number, Object};
        match (a, b) {
            (Number(x), Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-30)
            }
            (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b)),
            (Object(x), Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
            }
            _ => a == b,
        }
    }
    match (
        serde_json::from_str::<serde_json::Value>(printed),
        serde_json::from_str::<serde_json::Value>(shown),
    ) {
        (Ok(a), Ok(b)) => close(&a, &b),
        _ => false,
    }
}

/// Servers the docs start with `&`: killed when the walk ends, also when it fails.
struct Background(Vec<std::process::Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` (at most 10 minutes, then kills it and fails naming `what`).
fn wait_for(mut child: std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what}: still running after 10 min");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn the_docs_commands_run_offline_in_order() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    // The repository files the docs point at, as in a checkout.
    for linked in ["configs", "crates", "scripts"] {
        std::os::unix::fs::symlink(
            repo().join(linked).canonicalize().unwrap(),
            dir.join(linked),
        )
        .unwrap();
    }
    let bin_dir = scratch.path().join("bin");
    write_shims(&bin_dir);
    let path_var = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    stand_ins(&dir);
    // A free port for the docs' example servers (they say 8000).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let logs = scratch.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    let mut used = vec![false; NOT_RUN.len()];
    let (mut ran, mut skipped, mut background) = (Vec::new(), Vec::new(), Background(Vec::new()));
    for (file, steps) in all_steps() {
        for step in steps {
            let (line, command, expected) = match step {
                Step::File { name, text } => {
                    std::fs::write(dir.join(&name), text.replace("8000", &port)).unwrap();
                    continue;
                }
                Step::Command {
                    line,
                    text,
                    expected,
                } => (line, text, expected),
            };
            let at = format!("{file}:{line}");
            if let Some(i) = NOT_RUN.iter().position(|(p, _)| command.contains(p)) {
                used[i] = true;
                skipped.push(format!("{at}: {command}\n      not run: {}", NOT_RUN[i].1));
                continue;
            }
            let command = command.replace("8000", &port);
            let log = logs.join(format!("{}.log", ran.len()));
            if let Some(server) = command.strip_suffix('&') {
                let server = run_shell(&dir, &path_var, &format!("exec {server}"), &log);
                background.0.push(server);
                ran.push(format!("{at}: {command}"));
                continue;
            }
            let started = std::time::Instant::now();
            let child = run_shell(&dir, &path_var, &command, &log);
            let status = wait_for(child, &format!("{at}: {command}"));
            assert!(
                status.success(),
                "{at}: the command failed ({status})\n    {command}\n{}",
                tail(&log, 40)
            );
            if let Some(expected) = expected {
                let printed = std::fs::read_to_string(&log).unwrap();
                assert!(
                    same_json(printed.trim(), &expected),
                    "{at}: the output differs from the one the docs show\n    {command}\n\
                     printed: {}\n   shown: {expected}",
                    printed.trim()
                );
            }
            ran.push(format!(
                "{at} ({:.1} s): {command}",
                started.elapsed().as_secs_f64()
            ));
        }
    }
    drop(background);
    eprintln!("ran {} commands of the docs:", ran.len());
    for r in &ran {
        eprintln!("  {r}");
    }
    eprintln!("not run ({}):", skipped.len());
    for s in &skipped {
        eprintln!("  {s}");
    }
    let stale: Vec<_> = NOT_RUN
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((p, _), _)| *p)
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_RUN entries that match no command of the docs: {stale:?}"
    );
    assert!(
        ran.len() >= 20,
        "only {} commands ran: is the extraction broken?",
        ran.len()
    );
}

#[test]
fn files_and_shown_output_are_read_from_the_blocks() {
    let md = "text\n```toml\n# my.toml: the keys\n[a]\nb = 1\n```\n```python\nprint(1)\n```\n\
              ```sh\nppo-cli score \\\n    --json   # note\n# {\"score\":1}\n\nppo-cli x\n```\n";
    let steps = doc_steps(md);
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(
        matches!(&steps[0], Step::File { name, text } if name == "my.toml" && text == "# my.toml: the keys\n[a]\nb = 1\n")
    );
    assert!(
        matches!(&steps[1], Step::Command { line: 11, text, expected: Some(e) } if text == "ppo-cli score      --json" && e == "{\"score\":1}")
    );
    assert!(matches!(&steps[2], Step::Command { expected: None, .. }));
    let apart = doc_steps("```sh\nppo-cli x\n# a note\n# {\"score\":1}\n```\n");
    assert!(
        matches!(&apart[..], [Step::Command { expected: None, .. }]),
        "a `# {{…}}` line is the output only right after its command: {apart:?}"
    );
    assert!(same_json(
        r#"{"a":[1,2],"s":0.20393611}"#,
        r#"{"s":0.20393607,"a":[1,2]}"#
    ));
    assert!(!same_json(
        r#"{"a":[1,2],"s":0.2040}"#,
        r#"{"s":0.20393607,"a":[1,2]}"#
    ));
    assert!(!same_json(
        r#"{"a":[1,3],"s":0.2}"#,
        r#"{"s":0.2,"a":[1,2]}"#
    ));
    assert!(!same_json("not json", "{}"));
    assert_eq!(named_file("# remote.toml"), Some("remote.toml".into()));
    assert_eq!(
        named_file("# reward_server.py: a server"),
        Some("reward_server.py".into())
    );
    assert_eq!(named_file("# 0.8 × the GSM8K verifier"), None);
    assert_eq!(named_file("# see configs/x.toml for"), None);
}
