//! The training progress bar and its one-line metric summary.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Metrics shown in the progress message: (metric name, label, decimals).
const SUMMARY_FIELDS: [(&str, &str, usize); 7] = [
    ("policy_loss", "pl", 3),
    ("value_loss", "vl", 3),
    ("reward", "r", 2),
    ("score", "score", 3),
    ("kl_divergence", "kl", 3),
    ("advantage", "adv", 2),
    ("entropy", "ent", 2),
];

const TEMPLATE: &str =
    "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}";

/// A progress bar over optimiser steps, drawn on stderr.
///
/// Register it with [`crate::LogGuard::attach_progress`] so console log lines
/// are printed above the bar instead of through it.
#[derive(Debug, Clone)]
pub struct TrainProgress {
    bar: ProgressBar,
}

impl TrainProgress {
    /// A bar for `total_steps` steps, starting at `start_step` (non-zero when
    /// resuming). When `enabled` is false (no terminal, CI) nothing is drawn.
    pub fn new(total_steps: u64, start_step: u64, enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_steps), target);
        let style =
            ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_position(start_step);
        // The rate should only count steps done in this process.
        bar.reset_eta();
        Self { bar }
    }

    /// Moves the bar to `step` and shows the summary of `values`
    /// (see [`format_summary`]).
    pub fn update(&self, step: u64, values: &[(&str, f64)]) {
        self.bar.set_position(step);
        self.bar.set_message(format_summary(values));
    }

    /// Stops the bar, leaving its last state on screen.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// Whether the bar draws anything.
    pub fn is_enabled(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// The current step.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// The underlying indicatif bar (cheap to clone; clones share state).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

/// The progress message for `values`: `policy_loss`, `value_loss`, `reward`, `score`,
/// `kl_divergence`, `advantage` and `entropy`, in that order when present, e.g.
/// `"pl=0.012 vl=0.341 r=0.25 score=0.250 kl=0.500 adv=0.00 ent=5.21"`. Other names are ignored;
/// a name given twice uses its first value.
pub fn format_summary(values: &[(&str, f64)]) -> String {
    let mut parts = Vec::with_capacity(SUMMARY_FIELDS.len());
    for (name, label, decimals) in SUMMARY_FIELDS {
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == name) {
            parts.push(format!("{label}={value:.decimals$}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_orders_and_rounds_known_metrics() {
        let values = [
            ("entropy", 5.2071),
            ("kl_divergence", 0.5),
            ("advantage", -0.001),
            ("reward", 0.25),
            ("score", 0.2471),
            ("value_loss", 0.3414),
            ("policy_loss", 0.0123),
        ];
        assert_eq!(
            format_summary(&values),
            "pl=0.012 vl=0.341 r=0.25 score=0.247 kl=0.500 adv=-0.00 ent=5.21"
        );
    }

    #[test]
    fn summary_skips_missing_metrics() {
        assert_eq!(format_summary(&[("reward", 1.0), ("kl", 2.0)]), "r=1.00");
        assert_eq!(format_summary(&[]), "");
        assert_eq!(
            format_summary(&[("policy_loss", 1.0), ("policy_loss", 2.0)]),
            "pl=1.000"
        );
    }

    #[test]
    fn hidden_bar_tracks_position() {
        let progress = TrainProgress::new(100, 40, false);
        assert!(!progress.is_enabled());
        assert_eq!(progress.position(), 40);
        progress.update(41, &[("reward", 0.5)]);
        assert_eq!(progress.position(), 41);
        assert_eq!(progress.bar().message(), "r=0.50");
        progress.finish();
    }
}
