//! Proptest strategies shared by the integration tests.

#![allow(dead_code)]

use ppo_sched::{PlateauConfig, PlateauMode, ScheduleConfig, ScheduleKind, ThresholdMode};
use proptest::prelude::*;

/// Any valid plateau configuration.
pub fn arb_plateau() -> impl Strategy<Value = PlateauConfig> {
    (
        prop_oneof![Just(PlateauMode::Min), Just(PlateauMode::Max)],
        0.01f64..0.99,
        0u32..5,
        prop_oneof![Just(0.0), 0.0f64..0.5],
        prop_oneof![Just(ThresholdMode::Rel), Just(ThresholdMode::Abs)],
        0u32..4,
    )
        .prop_map(
            |(mode, factor, patience, threshold, threshold_mode, cooldown)| PlateauConfig {
                mode,
                factor,
                patience,
                threshold,
                threshold_mode,
                cooldown,
            },
        )
}

/// Any valid schedule kind.
pub fn arb_kind() -> impl Strategy<Value = ScheduleKind> {
    prop_oneof![
        Just(ScheduleKind::Constant),
        Just(ScheduleKind::Linear),
        Just(ScheduleKind::Cosine),
        (1u32..6).prop_map(|num_cycles| ScheduleKind::CosineWithRestarts { num_cycles }),
        prop_oneof![Just(1.0), 0.001f64..=1.0]
            .prop_map(|decay_fraction| ScheduleKind::Wsd { decay_fraction }),
        arb_plateau().prop_map(ScheduleKind::Plateau),
    ]
}

/// A valid configuration of the given kind (sometimes with `min_lr == 0`,
/// `min_lr == learning_rate`, no warmup or `warmup_steps == total_steps`).
pub fn arb_config_with(
    kind: impl Strategy<Value = ScheduleKind>,
) -> impl Strategy<Value = ScheduleConfig> {
    (
        1e-7f64..1.0,
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
        prop_oneof![Just(0u64), 0u64..40],
        prop_oneof![Just(0u64), 0u64..300],
        kind,
    )
        .prop_map(
            |(learning_rate, min_frac, warmup_steps, extra, kind)| ScheduleConfig {
                learning_rate,
                min_lr: learning_rate * min_frac,
                warmup_steps,
                total_steps: (warmup_steps + extra).max(1),
                kind,
            },
        )
}

/// Any valid configuration.
pub fn arb_config() -> impl Strategy<Value = ScheduleConfig> {
    arb_config_with(arb_kind())
}

/// Metrics with frequent ties, NaNs and infinities.
pub fn arb_metric() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-3i32..=3).prop_map(f64::from),
        4 => -100.0f64..100.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

/// One call on a scheduler.
#[derive(Clone, Debug)]
pub enum Op {
    /// `step()`
    Step,
    /// `observe(metric)`
    Observe(f64),
}

/// Sequences of steps interleaved with observations.
pub fn arb_ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            2 => Just(Op::Step),
            1 => arb_metric().prop_map(Op::Observe),
        ],
        0..max_len,
    )
}
