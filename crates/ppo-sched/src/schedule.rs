//! Pure learning-rate formulas: warmup ramp plus the post-warmup shape of each
//! [`ScheduleKind`]. See [`ScheduleConfig`] and [`ScheduleKind`] for the formulas.

use std::f64::consts::PI;

use crate::config::{ScheduleConfig, ScheduleKind};

/// Learning rate after `step` optimiser steps.
///
/// `base` is the post-warmup learning rate for `plateau` (the current,
/// possibly reduced, plateau LR) and is ignored by every other kind, which use
/// `config.learning_rate`. The config is assumed valid.
pub(crate) fn lr_at(config: &ScheduleConfig, step: u64, base: f64) -> f64 {
    let peak = match config.kind {
        ScheduleKind::Plateau(_) => base,
        _ => config.learning_rate,
    };
    if step < config.warmup_steps {
        return warmup(peak, step, config.warmup_steps);
    }
    let min = config.min_lr;
    let lr = match &config.kind {
        ScheduleKind::Constant | ScheduleKind::Plateau(_) => peak,
        ScheduleKind::Linear => with_horizon(config, step, |t, span| {
            interpolate(min, peak, remaining(t, span))
        }),
        ScheduleKind::Cosine => with_horizon(config, step, |t, span| {
            interpolate(min, peak, cosine_factor(t as f64 / span as f64))
        }),
        ScheduleKind::CosineWithRestarts { num_cycles } => {
            with_horizon(config, step, |t, span| {
                // Position within the current cycle, computed exactly in integers
                // so that restarts land precisely on cycle boundaries.
                let in_cycle = (u128::from(t) * u128::from(*num_cycles)) % u128::from(span);
                interpolate(min, peak, cosine_factor(in_cycle as f64 / span as f64))
            })
        }
        ScheduleKind::Wsd { decay_fraction } => with_horizon(config, step, |t, span| {
            let decay = wsd_decay_steps(*decay_fraction, span);
            let until_end = span - t;
            if until_end >= decay {
                peak
            } else {
                interpolate(min, peak, until_end as f64 / decay as f64)
            }
        }),
    };
    // Guard against rounding: never leave [min_lr, peak] after warmup.
    lr.max(min).min(peak.max(min))
}

/// Linear warmup: `peak * (step + 1) / (warmup + 1)` for `step < warmup`.
fn warmup(peak: f64, step: u64, warmup: u64) -> f64 {
    // Computed in f64 so `warmup = u64::MAX` cannot overflow; the ratio is
    // monotone in `step` and at most 1.
    let frac = (step as f64 + 1.0) / (warmup as f64 + 1.0);
    peak * frac.min(1.0)
}

/// Runs `shape(t, span)` with `t` post-warmup steps taken (`t < span`) and
/// `span = total_steps - warmup_steps`; returns `min_lr` at or past `total_steps`.
fn with_horizon(config: &ScheduleConfig, step: u64, shape: impl FnOnce(u64, u64) -> f64) -> f64 {
    if step >= config.total_steps {
        return config.min_lr;
    }
    // step >= warmup_steps here, and step < total_steps implies span > 0.
    let t = step - config.warmup_steps;
    let span = config.total_steps - config.warmup_steps;
    shape(t, span)
}

/// Fraction of the horizon still ahead: `(span - t) / span`, exact for the common cases.
fn remaining(t: u64, span: u64) -> f64 {
    (span - t) as f64 / span as f64
}

/// Cosine annealing factor in `[0, 1]` for progress `p` in `[0, 1]`.
fn cosine_factor(p: f64) -> f64 {
    0.5 * (1.0 + (PI * p).cos())
}

/// `min + (peak - min) * factor`, with `factor` in `[0, 1]`; exactly `peak`
/// when `factor == 1` (the plain formula can be one ulp off).
fn interpolate(min: f64, peak: f64, factor: f64) -> f64 {
    if factor >= 1.0 {
        peak
    } else {
        min + (peak - min) * factor
    }
}

/// Length of the WSD decay phase: `round(decay_fraction * span)` clamped to `[1, span]`.
fn wsd_decay_steps(decay_fraction: f64, span: u64) -> u64 {
    let decay = (decay_fraction * span as f64).round();
    // `as` saturates for out-of-range floats; the clamp handles the rest.
    (decay as u64).clamp(1, span)
}
