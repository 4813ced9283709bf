//! Hand-computed learning-rate values for every schedule kind, warmup and plateau.

use ppo_sched::{
    PlateauConfig, PlateauMode, ScheduleConfig, ScheduleKind, Scheduler, ThresholdMode,
};

fn config(lr: f64, min_lr: f64, warmup: u64, total: u64, kind: ScheduleKind) -> ScheduleConfig {
    ScheduleConfig {
        learning_rate: lr,
        min_lr,
        warmup_steps: warmup,
        total_steps: total,
        kind,
    }
}

/// LRs returned by a fresh scheduler for steps `0..n`.
fn lrs(config: ScheduleConfig, n: u64) -> Vec<f64> {
    let mut sched = Scheduler::new(config).expect("valid config");
    (0..n)
        .map(|_| {
            let lr = sched.lr();
            sched.step();
            lr
        })
        .collect()
}

fn assert_close(actual: f64, expected: f64) {
    let tol = 1e-12 * expected.abs().max(1e-300);
    assert!(
        (actual - expected).abs() <= tol,
        "expected {expected:e}, got {actual:e}"
    );
}

fn plateau(
    mode: PlateauMode,
    factor: f64,
    patience: u32,
    threshold: f64,
    threshold_mode: ThresholdMode,
    cooldown: u32,
) -> ScheduleKind {
    ScheduleKind::Plateau(PlateauConfig {
        mode,
        factor,
        patience,
        threshold,
        threshold_mode,
        cooldown,
    })
}

fn all_kinds() -> Vec<ScheduleKind> {
    vec![
        ScheduleKind::Constant,
        ScheduleKind::Linear,
        ScheduleKind::Cosine,
        ScheduleKind::CosineWithRestarts { num_cycles: 3 },
        ScheduleKind::Wsd {
            decay_fraction: 0.5,
        },
        ScheduleKind::Plateau(PlateauConfig::default()),
    ]
}

#[test]
fn warmup_exact_values_for_every_kind() {
    for kind in all_kinds() {
        let got = lrs(config(1.0, 0.0, 3, 100, kind.clone()), 4);
        assert_eq!(got, [0.25, 0.5, 0.75, 1.0], "kind {}", kind.name());
    }
}

#[test]
fn warmup_starts_above_zero_and_below_min_lr_is_allowed() {
    let got = lrs(config(1e-3, 5e-4, 4, 100, ScheduleKind::Cosine), 5);
    assert_close(got[0], 2e-4);
    assert_close(got[1], 4e-4);
    assert_close(got[2], 6e-4);
    assert_close(got[3], 8e-4);
    assert_eq!(got[4], 1e-3);
}

#[test]
fn no_warmup_starts_at_peak() {
    for kind in all_kinds() {
        assert_eq!(lrs(config(3e-4, 0.0, 0, 10, kind), 1), [3e-4]);
    }
}

#[test]
fn constant_stays_at_peak_past_total_steps() {
    let got = lrs(config(0.5, 0.1, 1, 4, ScheduleKind::Constant), 10);
    assert_eq!(got, [0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
}

#[test]
fn constant_accepts_zero_total_steps() {
    assert_eq!(
        lrs(config(0.5, 0.0, 0, 0, ScheduleKind::Constant), 3),
        [0.5; 3]
    );
}

#[test]
fn linear_values() {
    let got = lrs(config(1.0, 0.1, 0, 10, ScheduleKind::Linear), 13);
    assert_eq!(got[0], 1.0);
    assert_close(got[5], 0.55);
    assert_close(got[9], 0.19);
    assert_eq!(got[10], 0.1);
    assert_eq!(got[12], 0.1);
}

#[test]
fn linear_with_warmup_values() {
    let got = lrs(config(2.0, 0.0, 2, 6, ScheduleKind::Linear), 8);
    let expected = [2.0 / 3.0, 4.0 / 3.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0];
    for (g, e) in got.iter().zip(expected) {
        assert_close(*g, e);
    }
}

#[test]
fn cosine_values() {
    let (lr, min) = (1e-3, 1e-4);
    let cfg = config(lr, min, 10, 110, ScheduleKind::Cosine);
    assert_eq!(cfg.lr_at(10), lr);
    assert_close(cfg.lr_at(35), min + (lr - min) * (0.5 + 2f64.sqrt() / 4.0));
    assert_close(cfg.lr_at(60), (lr + min) / 2.0);
    assert_close(cfg.lr_at(85), min + (lr - min) * (0.5 - 2f64.sqrt() / 4.0));
    assert_eq!(cfg.lr_at(110), min);
    assert_eq!(cfg.lr_at(1_000_000), min);
}

#[test]
fn cosine_with_restarts_values() {
    let cfg = config(
        1.0,
        0.0,
        0,
        100,
        ScheduleKind::CosineWithRestarts { num_cycles: 2 },
    );
    assert_eq!(cfg.lr_at(0), 1.0);
    assert_close(cfg.lr_at(25), 0.5);
    assert_close(
        cfg.lr_at(49),
        0.5 * (1.0 + (std::f64::consts::PI * 0.98).cos()),
    );
    // Hard restart exactly at the cycle boundary.
    assert_eq!(cfg.lr_at(50), 1.0);
    assert_close(cfg.lr_at(75), 0.5);
    assert!(cfg.lr_at(99) < 0.01);
    assert_eq!(cfg.lr_at(100), 0.0);
    assert_eq!(cfg.lr_at(150), 0.0);
}

#[test]
fn cosine_with_restarts_boundaries_with_warmup_and_floor() {
    // Horizon 90 steps after 10 warmup steps, 3 cycles of 30 steps each.
    let cfg = config(
        1.0,
        0.2,
        10,
        100,
        ScheduleKind::CosineWithRestarts { num_cycles: 3 },
    );
    for start in [10, 40, 70] {
        assert_eq!(cfg.lr_at(start), 1.0, "restart at {start}");
        assert_close(cfg.lr_at(start + 15), 0.6);
        assert!(cfg.lr_at(start + 29) < 0.21);
    }
    assert_eq!(cfg.lr_at(100), 0.2);
}

#[test]
fn cosine_with_one_cycle_equals_cosine() {
    let restarts = config(
        1e-3,
        1e-5,
        5,
        50,
        ScheduleKind::CosineWithRestarts { num_cycles: 1 },
    );
    let cosine = config(1e-3, 1e-5, 5, 50, ScheduleKind::Cosine);
    for step in 0..60 {
        assert_eq!(restarts.lr_at(step), cosine.lr_at(step), "step {step}");
    }
}

#[test]
fn wsd_values() {
    // Horizon 100 after 10 warmup steps, decay over the last 20 steps (90..110).
    let cfg = config(
        1.0,
        0.0,
        10,
        110,
        ScheduleKind::Wsd {
            decay_fraction: 0.2,
        },
    );
    for step in 10..=90 {
        assert_eq!(cfg.lr_at(step), 1.0, "stable at {step}");
    }
    assert_close(cfg.lr_at(95), 0.75);
    assert_close(cfg.lr_at(100), 0.5);
    assert_close(cfg.lr_at(109), 0.05);
    assert_eq!(cfg.lr_at(110), 0.0);
    assert_eq!(cfg.lr_at(500), 0.0);
}

#[test]
fn wsd_with_min_lr_floor() {
    let cfg = config(
        1.0,
        0.5,
        0,
        10,
        ScheduleKind::Wsd {
            decay_fraction: 0.4,
        },
    );
    let got: Vec<f64> = (0..11).map(|s| cfg.lr_at(s)).collect();
    let expected = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5];
    for (g, e) in got.iter().zip(expected) {
        assert_close(*g, e);
    }
}

#[test]
fn wsd_full_fraction_equals_linear() {
    let wsd = config(
        1e-3,
        1e-4,
        3,
        40,
        ScheduleKind::Wsd {
            decay_fraction: 1.0,
        },
    );
    let linear = config(1e-3, 1e-4, 3, 40, ScheduleKind::Linear);
    for step in 0..50 {
        assert_close(wsd.lr_at(step), linear.lr_at(step));
    }
}

#[test]
fn warmup_equal_to_total_drops_to_min_lr() {
    for kind in [ScheduleKind::Linear, ScheduleKind::Cosine] {
        let got = lrs(config(1.0, 0.1, 3, 3, kind), 5);
        assert_eq!(got, [0.25, 0.5, 0.75, 0.1, 0.1]);
    }
}

#[test]
fn plateau_reduces_after_patience_plus_one_bad_evals_with_cooldown() {
    let cfg = config(
        1.0,
        0.2,
        0,
        0,
        plateau(PlateauMode::Min, 0.5, 2, 0.0, ThresholdMode::Abs, 1),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    // eval 0 sets best; evals 1, 2 are bad (within patience); eval 3 reduces.
    assert!(!sched.observe(1.0));
    assert!(!sched.observe(1.0));
    assert!(!sched.observe(1.0));
    assert_eq!(sched.lr(), 1.0);
    assert!(sched.observe(1.0));
    assert_eq!(sched.lr(), 0.5);
    // One cooldown eval is ignored, then patience + 1 = 3 bad ones reduce again.
    assert!(!sched.observe(1.0));
    assert!(!sched.observe(1.0));
    assert!(!sched.observe(1.0));
    assert!(sched.observe(1.0));
    assert_eq!(sched.lr(), 0.25);
    for _ in 0..3 {
        assert!(!sched.observe(1.0));
    }
    // 0.25 * 0.5 is clamped to min_lr.
    assert!(sched.observe(1.0));
    assert_eq!(sched.lr(), 0.2);
    // Already at the floor: no further reduction is reported.
    for _ in 0..20 {
        assert!(!sched.observe(1.0));
    }
    assert_eq!(sched.lr(), 0.2);
}

#[test]
fn plateau_improvement_resets_bad_counter() {
    let cfg = config(
        1.0,
        0.0,
        0,
        0,
        plateau(PlateauMode::Min, 0.1, 1, 0.0, ThresholdMode::Abs, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    let metrics = [5.0, 6.0, 4.0, 4.0, 3.0, 3.5];
    for m in metrics {
        assert!(!sched.observe(m), "metric {m}");
    }
    assert!(sched.observe(3.0));
    assert_close(sched.lr(), 0.1);
}

#[test]
fn plateau_relative_threshold_min_mode() {
    let cfg = config(
        1.0,
        0.0,
        0,
        0,
        plateau(PlateauMode::Min, 0.5, 0, 0.1, ThresholdMode::Rel, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    assert!(!sched.observe(1.0)); // best = 1.0
    assert!(!sched.observe(0.85)); // < 0.9: improvement, best = 0.85
    assert!(sched.observe(0.8)); // needs < 0.765: bad, patience 0 -> reduce
    assert_eq!(sched.lr(), 0.5);
}

#[test]
fn plateau_absolute_threshold_max_mode() {
    let cfg = config(
        1.0,
        0.0,
        0,
        0,
        plateau(PlateauMode::Max, 0.5, 0, 0.5, ThresholdMode::Abs, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    assert!(!sched.observe(10.0));
    assert!(!sched.observe(10.6)); // > 10.5: improvement
    assert!(sched.observe(11.0)); // needs > 11.1
    assert_eq!(sched.lr(), 0.5);
    assert!(sched.observe(-5.0)); // lower is worse in max mode
    assert_eq!(sched.lr(), 0.25);
}

#[test]
fn plateau_relative_threshold_max_mode() {
    let cfg = config(
        1.0,
        0.0,
        0,
        0,
        plateau(PlateauMode::Max, 0.5, 0, 0.1, ThresholdMode::Rel, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    assert!(!sched.observe(10.0));
    assert!(!sched.observe(11.5)); // > 11: improvement
    assert!(sched.observe(12.0)); // needs > 12.65
}

#[test]
fn plateau_nan_and_infinite_metrics_count_as_not_improved() {
    let cfg = config(
        1.0,
        0.0,
        0,
        0,
        plateau(PlateauMode::Min, 0.5, 0, 0.0, ThresholdMode::Abs, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    // Even before any finite metric, NaN is not an improvement.
    assert!(sched.observe(f64::NAN));
    assert_eq!(sched.lr(), 0.5);
    assert!(!sched.observe(1.0));
    assert!(sched.observe(f64::NEG_INFINITY));
    assert!(sched.observe(f64::NAN));
    assert_eq!(sched.lr(), 0.125);
    assert_eq!(sched.state().plateau.unwrap().best, Some(1.0));
}

#[test]
fn plateau_ignores_evaluations_during_warmup_then_reduces_the_post_warmup_base() {
    let cfg = config(
        1.0,
        0.0,
        3,
        0,
        plateau(PlateauMode::Min, 0.5, 0, 0.0, ThresholdMode::Abs, 0),
    );
    let mut sched = Scheduler::new(cfg).unwrap();
    for expected in [0.25, 0.5, 0.75] {
        assert_eq!(sched.lr(), expected);
        assert!(!sched.observe(f64::NAN));
        assert!(!sched.observe(f64::NAN));
        sched.step();
    }
    assert_eq!(sched.lr(), 1.0);
    assert_eq!(sched.state().plateau.unwrap().best, None);
    assert!(!sched.observe(2.0));
    assert!(sched.observe(2.0));
    assert_eq!(sched.lr(), 0.5);
    sched.step();
    assert_eq!(sched.lr(), 0.5);
}

#[test]
fn observe_is_a_no_op_for_non_plateau_kinds() {
    for kind in all_kinds()
        .into_iter()
        .filter(|k| !matches!(k, ScheduleKind::Plateau(_)))
    {
        let mut sched = Scheduler::new(config(1.0, 0.0, 0, 10, kind)).unwrap();
        let before = sched.state();
        for m in [1.0, 2.0, f64::NAN, 3.0, 4.0] {
            assert!(!sched.observe(m));
        }
        assert_eq!(sched.state(), before);
        assert_eq!(sched.lr(), 1.0);
    }
}

#[test]
fn steps_taken_and_config_accessors() {
    let cfg = config(1.0, 0.0, 0, 10, ScheduleKind::Cosine);
    let mut sched = Scheduler::new(cfg.clone()).unwrap();
    assert_eq!(sched.steps_taken(), 0);
    for _ in 0..7 {
        sched.step();
    }
    assert_eq!(sched.steps_taken(), 7);
    assert_eq!(sched.config(), &cfg);
    assert_eq!(sched.lr(), cfg.lr_at(7));
}
