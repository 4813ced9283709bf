//! The prompts of a run: the built-in `letters` task, or `[[data.sources]]` files read by
//! `ppo-data`, mixed, shuffled with the run's seed and capped at `data.max_samples`.
//!
//! The order returned is final: the first `train_samples` prompts train, the rest are the
//! held-out eval split (see `config::resolve`), so the split is a function of (files, seed).

use anyhow::{Context, Result, bail};
use ppo_core::{PromptSample, letters_task};
use ppo_data::{DataSource, Record};
use ppo_models::{Rng, Tokenizer};

use crate::config::{Overflow, RawConfig, Resolved, Task};

/// Seed offset of the built-in task's prompt generator.
const LETTERS_SEED: u64 = 0x5eed;
/// Seed offset of the dataset shuffle (independent of weights and sampling).
const SHUFFLE_SEED: u64 = 0xda7a_5eed;

/// The prompts of a run, in training order (see [`load_prompts`]), checked against the
/// longest prompt the model's positions leave room for and handled as
/// `data.prompt_overflow` says, before any model is built.
pub fn run_prompts(resolved: &Resolved) -> Result<(Vec<PromptSample>, PromptFit)> {
    let raw = &resolved.raw;
    let prompts = load_prompts(raw)?;
    let tokenizer = crate::models::policy_tokenizer(raw, crate::models::prompt_format(raw))?;
    fit_prompts(
        prompts,
        tokenizer.as_ref(),
        resolved.prompt_limit(),
        raw.data.prompt_overflow,
    )
}

/// The prompts of `raw`, in training order (train split first, then eval).
pub fn load_prompts(raw: &RawConfig) -> Result<Vec<PromptSample>> {
    let d = &raw.data;
    match d.task {
        Task::Letters => {
            if !d.sources.is_empty() {
                bail!(
                    "invalid config key `data.sources`: files are read only with data.task = \"files\""
                );
            }
            let mut prompts = letters_task(d.num_samples, raw.seed ^ LETTERS_SEED);
            if d.max_samples > 0 {
                prompts.truncate(d.max_samples);
            }
            Ok(prompts)
        }
        Task::Files => {
            if d.sources.is_empty() {
                bail!(
                    "invalid config key `data.sources`: data.task = \"files\" needs at least one [[data.sources]] entry"
                );
            }
            let records = ppo_data::load_sources(&d.sources)?;
            Ok(arrange(records, d.shuffle, d.max_samples, raw.seed))
        }
    }
}

/// Records → prompts: shuffled with `seed` when asked, then the first `max_samples` (0 = all).
pub fn arrange(
    records: Vec<Record>,
    shuffle: bool,
    max_samples: usize,
    seed: u64,
) -> Vec<PromptSample> {
    let mut prompts: Vec<PromptSample> = records
        .into_iter()
        .map(|r| PromptSample {
            prompt: r.input,
            reference: r.output,
        })
        .collect();
    if shuffle {
        Rng::new(seed ^ SHUFFLE_SEED).shuffle(&mut prompts);
    }
    if max_samples > 0 {
        prompts.truncate(max_samples);
    }
    prompts
}

/// Reads one file for `ppo-cli eval --data FILE`, with the field mapping of the run's first
/// source when it has one, else the defaults of `[[data.sources]]` (`prompt`, no reference).
pub fn load_eval_file(
    raw: &RawConfig,
    path: &std::path::Path,
    input: Option<&str>,
    output: Option<&str>,
) -> Result<Vec<PromptSample>> {
    let first = raw.data.sources.first();
    let source = DataSource {
        path: path.to_path_buf(),
        format: None,
        input: input
            .map(str::to_owned)
            .or_else(|| first.map(|s| s.input.clone()))
            .unwrap_or_else(|| ppo_data::DEFAULT_INPUT_FIELD.into()),
        output: output
            .map(str::to_owned)
            .or_else(|| first.and_then(|s| s.output.clone())),
        max_samples: None,
    };
    let records = ppo_data::load_source(&source)
        .with_context(|| format!("cannot read evaluation data {}", path.display()))?;
    Ok(arrange(records, false, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                input: format!("q{i}"),
                output: Some(format!("a{i}")),
            })
            .collect()
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_then_capped() {
        let a = arrange(records(50), true, 0, 7);
        let b = arrange(records(50), true, 0, 7);
        let c = arrange(records(50), true, 0, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut names: Vec<_> = a.iter().map(|p| p.prompt.clone()).collect();
        names.sort();
        let mut expected: Vec<_> = (0..50).map(|i| format!("q{i}")).collect();
        expected.sort();
        assert_eq!(names, expected);
        assert!(
            a.iter()
                .all(|p| p.reference.as_deref() == Some(&p.prompt.replace('q', "a")[..]))
        );
        let capped = arrange(records(50), true, 10, 7);
        assert_eq!(capped, a[..10]);
        let unshuffled = arrange(records(5), false, 3, 7);
        let names: Vec<_> = unshuffled.iter().map(|p| p.prompt.as_str()).collect();
        assert_eq!(names, ["q0", "q1", "q2"]);
    }
}

/// What [`fit_prompts`] did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PromptFit {
    /// The longest prompt allowed, in tokens.
    pub limit: usize,
    /// Prompts cut to their last `limit` tokens (by the trainer, at each use).
    pub truncated: usize,
    /// Prompts removed.
    pub dropped: usize,
}

impl std::fmt::Display for PromptFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} prompts longer than {} tokens dropped, {} kept with their last {} tokens \
             (data.prompt_overflow, data.max_prompt_length)",
            self.dropped, self.limit, self.truncated, self.limit
        )
    }
}

/// Checks every prompt against `limit` tokens; longer ones are an error naming the first
/// (`"error"`), removed (`"drop"`) or kept for the trainer to cut from the left
/// (`"truncate_left"`).
pub fn fit_prompts(
    prompts: Vec<PromptSample>,
    tokenizer: &dyn Tokenizer,
    limit: usize,
    overflow: Overflow,
) -> Result<(Vec<PromptSample>, PromptFit)> {
    let mut fit = PromptFit {
        limit,
        ..PromptFit::default()
    };
    let mut kept = Vec::with_capacity(prompts.len());
    for (i, sample) in prompts.into_iter().enumerate() {
        let n = tokenizer.encode_prompt(&sample.prompt).len();
        if n <= limit {
            kept.push(sample);
            continue;
        }
        match overflow {
            Overflow::Error => {
                let start: String = sample.prompt.chars().take(40).collect();
                bail!(
                    "prompt {i} ({start:?}…) has {n} tokens, more than the {limit} the model's \
                     positions leave after generation (data.max_prompt_length); set \
                     data.prompt_overflow = \"truncate_left\" or \"drop\", shorten it, or \
                     generate fewer tokens"
                );
            }
            Overflow::Drop => fit.dropped += 1,
            Overflow::TruncateLeft => {
                fit.truncated += 1;
                kept.push(sample);
            }
        }
    }
    Ok((kept, fit))
}
