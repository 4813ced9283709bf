//! Property tests: bounds, warmup monotonicity, decay monotonicity and the
//! reduce-on-plateau rule checked against an independent model.

mod common;

use common::{Op, arb_config, arb_config_with, arb_metric, arb_ops, arb_plateau};
use ppo_sched::{
    PlateauConfig, PlateauMode, ScheduleConfig, ScheduleKind, Scheduler, ThresholdMode,
};
use proptest::prelude::*;

/// Runs `ops` and returns the LR seen before every step (index = step).
fn lrs_by_step(config: &ScheduleConfig, ops: &[Op], extra_steps: u64) -> Vec<f64> {
    let mut sched = Scheduler::new(config.clone()).unwrap();
    let mut out = vec![sched.lr()];
    let record = |sched: &mut Scheduler, out: &mut Vec<f64>| {
        sched.step();
        out.push(sched.lr());
    };
    for op in ops {
        match op {
            Op::Step => record(&mut sched, &mut out),
            Op::Observe(m) => {
                sched.observe(*m);
                // The LR for the current step may change after an observation;
                // keep the latest value for this step.
                *out.last_mut().unwrap() = sched.lr();
            }
        }
    }
    while (out.len() as u64) < config.total_steps + extra_steps {
        record(&mut sched, &mut out);
    }
    out
}

proptest! {
    #[test]
    fn lr_stays_within_min_lr_and_learning_rate_after_warmup(
        config in arb_config(),
        ops in arb_ops(200),
    ) {
        let lrs = lrs_by_step(&config, &ops, 20);
        for (step, lr) in lrs.iter().enumerate().skip(config.warmup_steps as usize) {
            prop_assert!(*lr >= config.min_lr, "step {step}: {lr:e} < min_lr {:e}", config.min_lr);
            prop_assert!(*lr <= config.learning_rate, "step {step}: {lr:e} > learning_rate");
        }
    }

    #[test]
    fn warmup_is_positive_monotone_and_reaches_learning_rate(
        config in arb_config(),
    ) {
        let w = config.warmup_steps;
        let lrs: Vec<f64> = (0..=w).map(|s| config.lr_at(s)).collect();
        let mut sched = Scheduler::new(config.clone()).unwrap();
        for (step, lr) in lrs.iter().enumerate() {
            prop_assert_eq!(sched.lr().to_bits(), lr.to_bits(), "step {}", step);
            prop_assert!(*lr <= config.learning_rate);
            if (step as u64) < w {
                prop_assert!(*lr > 0.0);
            }
            sched.step();
        }
        for pair in lrs[..w as usize].windows(2) {
            prop_assert!(pair[0] < pair[1], "warmup not increasing: {:?}", pair);
        }
        // Documented exception: with no decay horizon left the LR is min_lr.
        if w < config.total_steps || !config.kind.has_horizon() {
            prop_assert_eq!(lrs[w as usize], config.learning_rate);
            if w > 0 {
                prop_assert!(lrs[w as usize - 1] <= lrs[w as usize]);
            }
        } else {
            prop_assert_eq!(lrs[w as usize], config.min_lr);
        }
    }

    #[test]
    fn decay_is_non_increasing_after_warmup(
        config in arb_config_with(prop_oneof![
            Just(ScheduleKind::Linear),
            Just(ScheduleKind::Cosine),
            prop_oneof![Just(1.0), 0.001f64..=1.0]
                .prop_map(|decay_fraction| ScheduleKind::Wsd { decay_fraction }),
        ]),
    ) {
        let w = config.warmup_steps;
        let lrs: Vec<f64> = (w..config.total_steps + 10).map(|s| config.lr_at(s)).collect();
        for (i, pair) in lrs.windows(2).enumerate() {
            prop_assert!(pair[1] <= pair[0], "step {}: {:e} -> {:e}", w + i as u64, pair[0], pair[1]);
        }
        prop_assert_eq!(*lrs.last().unwrap(), config.min_lr);
        prop_assert_eq!(config.lr_at(config.total_steps), config.min_lr);
    }

    #[test]
    fn restarts_only_increase_at_cycle_boundaries(
        config in arb_config_with((1u32..6).prop_map(|num_cycles| ScheduleKind::CosineWithRestarts { num_cycles })),
    ) {
        let ScheduleKind::CosineWithRestarts { num_cycles } = config.kind else { unreachable!() };
        let (w, total) = (config.warmup_steps, config.total_steps);
        let span = total - w;
        let scaled = |s: u64| u128::from(s - w) * u128::from(num_cycles);
        let span = u128::from(span.max(1));
        for s in w..total + 5 {
            let (a, b) = (config.lr_at(s), config.lr_at(s + 1));
            if s + 1 < total && scaled(s + 1) / span > scaled(s) / span {
                // A new cycle began since the previous step; it starts at the
                // peak if the boundary falls exactly on this step.
                if scaled(s + 1) % span == 0 {
                    prop_assert_eq!(b, config.learning_rate, "restart at {}", s + 1);
                }
            } else {
                prop_assert!(b <= a, "step {}: {:e} -> {:e}", s + 1, a, b);
            }
        }
        prop_assert_eq!(config.lr_at(total), config.min_lr);
    }

    #[test]
    fn constant_metric_reduces_on_a_fixed_period(
        plateau in arb_plateau(),
        evals in 0usize..80,
    ) {
        let config = ScheduleConfig {
            learning_rate: 1.0,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 0,
            kind: ScheduleKind::Plateau(plateau.clone()),
        };
        let mut sched = Scheduler::new(config).unwrap();
        let (p, c) = (plateau.patience as usize, plateau.cooldown as usize);
        let mut expected_lr = 1.0;
        // Eval 0 sets the best; evals 1.. are all non-improving. The first
        // reduction is on bad eval p + 1, then every c + p + 1 evals.
        prop_assert!(!sched.observe(1.0));
        for bad in 1..=evals {
            let expect = bad > p && (bad - (p + 1)) % (c + p + 1) == 0;
            prop_assert_eq!(sched.observe(1.0), expect, "bad eval {}", bad);
            if expect {
                expected_lr *= plateau.factor;
            }
            prop_assert_eq!(sched.lr(), expected_lr);
        }
    }

    #[test]
    fn plateau_matches_independent_model(
        plateau in arb_plateau(),
        metrics in proptest::collection::vec(arb_metric(), 0..120),
    ) {
        let config = ScheduleConfig {
            learning_rate: 1.0,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 0,
            kind: ScheduleKind::Plateau(plateau.clone()),
        };
        let mut sched = Scheduler::new(config).unwrap();
        let (p, c) = (i64::from(plateau.patience), i64::from(plateau.cooldown));
        let mut best: Option<f64> = None;
        let mut bad_history: Vec<bool> = Vec::new();
        let mut last_reduction: i64 = -(c + 1);
        let mut lr = 1.0;
        for (i, m) in metrics.iter().copied().enumerate() {
            let i = i as i64;
            let improved = model_improves(&plateau, m, best);
            if improved {
                best = Some(m);
            }
            bad_history.push(!improved);
            let last_all_bad = i >= p
                && bad_history[(i - p) as usize..].iter().all(|b| *b);
            let expect = last_all_bad && i - last_reduction > c + p;
            prop_assert_eq!(sched.observe(m), expect, "eval {} metric {}", i, m);
            if expect {
                last_reduction = i;
                lr *= plateau.factor;
            }
            prop_assert_eq!(sched.lr(), lr);
            prop_assert_eq!(sched.state().plateau.unwrap().best, best);
        }
    }

    #[test]
    fn plateau_lr_is_floored_and_never_increases(
        plateau in arb_plateau(),
        learning_rate in 1e-6f64..1.0,
        min_frac in 0.0f64..=1.0,
        metrics in proptest::collection::vec(arb_metric(), 0..120),
    ) {
        let min_lr = learning_rate * min_frac;
        let config = ScheduleConfig {
            learning_rate,
            min_lr,
            warmup_steps: 0,
            total_steps: 0,
            kind: ScheduleKind::Plateau(plateau),
        };
        let mut sched = Scheduler::new(config).unwrap();
        let mut prev = sched.lr();
        for m in metrics {
            let reduced = sched.observe(m);
            let lr = sched.lr();
            prop_assert!(lr >= min_lr && lr <= prev);
            prop_assert_eq!(reduced, lr < prev);
            prev = lr;
        }
    }
}

/// PyTorch's improvement test as documented, plus "non-finite never improves".
fn model_improves(plateau: &PlateauConfig, m: f64, best: Option<f64>) -> bool {
    if m.is_nan() || m.is_infinite() {
        return false;
    }
    let Some(best) = best else { return true };
    let t = plateau.threshold;
    match (plateau.mode, plateau.threshold_mode) {
        (PlateauMode::Min, ThresholdMode::Rel) => m < best * (1.0 - t),
        (PlateauMode::Min, ThresholdMode::Abs) => m < best - t,
        (PlateauMode::Max, ThresholdMode::Rel) => m > best * (1.0 + t),
        (PlateauMode::Max, ThresholdMode::Abs) => m > best + t,
    }
}
