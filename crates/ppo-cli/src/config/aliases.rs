//! "Did you mean": the names other trainers give our keys (the seed script's constants, TRL's
//! `PPOConfig`/`GRPOConfig`, verl's `ppo_trainer.yaml`), and near misses of our own keys, for
//! the unknown-key errors of `load`. `docs/migrating.md` shows the same table; a test checks
//! that the two agree.

use super::DEFAULT_TOML;

/// Where a foreign name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// The PyTorch seed script (`ppo.py` / `ppo_v1.py`) users migrate from: its constants.
    Seed,
    /// TRL's `PPOConfig` and `GRPOConfig` (and the `transformers.TrainingArguments` they extend).
    Trl,
    /// verl's `ppo_trainer.yaml`.
    Verl,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            Self::Seed => "seed script",
            Self::Trl => "TRL",
            Self::Verl => "verl",
        }
    }
}

/// A foreign name of one of our keys: (where it comes from, its name there, our dotted key).
/// A foreign name is matched by its last dotted segment, case-insensitively.
pub type Alias = (System, &'static str, &'static str);

use System::{Seed, Trl, Verl};

/// Every foreign name we recognise, in the order of docs/migrating.md's table.
pub const ALIASES: &[Alias] = &[
    (Seed, "LEARNING_RATE", "training.learning_rate"),
    (Trl, "learning_rate", "training.learning_rate"),
    (Verl, "actor.optim.lr", "training.learning_rate"),
    (Verl, "critic.optim.lr", "training.critic_learning_rate"),
    (Seed, "NUM_EPOCHES", "training.num_epochs"),
    (Trl, "num_train_epochs", "training.num_epochs"),
    (Verl, "trainer.total_epochs", "training.num_epochs"),
    (Verl, "trainer.total_training_steps", "max_steps"),
    (Seed, "BATCH_SIZE", "training.batch_size"),
    (Verl, "data.train_batch_size", "training.batch_size"),
    (Seed, "GROUP_SIZE", "training.group_size"),
    (Trl, "num_generations", "training.group_size"),
    (Verl, "rollout.n", "training.group_size"),
    (Seed, "GROUP_EPOCHES", "training.ppo_epochs"),
    (Trl, "num_ppo_epochs", "training.ppo_epochs"),
    (Trl, "num_iterations", "training.ppo_epochs"),
    (Trl, "num_mini_batches", "training.mini_batch_size"),
    (
        Verl,
        "actor.ppo_mini_batch_size",
        "training.mini_batch_size",
    ),
    (
        Seed,
        "GRADIENT_ACCUMULATION_STEPS",
        "training.gradient_accumulation_steps",
    ),
    (
        Trl,
        "per_device_train_batch_size",
        "training.mini_batch_size",
    ),
    (
        Verl,
        "actor.ppo_micro_batch_size_per_gpu",
        "training.gradient_accumulation_steps",
    ),
    (
        Trl,
        "local_rollout_forward_batch_size",
        "training.forward_batch_size",
    ),
    (
        Verl,
        "rollout.log_prob_micro_batch_size_per_gpu",
        "training.forward_batch_size",
    ),
    (Seed, "CLIP_RANGE", "training.clip_range"),
    (Trl, "cliprange", "training.clip_range"),
    (Trl, "epsilon", "training.clip_range"),
    (Verl, "actor.clip_ratio", "training.clip_range"),
    (Verl, "actor.clip_ratio_low", "training.clip_range_low"),
    (Trl, "epsilon_high", "training.clip_range_high"),
    (Verl, "actor.clip_ratio_high", "training.clip_range_high"),
    (Verl, "actor.clip_ratio_c", "training.dual_clip"),
    (Trl, "cliprange_value", "training.clip_range_value"),
    (Verl, "critic.cliprange_value", "training.clip_range_value"),
    (Seed, "ENTROPY_COEF", "training.entropy_coef"),
    (Verl, "actor.entropy_coeff", "training.entropy_coef"),
    (Seed, "VALUE_LOSS_COEF", "training.value_loss_coef"),
    (Trl, "vf_coef", "training.value_loss_coef"),
    (Seed, "MAX_GRAD_NORM", "training.max_grad_norm"),
    (Verl, "actor.grad_clip", "training.max_grad_norm"),
    (Seed, "KL_COEF", "training.kl_coef"),
    (Trl, "beta", "training.kl_coef"),
    (Verl, "actor.kl_loss_coef", "training.kl_coef"),
    (Verl, "algorithm.kl_penalty", "training.kl_estimator"),
    (Verl, "actor.kl_loss_type", "training.kl_estimator"),
    (Verl, "algorithm.kl_ctrl.target_kl", "training.kl_target"),
    (Verl, "algorithm.kl_ctrl.horizon", "training.kl_horizon"),
    (Verl, "actor.use_kl_loss", "training.kl_in_loss"),
    (Trl, "adam_epsilon", "training.adam_eps"),
    (Seed, "WARMUP_STEPS", "training.warmup_steps"),
    (Verl, "actor.optim.lr_warmup_steps", "training.warmup_steps"),
    (Seed, "LR_SCHEDULER_TYPE", "training.lr_scheduler_type"),
    (Seed, "USE_LR_SCHEDULER", "training.lr_scheduler_type"),
    (
        Verl,
        "actor.optim.warmup_style",
        "training.lr_scheduler_type",
    ),
    (
        Verl,
        "model.enable_gradient_checkpointing",
        "training.gradient_checkpointing",
    ),
    (
        Verl,
        "algorithm.adv_estimator",
        "algorithm.advantage_estimator",
    ),
    (Trl, "scale_rewards", "algorithm.advantage_estimator"),
    (
        Verl,
        "algorithm.norm_adv_by_std_in_grpo",
        "algorithm.advantage_estimator",
    ),
    (Trl, "loss_type", "algorithm.loss_aggregation"),
    (Verl, "actor.loss_agg_mode", "algorithm.loss_aggregation"),
    (
        Trl,
        "mask_truncated_completions",
        "algorithm.mask_truncated",
    ),
    (
        Verl,
        "algorithm.filter_groups.enable",
        "algorithm.dynamic_sampling",
    ),
    (
        Verl,
        "algorithm.filter_groups.max_num_gen_batches",
        "algorithm.max_sampling_rounds",
    ),
    (
        Verl,
        "reward_model.overlong_buffer.len",
        "algorithm.overlong_buffer_len",
    ),
    (
        Verl,
        "reward_model.overlong_buffer.penalty_factor",
        "algorithm.overlong_penalty_factor",
    ),
    (Trl, "response_length", "generation.max_new_tokens"),
    (Trl, "max_completion_length", "generation.max_new_tokens"),
    (
        Verl,
        "data.max_response_length",
        "generation.max_new_tokens",
    ),
    (Trl, "sft_model_path", "model.policy"),
    (Trl, "reward_model_path", "model.reward"),
    (Seed, "EVAL_EVERY_N_STEPS", "eval.eval_every_n_steps"),
    (Trl, "eval_steps", "eval.eval_every_n_steps"),
    (Verl, "trainer.test_freq", "eval.eval_every_n_steps"),
    (
        Seed,
        "EARLY_STOPPING_PATIENCE",
        "eval.early_stopping_patience",
    ),
    (
        Seed,
        "EARLY_STOPPING_THRESHOLD",
        "eval.early_stopping_threshold",
    ),
    (Seed, "SAVE_EVERY_N_STEPS", "checkpoint.save_every_n_steps"),
    (Trl, "save_steps", "checkpoint.save_every_n_steps"),
    (Verl, "trainer.save_freq", "checkpoint.save_every_n_steps"),
    (Trl, "save_total_limit", "checkpoint.keep_last_n"),
    (
        Verl,
        "trainer.max_actor_ckpt_to_keep",
        "checkpoint.keep_last_n",
    ),
    (Trl, "logging_steps", "log_every"),
    (Seed, "USE_WANDB", "tracking.enabled"),
    (Seed, "WANDB_PROJECT", "tracking.experiment_name"),
    (Verl, "trainer.project_name", "tracking.experiment_name"),
    (Verl, "trainer.experiment_name", "tracking.run_name"),
    (Trl, "lora_r", "lora.rank"),
    (Verl, "actor_rollout_ref.model.lora_rank", "lora.rank"),
    (Trl, "lora_alpha", "lora.alpha"),
    (Verl, "actor_rollout_ref.model.lora_alpha", "lora.alpha"),
    (Trl, "lora_dropout", "lora.dropout"),
    (Trl, "lora_target_modules", "lora.target_modules"),
    (
        Verl,
        "actor_rollout_ref.model.target_modules",
        "lora.target_modules",
    ),
];

/// The last dotted segment of a key.
fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Every dotted key of the embedded default (arrays of tables such as `reward.sources` count as
/// one key).
pub fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                _ => out.push(key),
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(table) = DEFAULT_TOML.parse::<toml::Table>() {
        walk("", &table, &mut out);
    }
    out
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// "did you mean `training.clip_range` (TRL: cliprange)?" for an unknown dotted `key`: our keys
/// of which it is a foreign name, or else our key nearest to it (same name in another section,
/// or a typo of a name, preferring its own section).
pub fn did_you_mean(key: &str) -> Option<String> {
    let name = leaf(key).to_lowercase();
    let mut targets: Vec<(&str, Vec<String>)> = Vec::new();
    for &(system, foreign, ours) in ALIASES {
        // Our own name in another section is a near miss (below), not another trainer's name.
        if leaf(foreign).to_lowercase() != name || leaf(ours) == leaf(key) {
            continue;
        }
        let named = format!("{}: {foreign}", system.name());
        match targets.iter_mut().find(|(t, _)| *t == ours) {
            Some((_, names)) => names.push(named),
            None => targets.push((ours, vec![named])),
        }
    }
    if !targets.is_empty() {
        let options: Vec<String> = targets
            .iter()
            .map(|(ours, names)| format!("`{ours}` ({})", names.join(", ")))
            .collect();
        return Some(format!("did you mean {}?", options.join(" or ")));
    }
    let section = key.rsplit_once('.').map_or("", |(s, _)| s);
    let limit = (name.chars().count() / 4).clamp(1, 3);
    known_keys()
        .into_iter()
        .filter(|k| k != key)
        .map(|k| {
            let distance = edit_distance(&name, &leaf(&k).to_lowercase());
            let other_section = k.rsplit_once('.').map_or("", |(s, _)| s) != section;
            (distance, other_section, k)
        })
        .filter(|(distance, _, _)| *distance <= limit)
        .min()
        .map(|(_, _, k)| format!("did you mean `{k}`?"))
}

/// `message`, followed by "; did you mean …?" when there is a suggestion for `key`.
pub fn with_suggestion(message: String, key: &str) -> String {
    match did_you_mean(key) {
        Some(suggestion) => format!("{message}; {suggestion}"),
        None => message,
    }
}
