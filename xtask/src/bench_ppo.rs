//! `cargo xtask bench ppo`: one PPO iteration of a random Qwen3-shaped policy and critic, per
//! phase (generate, score passes, PPO update), with ppo-rs's `ppo_iteration_bench` example and,
//! with `--reference`, side by side with the same workload in PyTorch + transformers
//! (`bench/reference/ppo_iteration.py`). Runs alternate (ppo-rs, PyTorch, ppo-rs, …), each a
//! fresh process that measures one iteration after a warm-up one, with the same thread count
//! (pinned with `taskset` when it is installed); medians are reported, with the ratio
//! ppo-rs / PyTorch per phase and the GFLOP/s each achieved against its own measured matmul
//! peak.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo_bin, workspace_root};

const USAGE: &str = "usage: cargo xtask bench ppo [--shape tiny|small|q06] [--reference] \
[--backend flex|tch:cpu] [--threads N] [--reps R] [--batch B] [--prompt-tokens P] \
[--new-tokens T] [--python PATH]";

/// Parsed arguments of `bench ppo`.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoBenchArgs {
    /// `tiny`, `small` or `q06`.
    pub shape: String,
    /// Also run the PyTorch + transformers reference.
    pub reference: bool,
    /// ppo-rs's backend: `flex` or `tch:cpu`.
    pub backend: String,
    /// Threads of every pool (both sides).
    pub threads: usize,
    /// Runs of each side (each one warm-up + one measured iteration).
    pub reps: usize,
    /// Prompts per iteration.
    pub batch: usize,
    /// Tokens per prompt.
    pub prompt_tokens: usize,
    /// Sampled tokens per response.
    pub new_tokens: usize,
    /// The Python with PyTorch + transformers.
    pub python: Option<PathBuf>,
}

/// Parses the arguments after `bench ppo`.
pub fn parse_args(args: &[&str]) -> Result<PpoBenchArgs> {
    let mut parsed = PpoBenchArgs {
        shape: "small".into(),
        reference: false,
        backend: "flex".into(),
        threads: 1,
        reps: 3,
        batch: 8,
        prompt_tokens: 32,
        new_tokens: 64,
        python: None,
    };
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        if arg == "--reference" {
            parsed.reference = true;
            continue;
        }
        let value = it
            .next()
            .with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
        let number = || -> Result<usize> {
            match value.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{arg}: expected a positive number, got {value:?}\n{USAGE}"),
            }
        };
        match arg {
            "--shape" if ["tiny", "small", "q06"].contains(value) => {
                parsed.shape = value.to_string();
            }
            "--shape" => bail!("--shape: {value:?} is not tiny, small or q06\n{USAGE}"),
            "--backend" if ["flex", "tch:cpu"].contains(value) => {
                parsed.backend = value.to_string();
            }
            "--backend" => bail!("--backend: {value:?} is not flex or tch:cpu\n{USAGE}"),
            "--threads" => parsed.threads = number()?,
            "--reps" => parsed.reps = number()?,
            "--batch" => parsed.batch = number()?,
            "--prompt-tokens" => parsed.prompt_tokens = number()?,
            "--new-tokens" => parsed.new_tokens = number()?,
            "--python" => parsed.python = Some(PathBuf::from(value)),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(parsed)
}

/// Dimensions of a shape (the same table as the example and the Python script).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dims {
    /// Vocabulary.
    pub vocab: f64,
    /// Hidden size.
    pub hidden: f64,
    /// MLP width.
    pub intermediate: f64,
    /// Decoder layers.
    pub layers: f64,
    /// Query width (heads × head_dim).
    pub q: f64,
    /// Key/value width (key-value heads × head_dim).
    pub kv: f64,
}

/// The dimensions of `shape` (q06 for anything but tiny and small).
pub fn dims(shape: &str) -> Dims {
    let (vocab, hidden, intermediate, layers, heads, kv_heads, head_dim) = match shape {
        "tiny" => (512, 64, 128, 2, 4, 2, 16),
        "small" => (8192, 512, 1536, 8, 8, 4, 64),
        _ => (151_936, 1024, 3072, 28, 16, 8, 128),
    };
    Dims {
        vocab: f64::from(vocab),
        hidden: f64::from(hidden),
        intermediate: f64::from(intermediate),
        layers: f64::from(layers),
        q: f64::from(heads * head_dim),
        kv: f64::from(kv_heads * head_dim),
    }
}

/// Forward FLOPs of `tokens` tokens attending to `context` positions on average, with the
/// output projection over `head_tokens` of them (matmuls only: norms, softmax and the
/// optimiser are left out, as they are a few per cent at these shapes).
fn forward_flops(d: Dims, tokens: f64, context: f64, head_tokens: f64) -> f64 {
    let projections = d.hidden * (2.0 * d.q + 2.0 * d.kv) + 3.0 * d.hidden * d.intermediate;
    let attention = 4.0 * d.q * context;
    d.layers * tokens * (2.0 * projections + attention) + 2.0 * d.hidden * d.vocab * head_tokens
}

/// Matmul FLOPs of each phase: `(generate, score, update)`.
pub fn phase_flops(shape: &str, batch: usize, prompt: usize, new: usize) -> (f64, f64, f64) {
    let d = dims(shape);
    let (b, p, t) = (batch as f64, prompt as f64, new as f64);
    // Prefill of the prompts (logits of the last position), then one token per row and step.
    let generate =
        forward_flops(d, b * p, p / 2.0, b) + forward_flops(d, b * t, p + t / 2.0, b * t);
    let seq = p + t;
    let with_head = forward_flops(d, b * seq, seq / 2.0, b * seq);
    let without_head = forward_flops(d, b * seq, seq / 2.0, 0.0);
    // Policy and reference log-probs, critic values.
    let score = 2.0 * with_head + without_head;
    // 4 epochs of forward + backward (≈ 3 forwards) of policy and critic.
    let update = 4.0 * 3.0 * (with_head + without_head);
    (generate, score, update)
}

fn python(args: &PpoBenchArgs) -> Result<PathBuf> {
    if let Some(p) = &args.python {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("PPO_RS_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let venv = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("ppo-rs/venv-hf/bin/python"));
    match venv {
        Some(p) if p.is_file() => Ok(p),
        _ => bail!(
            "--reference needs PyTorch + transformers: pass --python PATH, set PPO_RS_PYTHON, or \
             run scripts/install-hf-python.sh"
        ),
    }
}

/// A command pinned to the first `threads` CPUs (when `taskset` exists) with every thread pool
/// sized to `threads`.
fn pinned(program: &Path, threads: usize) -> Command {
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if has_taskset {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(format!("0-{}", threads - 1)).arg(program);
        c
    } else {
        Command::new(program)
    };
    for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
        cmd.env(var, threads.to_string());
    }
    cmd
}

/// The JSON lines a run printed.
fn run_json(mut cmd: Command, what: &str) -> Result<Vec<Value>> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} printed a line that is not JSON:\n{stdout}"))?;
    if lines.is_empty() {
        bail!("{what} printed no measurement:\n{stdout}");
    }
    Ok(lines)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median of `key` over the measurements of one implementation.
fn median_of(runs: &[Value], key: &str) -> f64 {
    median(runs.iter().filter_map(|r| r[key].as_f64()).collect())
}

/// Entry point of `cargo xtask bench ppo`.
pub fn main(args: &[&str]) -> Result<()> {
    let args = parse_args(args)?;
    let root = workspace_root();
    let mut build = Command::new(cargo_bin());
    build.current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "ppo-core",
        "--example",
        "ppo_iteration_bench",
    ]);
    if args.backend != "flex" {
        build.args(["--features", "tch"]);
    }
    if !build
        .status()
        .context("failed to run cargo build")?
        .success()
    {
        bail!("building the ppo_iteration_bench example failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let example = target.join("release/examples/ppo_iteration_bench");
    let python = if args.reference {
        Some(python(&args)?)
    } else {
        None
    };
    let script = root.join("bench/reference/ppo_iteration.py");
    let sizes = [
        ("--shape".to_string(), args.shape.clone()),
        ("--batch".to_string(), args.batch.to_string()),
        (
            "--prompt-tokens".to_string(),
            args.prompt_tokens.to_string(),
        ),
        ("--new-tokens".to_string(), args.new_tokens.to_string()),
        ("--iters".to_string(), "1".to_string()),
    ];
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut peaks: (Option<f64>, Option<f64>) = (None, None);
    for rep in 0..args.reps {
        let mut cmd = pinned(&example, args.threads);
        cmd.args(["--device", &args.backend]);
        for (k, v) in &sizes {
            cmd.args([k, v]);
        }
        if rep == 0 {
            cmd.arg("--matmul-peak").arg("1");
        }
        for line in run_json(cmd, "the ppo-rs bench")? {
            match line["matmul_gflops"].as_f64() {
                Some(g) => peaks.0 = Some(g),
                None => ours.push(line),
            }
        }
        if let Some(python) = &python {
            let mut cmd = pinned(python, args.threads);
            cmd.arg(&script)
                .args(["--threads", &args.threads.to_string()]);
            for (k, v) in &sizes {
                cmd.args([k, v]);
            }
            if rep == 0 {
                cmd.arg("--matmul-peak");
            }
            for line in run_json(cmd, "the PyTorch reference")? {
                match line["matmul_gflops"].as_f64() {
                    Some(g) => peaks.1 = Some(g),
                    None => theirs.push(line),
                }
            }
        }
        eprintln!("rep {}/{} done", rep + 1, args.reps);
    }
    let report = report(&args, &ours, &theirs, peaks);
    println!("{report}");
    let out = root.join("target/bench");
    fs_err::create_dir_all(&out)?;
    let json = serde_json::json!({"args": format!("{args:?}"), "ppo_rs": ours, "pytorch": theirs,
        "matmul_gflops": {"ppo_rs": peaks.0, "pytorch": peaks.1}});
    let path = out.join(format!(
        "ppo-{}-{}.json",
        args.shape,
        args.backend.replace(':', "-")
    ));
    fs_err::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("measurements: {}", path.display());
    Ok(())
}

/// The side-by-side table (markdown).
fn report(
    args: &PpoBenchArgs,
    ours: &[Value],
    theirs: &[Value],
    peaks: (Option<f64>, Option<f64>),
) -> String {
    let flops = phase_flops(&args.shape, args.batch, args.prompt_tokens, args.new_tokens);
    let tokens = (args.batch * args.new_tokens) as f64;
    let mut s = format!(
        "shape {} ({} prompts × {} tokens, {} sampled tokens each, EOS off), backend {}, {} \
         thread(s), {} run(s) each, medians\n\n",
        args.shape,
        args.batch,
        args.prompt_tokens,
        args.new_tokens,
        args.backend,
        args.threads,
        args.reps
    );
    let peak = |p: Option<f64>| p.map_or("?".to_string(), |g| format!("{g:.0}"));
    s += &format!(
        "matmul peak (1024³ f32): ppo-rs {} GFLOP/s, PyTorch {} GFLOP/s\n\n",
        peak(peaks.0),
        peak(peaks.1)
    );
    s += "| phase | ppo-rs s | PyTorch s | ratio | ppo-rs GFLOP/s | PyTorch GFLOP/s |\n";
    s += "|---|---|---|---|---|---|\n";
    let rows = [
        ("generate", flops.0),
        ("score", flops.1),
        ("update", flops.2),
        ("total", flops.0 + flops.1 + flops.2),
    ];
    for (phase, f) in rows {
        let (a, b) = (median_of(ours, phase), median_of(theirs, phase));
        let cell = |x: f64, digits: usize| {
            if x.is_finite() {
                format!("{x:.digits$}")
            } else {
                "–".to_string()
            }
        };
        s += &format!(
            "| {phase} | {} | {} | {} | {} | {} |\n",
            cell(a, 3),
            cell(b, 3),
            cell(a / b, 2),
            cell(f / a / 1e9, 1),
            cell(f / b / 1e9, 1),
        );
    }
    let (a, b) = (median_of(ours, "generate"), median_of(theirs, "generate"));
    s += &format!(
        "\ngeneration: ppo-rs {:.0} tokens/s, PyTorch {:.0} tokens/s ({:.2}×)\n",
        tokens / a,
        tokens / b,
        b / a
    );
    s += &format!(
        "peak RSS: ppo-rs {:.0} MiB, PyTorch {:.0} MiB; model build: ppo-rs {:.1} s, PyTorch {:.1} s\n",
        median_of(ours, "peak_rss_mib"),
        median_of(theirs, "peak_rss_mib"),
        median_of(ours, "build"),
        median_of(theirs, "build"),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_and_bad_ones_are_named() {
        let a = parse_args(&["--shape", "q06", "--reference", "--threads", "2"]).unwrap();
        assert_eq!((a.shape.as_str(), a.reference, a.threads), ("q06", true, 2));
        assert_eq!(
            (a.batch, a.prompt_tokens, a.new_tokens, a.reps),
            (8, 32, 64, 3)
        );
        let e = parse_args(&["--shape", "huge"]).unwrap_err().to_string();
        assert!(e.contains("--shape") && e.contains("huge"), "{e}");
        let e = parse_args(&["--threads", "0"]).unwrap_err().to_string();
        assert!(e.contains("--threads"), "{e}");
        assert!(parse_args(&["--backend", "cuda"]).is_err());
    }

    #[test]
    fn flops_by_hand_for_the_tiny_shape() {
        // tiny: d 64, MLP 128, 2 layers, q 64, kv 32, vocab 512.
        let d = dims("tiny");
        let projections = 64.0 * (2.0 * 64.0 + 2.0 * 32.0) + 3.0 * 64.0 * 128.0; // 36 864
        assert_eq!(projections, 36_864.0);
        // One token, no context, no head: 2 layers × 2 FLOPs per weight.
        assert_eq!(forward_flops(d, 1.0, 0.0, 0.0), 2.0 * 2.0 * 36_864.0);
        // The head: 2 × 64 × 512 per token; attention 4 × q × context per layer.
        assert_eq!(
            forward_flops(d, 1.0, 10.0, 1.0),
            2.0 * (2.0 * 36_864.0 + 4.0 * 64.0 * 10.0) + 2.0 * 64.0 * 512.0
        );
        let (g, s, u) = phase_flops("tiny", 8, 32, 64);
        assert!(g > 0.0 && s > 0.0 && u == 4.0 * 3.0 * (s - forward_flops(d, 768.0, 48.0, 768.0)));
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
