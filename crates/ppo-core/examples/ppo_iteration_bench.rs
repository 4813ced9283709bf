//! One PPO iteration of a randomly initialised Qwen3-shaped policy and critic, timed per phase:
//! the workload of `bench/reference/ppo_iteration.py` (PyTorch + transformers), which
//! `cargo xtask bench ppo --reference` runs beside this one.
//!
//!     cargo run --release -p ppo-core --example ppo_iteration_bench -- \
//!         [--shape tiny|small|q06] [--batch B] [--prompt-tokens P] [--new-tokens T] \
//!         [--iters N] [--device flex|tch:cpu] [--matmul-peak 1] [--generate-only 1]
//!
//! The workload: B prompts of P random token ids, T sampled tokens each (temperature 1, no
//! top-k/top-p, EOS never sampled: every response has T tokens), then log-probabilities of
//! policy and frozen reference and the critic's values (no autodiff), k1 KL-shaped rewards,
//! GAE (γ 1, λ 0.95), whitened advantages, and 4 PPO epochs of one minibatch of B rows: clipped
//! policy loss and clipped value loss, each model with its own AdamW step after global-norm
//! clipping at 1. One JSON line per iteration after a warm-up iteration:
//! `{"impl": "ppo-rs", "generate": s, "score": s, "update": s, "total": s, …}`;
//! `--matmul-peak 1` first prints `{"matmul_gflops": G}` (the best 1024³ f32 matmul).

use std::time::Instant;

use burn::tensor::Device;
use ppo_core::{
    AlgorithmConfig, KlConfig, KlEstimator, OptimizerConfig, PpoConfig, PpoTrainer, PromptSample,
    Reward, RewardError, RewardInput,
};
use ppo_models::{CausalLm, Rng, SamplingConfig, Tokenizer, TransformerConfig, ValueModel};
use ppo_sched::{ScheduleConfig, ScheduleKind, Scheduler};

/// The shapes of `cargo xtask bench ppo` (`bench/reference/ppo_iteration.py` has the same).
fn shape(name: &str) -> TransformerConfig {
    let base = TransformerConfig::tiny(512);
    match name {
        "tiny" => TransformerConfig {
            vocab_size: 512,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            ..base
        },
        "small" => TransformerConfig {
            vocab_size: 8192,
            hidden_size: 512,
            intermediate_size: 1536,
            num_hidden_layers: 8,
            num_attention_heads: 8,
            num_key_value_heads: 4,
            head_dim: 64,
            ..base
        },
        "q06" => TransformerConfig {
            max_position_embeddings: base.max_position_embeddings,
            initializer_range: base.initializer_range,
            ..TransformerConfig::qwen3_0_6b()
        },
        other => panic!("unknown shape {other:?} (tiny, small, q06)"),
    }
}

/// Token ids written as text, one character per id, so prompts of P ids are P tokens; EOS is
/// `vocab` (never sampled) and there is no BOS.
struct IdTokenizer {
    vocab: usize,
}

/// The character of token `id`: `U+0100 + id`, skipping the surrogate block.
fn id_char(id: u32) -> char {
    let code = id + 0x100;
    let code = if code >= 0xD800 { code + 0x800 } else { code };
    char::from_u32(code).expect("a scalar value")
}

fn char_id(c: char) -> u32 {
    let code = c as u32;
    let code = if code >= 0xE000 { code - 0x800 } else { code };
    code - 0x100
}

impl Tokenizer for IdTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.chars().map(char_id).collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&id| id_char(id)).collect()
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn eos_id(&self) -> u32 {
        self.vocab as u32
    }

    fn pad_id(&self) -> u32 {
        0
    }

    fn bos_id(&self) -> Option<u32> {
        None
    }
}

/// A cheap deterministic score (the reward's cost is not what is measured).
struct LengthScore;

impl Reward for LengthScore {
    fn name(&self) -> &str {
        "length"
    }

    fn score(&mut self, batch: &[RewardInput<'_>]) -> Result<Vec<f64>, RewardError> {
        Ok(batch
            .iter()
            .map(|b| (b.response.chars().map(|c| c as u32 % 7).sum::<u32>() % 10) as f64 / 10.0)
            .collect())
    }
}

fn config(batch: usize, new_tokens: usize) -> PpoConfig {
    PpoConfig {
        batch_size: batch,
        group_size: 1,
        ppo_epochs: 4,
        mini_batch_size: batch,
        gradient_accumulation_steps: 1,
        clip_range: 0.2,
        clip_range_value: 0.2,
        entropy_coef: 0.0,
        value_loss_coef: 0.5,
        max_grad_norm: 1.0,
        gamma: 1.0,
        lam: 0.95,
        whiten_advantages: true,
        kl: KlConfig {
            estimator: KlEstimator::K1,
            coef: 0.05,
            target: None,
            horizon: 10_000.0,
            in_loss: false,
        },
        sampling: SamplingConfig {
            max_new_tokens: new_tokens,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            greedy: false,
            use_cache: true,
            stop: Vec::new(),
        },
        forward_batch_size: batch,
        gradient_checkpointing: false,
        max_consecutive_skips: 10,
        missing_eos_penalty: None,
        score_clip: None,
        normalize_score: false,
        policy_optimizer: OptimizerConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        critic_optimizer: OptimizerConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        max_prompt_tokens: None,
        algorithm: AlgorithmConfig::default(),
    }
}

fn device(spec: &str) -> Device {
    match spec {
        "flex" => Device::flex(),
        #[cfg(feature = "tch")]
        "tch:cpu" =>
        {
            #[allow(deprecated)]
            Device::libtorch()
        }
        other => panic!("unknown device {other:?} (flex; tch:cpu with --features tch)"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut shape_name, mut batch, mut prompt_tokens, mut new_tokens, mut iters) =
        ("small".to_string(), 8usize, 32usize, 64usize, 2usize);
    let mut device_spec = "flex".to_string();
    let mut matmul_peak = false;
    let mut generate_only = false;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{flag} {value}"))
        };
        match flag.as_str() {
            "--shape" => shape_name = value.clone(),
            "--batch" => batch = number(),
            "--prompt-tokens" => prompt_tokens = number(),
            "--new-tokens" => new_tokens = number(),
            "--iters" => iters = number(),
            "--device" => device_spec = value.clone(),
            "--matmul-peak" => matmul_peak = value == "1",
            "--generate-only" => generate_only = value == "1",
            other => panic!("unknown argument {other}"),
        }
    }
    let model = TransformerConfig {
        max_position_embeddings: (prompt_tokens + new_tokens).max(512),
        ..shape(&shape_name)
    };
    let device = device(&device_spec);
    if matmul_peak {
        println!(
            "{}",
            serde_json::json!({"matmul_gflops": matmul_gflops(&device)})
        );
    }
    let started = Instant::now();
    let mut rng = Rng::new(0);
    let policy = CausalLm::init(&model, &mut rng, &device);
    let critic = ValueModel::from_backbone(policy.backbone(), &mut rng);
    let schedule = || {
        Scheduler::new(ScheduleConfig {
            learning_rate: 1e-6,
            min_lr: 1e-6,
            warmup_steps: 0,
            total_steps: 1_000,
            kind: ScheduleKind::Constant,
        })
        .unwrap()
    };
    let mut trainer = PpoTrainer::new(
        config(batch, new_tokens),
        policy,
        Some(critic),
        schedule(),
        schedule(),
        rng.fork(),
    )
    .unwrap();
    let build_seconds = started.elapsed().as_secs_f64();
    let tokenizer = IdTokenizer {
        vocab: model.vocab_size,
    };
    let mut reward = LengthScore;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    for iter in 0..=iters {
        let samples: Vec<PromptSample> = (0..batch)
            .map(|_| PromptSample {
                prompt: (0..prompt_tokens)
                    .map(|_| id_char(1 + rng.below(model.vocab_size - 1) as u32))
                    .collect(),
                reference: None,
            })
            .collect();
        if generate_only {
            // Sampling alone (for profiles): the policy as the rollout samples with it.
            let prompts: Vec<Vec<u32>> = samples
                .iter()
                .map(|s| tokenizer.encode(&s.prompt))
                .collect();
            let policy = burn::module::Module::valid(trainer.policy());
            let started = Instant::now();
            let out = ppo_models::generate(
                &policy,
                &prompts,
                &trainer.config().sampling,
                tokenizer.eos_id(),
                tokenizer.pad_id(),
                &mut rng,
            );
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(out.response_len, new_tokens);
            if iter > 0 {
                println!(
                    "{}",
                    serde_json::json!({"impl": "ppo-rs", "generate": seconds,
                        "tokens_per_second": (batch * new_tokens) as f64 / seconds})
                );
            }
            continue;
        }
        let started = Instant::now();
        let (rollout, metrics) = trainer.step(&samples, &tokenizer, &mut reward).unwrap();
        let total = started.elapsed().as_secs_f64();
        assert_eq!(
            rollout.generation.response_len, new_tokens,
            "every response has T tokens"
        );
        let get = |key: &str| metrics.get(key).unwrap_or(f64::NAN);
        if iter == 0 {
            continue; // warm-up
        }
        println!(
            "{}",
            serde_json::json!({
                "impl": "ppo-rs",
                "backend": device_spec,
                "shape": shape_name,
                "threads": threads,
                "batch": batch,
                "prompt_tokens": prompt_tokens,
                "new_tokens": new_tokens,
                "generate": get("time/generate"),
                "score": get("time/score"),
                "update": get("time/update"),
                "total": total,
                "build": build_seconds,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
    }
}

/// The best of 5 timings of a 1024³ f32 matmul, in GFLOP/s: the backend's own peak here.
fn matmul_gflops(device: &Device) -> f64 {
    use burn::tensor::{Distribution, Tensor};
    let n = 1024;
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        // Reading one element back waits for the product.
        let _ = c.slice([0..1, 0..1]).into_data();
        best = best.min(started.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// The process's peak resident memory (`VmHWM`, Linux), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
