use std::path::Path;

use anyhow::Result;

use ppo_core::PpoField;

use super::resolve::toml_key;
use super::*;

/// The config of `file` and `sets` with the shape its prompts give it, as `train` builds them.
fn planned(file: Option<&Path>, sets: &[String]) -> Result<(Resolved, RunShape)> {
    let resolved = load(file, sets)?;
    let (prompts, _) = crate::data::run_prompts(&resolved)?;
    let shape = resolved.shape(prompts.len())?;
    Ok((resolved, shape))
}

fn sets(sets: &[&str]) -> Vec<String> {
    sets.iter().map(|s| s.to_string()).collect()
}

fn err(sets_: &[&str]) -> String {
    format!("{:#}", planned(None, &sets(sets_)).unwrap_err())
}

fn shape(sets_: &[&str]) -> RunShape {
    planned(None, &sets(sets_)).unwrap().1
}

#[test]
fn type_errors_name_the_key_and_where_the_user_wrote_it() {
    assert_eq!(
        err(&["training.learning_rate=\"fast\""]),
        "invalid config key `training.learning_rate` (--set training.learning_rate=\"fast\"): \
         invalid type: string \"fast\", expected f64"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my.toml");
    std::fs::write(
        &path,
        "seed = 1\n\n[training]\n# batch\nbatch_size = \"x\"\n",
    )
    .unwrap();
    let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
    assert_eq!(
        message,
        format!(
            "invalid config key `training.batch_size` ({} line 5): invalid type: string \"x\", \
             expected usize",
            path.display()
        )
    );
    std::fs::write(&path, "[training]\ncliprange = 0.2\n").unwrap();
    let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
    assert!(
        message.starts_with(&format!(
            "invalid config key `training.cliprange` ({} line 2): unknown field `cliprange`",
            path.display()
        )),
        "{message}"
    );
}

/// Every refusal of PpoConfig::validate, as the user sees it: the key they wrote.
#[test]
fn library_refusals_name_the_users_key() {
    let cases: [(&str, &str); 22] = [
        (
            "training.batch_size=0",
            "invalid config key `training.batch_size`: must be at least 1",
        ),
        (
            "training.group_size=0",
            "invalid config key `training.group_size`: must be at least 1",
        ),
        (
            "training.ppo_epochs=0",
            "invalid config key `training.ppo_epochs`: must be at least 1",
        ),
        (
            "training.mini_batch_size=5",
            "invalid config key `training.mini_batch_size`: 5 must divide batch_size × group_size = 256",
        ),
        (
            "training.gradient_accumulation_steps=3",
            "invalid config key `training.gradient_accumulation_steps`: 3 must divide mini_batch_size = 64",
        ),
        (
            "training.forward_batch_size=0",
            "invalid config key `training.forward_batch_size`: must be at least 1",
        ),
        (
            "generation.temperature=0",
            "invalid config key `generation.temperature`: 0 must be positive",
        ),
        (
            "generation.top_p=1.5",
            "invalid config key `generation.top_p`: 1.5 must be in (0, 1]",
        ),
        (
            "training.gamma=2",
            "invalid config key `training.gamma`: 2 must be in [0, 1]",
        ),
        (
            "training.lam=-1",
            "invalid config key `training.lam`: -1 must be in [0, 1]",
        ),
        (
            "training.clip_range=0",
            "invalid config key `training.clip_range`: 0 must be positive",
        ),
        (
            "training.clip_range_value=-1",
            "invalid config key `training.clip_range_value`: -1 must be positive",
        ),
        (
            "training.max_grad_norm=0",
            "invalid config key `training.max_grad_norm`: 0 must be positive",
        ),
        (
            "training.entropy_coef=-1",
            "invalid config key `training.entropy_coef`: -1 must be ≥ 0",
        ),
        (
            "training.value_loss_coef=-1",
            "invalid config key `training.value_loss_coef`: -1 must be ≥ 0",
        ),
        (
            "training.kl_coef=-1",
            "invalid config key `training.kl_coef`: -1 must be ≥ 0",
        ),
        (
            "training.kl_horizon=0",
            "invalid config key `training.kl_horizon`: 0 must be positive",
        ),
        (
            "training.adam_beta1=1.5",
            "invalid config key `training.adam_beta1`: 1.5 must be in [0, 1)",
        ),
        (
            "training.adam_beta2=1",
            "invalid config key `training.adam_beta2`: 1 must be in [0, 1)",
        ),
        (
            "training.adam_eps=0",
            "invalid config key `training.adam_eps`: 0 must be positive",
        ),
        (
            "training.weight_decay=-1",
            "invalid config key `training.weight_decay`: -1 must be ≥ 0",
        ),
        (
            "generation.max_new_tokens=0",
            "invalid config key `generation.max_new_tokens`: must be at least 1",
        ),
    ];
    for (set, expected) in cases {
        assert_eq!(err(&[set]), expected, "--set {set}");
    }
    // the fields an optional value guards (score_clip, kl_target, missing_eos_penalty: 0
    // turns them off) and max_prompt_tokens (from data.max_prompt_length) map as well
    for field in [
        PpoField::ScoreClip,
        PpoField::KlTarget,
        PpoField::MissingEosPenalty,
        PpoField::MaxPromptTokens,
    ] {
        assert!(toml_key(field).contains('.'), "{field}");
    }
}

#[test]
fn default_resolves() {
    let (r, shape) = planned(None, &[]).unwrap();
    assert_eq!(r.ppo.rollout_size(), 256);
    assert!(shape.total_steps > 0);
}

#[test]
fn overrides_apply_and_bad_values_name_the_key() {
    let r = load(
        None,
        &[
            "training.batch_size=8".into(),
            "training.mini_batch_size=16".into(),
        ],
    )
    .unwrap();
    assert_eq!(r.ppo.batch_size, 8);
    assert!(err(&["training.nope=1"]).contains("training.nope"));
    assert!(err(&["training.learning_rate=\"fast\""]).contains("learning_rate"));
    assert!(err(&["training.gamma=1.5"]).contains("training.gamma"));
    assert!(err(&["training.mini_batch_size=7"]).contains("training.mini_batch_size"));
    assert!(err(&["model.num_key_value_heads=3"]).contains("num_key_value_heads"));
    assert!(err(&["training.lr_scheduler_type=\"zigzag\""]).contains("lr_scheduler_type"));
}

#[test]
fn schedules_resolve_and_differing_keys_are_listed() {
    for kind in [
        "cosine_with_restarts",
        "wsd",
        "plateau",
        "linear",
        "constant",
    ] {
        let r = shape(&[&format!("training.lr_scheduler_type=\"{kind}\"")]);
        assert_eq!(r.policy_schedule.kind.name(), kind);
        assert_eq!(r.critic_schedule.kind.name(), kind);
    }
    let r = shape(&[
        "training.lr_scheduler_type=\"wsd\"",
        "training.critic_lr_scheduler_type=\"constant\"",
    ]);
    assert_eq!(r.critic_schedule.kind.name(), "constant");
    assert!(err(&["training.lr_scheduler_type=\"same\""]).contains("critic_lr_scheduler_type"));
    assert!(
        err(&[
            "training.plateau_factor=1.5",
            "training.lr_scheduler_type=\"plateau\""
        ])
        .contains("`training.plateau_factor`")
    );
    for (set, key) in [
        ("training.min_lr=1", "`training.min_lr`"),
        (
            "training.wsd_decay_fraction=0",
            "`training.wsd_decay_fraction`",
        ),
        ("training.num_cycles=0", "`training.num_cycles`"),
    ] {
        let message = err(&[set, "training.lr_scheduler_type=\"cosine_with_restarts\""]);
        assert!(message.contains(key), "{set}: {message}");
    }
    let a = load(None, &[]).unwrap().raw;
    let b = load(
        None,
        &[
            "model.hidden_size=32".into(),
            "seed=3".into(),
            "training.learning_rate=1e-4".into(),
            "training.min_lr=0".into(),
        ],
    )
    .unwrap()
    .raw;
    let mut keys = differing_keys(&a, &b);
    keys.sort();
    assert_eq!(
        keys,
        [
            "model.hidden_size",
            "seed",
            "training.learning_rate",
            "training.min_lr"
        ]
    );
    let locked: Vec<_> = keys.iter().filter(|k| is_resume_locked(k)).collect();
    assert_eq!(locked, ["model.hidden_size", "seed"]);
}

#[test]
fn eval_split_holds_prompts_out() {
    let r = shape(&[
        "data.num_samples=100",
        "eval.eval_split=0.1",
        "training.batch_size=8",
        "training.mini_batch_size=16",
    ]);
    assert_eq!(
        (r.train_samples, r.eval_samples, r.steps_per_epoch),
        (90, 10, 11)
    );
    assert!(err(&["eval.eval_split=0.0"]).contains("eval.eval_split"));
    let r = shape(&["eval.eval_split=0.0", "eval.eval_every_n_steps=0"]);
    assert_eq!(r.eval_samples, 0);
}

#[test]
fn unknown_key_in_file_is_rejected_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[training]\nlearning_rat = 1e-4\n").unwrap();
    let e = format!("{:#}", load(Some(&path), &[]).unwrap_err());
    assert!(e.contains("learning_rat"), "{e}");
}

#[test]
fn choices_are_read_once_as_enums_and_bad_ones_name_the_key_and_the_choices() {
    let (r, _) = planned(
        None,
        &sets(&[
            "data.prompt_overflow=\"truncate_left\"",
            "checkpoint.export_dtype=\"bf16\"",
        ]),
    )
    .unwrap();
    assert_eq!(r.raw.data.prompt_overflow, Overflow::TruncateLeft);
    assert_eq!(
        r.raw.checkpoint.export_dtype,
        ppo_models::hf::ExportDtype::Bf16
    );
    assert_eq!(r.raw.model.critic_init, CriticInit::Policy);
    assert_eq!(r.raw.model.enable_thinking, None);
    for (set, key, choice) in [
        ("data.task=\"poems\"", "`data.task`", "`letters`"),
        (
            "data.prompt_overflow=\"cut\"",
            "`data.prompt_overflow`",
            "`truncate_left`",
        ),
        (
            "checkpoint.export_dtype=\"f16\"",
            "`checkpoint.export_dtype`",
            "`bfloat16`",
        ),
        (
            "training.lr_scheduler_type=\"zigzag\"",
            "`training.lr_scheduler_type`",
            "`wsd`",
        ),
        (
            "model.critic_init=\"value\"",
            "model.critic_init",
            "\"reward\"",
        ),
        (
            "model.enable_thinking=\"maybe\"",
            "model.enable_thinking",
            "true, false",
        ),
    ] {
        let message = err(&[set]);
        assert!(
            message.contains(key) && message.contains(choice),
            "{set}: {message}"
        );
    }
}

#[test]
fn resolving_reads_no_prompt_file() {
    // A files task whose file does not exist resolves (the config alone is valid); only the
    // command that loads the prompts meets the missing file.
    let r = load(
        None,
        &sets(&[
            "data.task=\"files\"",
            "data.sources=[{path=\"/nonexistent/train.jsonl\"}]",
        ]),
    )
    .unwrap();
    let e = format!("{:#}", crate::data::run_prompts(&r).unwrap_err());
    assert!(e.contains("/nonexistent/train.jsonl"), "{e}");
}

#[test]
fn every_shipped_config_parses_and_its_training_settings_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // The models and data are local copies a user downloads: the built-in model and task
        // stand in for them (with room for the configured generation length).
        let swapped = sets(&[
            "model.policy=\"\"",
            "model.use_chat_template=false",
            "model.system_prompt=\"\"",
            "model.enable_thinking=\"\"",
            "model.max_position_embeddings=1024",
            "data.task=\"letters\"",
        ]);
        let resolved =
            load(Some(&path), &swapped).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        checked.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            resolved.ppo.algorithm.advantage_estimator,
        ));
    }
    checked.sort_by(|a, b| a.0.cmp(&b.0));
    use ppo_core::AdvantageEstimator as E;
    assert_eq!(
        checked,
        [
            ("dapo-gsm8k.toml".to_string(), E::Grpo),
            ("default.toml".to_string(), E::Gae),
            ("grpo-gsm8k.toml".to_string(), E::Grpo),
            ("qwen3-gsm8k.toml".to_string(), E::Gae),
        ]
    );
}

#[test]
fn algorithm_keys_resolve_and_bad_ones_name_the_key() {
    let resolved = load(
        None,
        &sets(&[
            "algorithm.advantage_estimator=\"rloo\"",
            "algorithm.loss_aggregation=\"seq_mean_token_sum_norm\"",
            "training.clip_range=0.2",
            "training.clip_range_high=0.28",
            "training.dual_clip=3.0",
        ]),
    )
    .unwrap();
    let ppo = &resolved.ppo;
    assert_eq!(
        ppo.algorithm.advantage_estimator,
        ppo_core::AdvantageEstimator::Rloo
    );
    assert_eq!((ppo.clip_range, ppo.clip_range_high()), (0.2, 0.28));
    assert_eq!(ppo.algorithm.dual_clip, Some(3.0));
    assert!(!ppo.has_critic());
    // clip_range_low alone moves only the lower side.
    let low = load(None, &sets(&["training.clip_range_low=0.1"])).unwrap();
    assert_eq!((low.ppo.clip_range, low.ppo.clip_range_high()), (0.1, 0.2));

    assert_eq!(
        err(&[
            "algorithm.advantage_estimator=\"grpo\"",
            "training.group_size=1",
            "training.mini_batch_size=32",
        ]),
        "invalid config key `training.group_size`: advantage_estimator \"grpo\" compares the \
         responses of one prompt: group_size must be at least 2, got 1"
    );
    assert_eq!(
        err(&["training.dual_clip=0.5"]),
        "invalid config key `training.dual_clip`: 0.5 must be greater than 1"
    );
    assert_eq!(
        err(&["training.clip_range_high=-0.1"]),
        "invalid config key `training.clip_range_high`: -0.1 must be ≥ 0 (0 = off)"
    );
    let message = err(&["algorithm.advantage_estimator=\"ppo\""]);
    assert!(
        message.starts_with(
            "invalid config key `algorithm.advantage_estimator` (--set \
             algorithm.advantage_estimator=\"ppo\"): unknown variant `ppo`, expected one of \
             `gae`, `grpo`"
        ),
        "{message}"
    );
    assert_eq!(
        err(&["algorithm.overlong_buffer_len=100"]),
        "invalid config key `algorithm.overlong_buffer_len`: 100 must be at most \
         max_new_tokens = 8"
    );
}

/// Unknown keys are answered with the key a migrating user meant: another trainer's name for
/// it (docs/migrating.md), or a near miss of one of ours.
#[test]
fn unknown_keys_suggest_our_key_for_foreign_names_and_typos() {
    assert_eq!(
        err(&["training.cliprange=0.2"]),
        "--set training.cliprange: unknown key `training.cliprange`; did you mean \
         `training.clip_range` (TRL: cliprange)?"
    );
    assert_eq!(
        err(&["training.learning_rat=1e-4"]),
        "--set training.learning_rat: unknown key `training.learning_rat`; did you mean \
         `training.learning_rate`?"
    );
    assert_eq!(
        err(&["training.cliprange_value=0.2"]),
        "--set training.cliprange_value: unknown key `training.cliprange_value`; did you mean \
         `training.clip_range_value` (TRL: cliprange_value, verl: critic.cliprange_value)?"
    );
    assert_eq!(
        err(&["generation.group_size=4"]),
        "--set generation.group_size: unknown key `generation.group_size`; did you mean \
         `training.group_size`?"
    );
    assert_eq!(
        err(&["actor.clip_ratio_c=3"]),
        "--set actor.clip_ratio_c: unknown section `actor`; did you mean `training.dual_clip` \
         (verl: actor.clip_ratio_c)?"
    );
    assert_eq!(
        err(&["training.CLIP_RANGE=0.2"]),
        "--set training.CLIP_RANGE: unknown key `training.CLIP_RANGE`; did you mean \
         `training.clip_range` (seed script: CLIP_RANGE)?"
    );
    assert_eq!(
        err(&["training.zzzz=1"]),
        "--set training.zzzz: unknown key `training.zzzz`"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[training]\nvf_coef = 0.1\n").unwrap();
    let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
    assert!(
        message.starts_with(&format!(
            "invalid config key `training.vf_coef` ({} line 2): unknown field `vf_coef`, expected \
             one of",
            path.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("; did you mean `training.value_loss_coef` (TRL: vf_coef)?"),
        "{message}"
    );
    // A verl section as a whole: each of its keys gets its suggestion.
    std::fs::write(
        &path,
        "seed = 1\n\n[actor]\nclip_ratio = 0.2\nentropy_coeff = 0.0\nzzzz = 1\n",
    )
    .unwrap();
    let message = format!("{:#}", load(Some(&path), &[]).unwrap_err());
    assert!(
        message.starts_with(&format!(
            "invalid config section `[actor]` ({} line 4): unknown field `actor`, expected one of",
            path.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with(
            "; `actor.clip_ratio`: did you mean `training.clip_range` (verl: actor.clip_ratio)?; \
             `actor.entropy_coeff`: did you mean `training.entropy_coef` (verl: \
             actor.entropy_coeff)?"
        ),
        "{message}"
    );
}

/// docs/migrating.md's table and the alias table of `aliases.rs` say the same: each alias is a
/// row naming our key and the foreign name in its system's column, and each foreign name in the
/// table is an alias; every key of ours named there exists.
#[test]
fn the_migration_table_is_the_alias_table() {
    use super::aliases::{ALIASES, System, known_keys};
    let doc = include_str!("../../../../docs/migrating.md");
    let columns = [System::Seed, System::Trl, System::Verl];
    let known = known_keys();
    // (ours, [seed names, TRL names, verl names]) of every table row of `ppo-rs key | seed | TRL | verl | …`.
    let mut rows: Vec<(String, [Vec<String>; 3])> = Vec::new();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 6, "short row: {line}");
        let ours = ticked(cells[1]);
        assert_eq!(ours.len(), 1, "first cell names one key: {line}");
        assert!(known.contains(&ours[0]), "unknown key in {line}");
        rows.push((
            ours[0].clone(),
            [ticked(cells[2]), ticked(cells[3]), ticked(cells[4])],
        ));
    }
    for &(system, foreign, ours) in ALIASES {
        let column = columns.iter().position(|s| *s == system).unwrap();
        assert!(
            rows.iter()
                .any(|(o, names)| o == ours && names[column].iter().any(|n| n == foreign)),
            "docs/migrating.md has no row `{ours}` with {} name `{foreign}`",
            system.name()
        );
    }
    for (ours, names) in &rows {
        for (column, names) in names.iter().enumerate() {
            for name in names {
                assert!(
                    ALIASES.contains(&(columns[column], name.as_str(), ours.as_str())),
                    "docs/migrating.md maps {} `{name}` to `{ours}` but aliases.rs does not",
                    columns[column].name()
                );
            }
        }
    }
}
