//! State round trip: a scheduler rebuilt from its serialised state continues
//! bit-identically to the original.

mod common;

use common::{Op, arb_config, arb_config_with, arb_ops, arb_plateau};
use ppo_sched::{PlateauConfig, ScheduleConfig, ScheduleKind, Scheduler, SchedulerState};
use proptest::prelude::*;

fn apply(sched: &mut Scheduler, op: &Op) -> bool {
    match op {
        Op::Step => {
            sched.step();
            false
        }
        Op::Observe(m) => sched.observe(*m),
    }
}

/// Serialises config and state to JSON, rebuilds a scheduler from them and
/// checks that both continue identically through `after`.
fn assert_round_trip(original: &mut Scheduler, after: &[Op]) -> Result<(), TestCaseError> {
    let state_json = serde_json::to_string(&original.state()).unwrap();
    let config_json = serde_json::to_string(original.config()).unwrap();
    let state: SchedulerState = serde_json::from_str(&state_json).unwrap();
    let config: ScheduleConfig = serde_json::from_str(&config_json).unwrap();
    prop_assert_eq!(&state, &original.state());
    prop_assert_eq!(&config, original.config());

    let mut resumed = Scheduler::from_state(config, state).unwrap();
    prop_assert_eq!(resumed.lr().to_bits(), original.lr().to_bits());
    prop_assert_eq!(resumed.steps_taken(), original.steps_taken());
    for (i, op) in after.iter().enumerate() {
        prop_assert_eq!(
            apply(&mut resumed, op),
            apply(original, op),
            "op {} {:?}",
            i,
            op
        );
        prop_assert_eq!(
            resumed.lr().to_bits(),
            original.lr().to_bits(),
            "after op {} {:?}",
            i,
            op
        );
    }
    prop_assert_eq!(resumed.state(), original.state());
    Ok(())
}

proptest! {
    #[test]
    fn serialised_state_resumes_bit_identically(
        config in arb_config(),
        before in arb_ops(300),
        after in arb_ops(300),
    ) {
        let mut original = Scheduler::new(config).unwrap();
        for op in &before {
            apply(&mut original, op);
        }
        assert_round_trip(&mut original, &after)?;
    }

    #[test]
    fn serialised_plateau_state_resumes_bit_identically(
        config in arb_config_with(arb_plateau().prop_map(ScheduleKind::Plateau)),
        before in arb_ops(300),
        after in arb_ops(300),
    ) {
        let mut original = Scheduler::new(config).unwrap();
        for op in &before {
            apply(&mut original, op);
        }
        assert_round_trip(&mut original, &after)?;
    }
}

#[test]
fn plateau_state_round_trip_mid_cooldown() {
    let config = ScheduleConfig {
        learning_rate: 3e-4,
        min_lr: 1e-6,
        warmup_steps: 2,
        total_steps: 0,
        kind: ScheduleKind::Plateau(PlateauConfig {
            factor: 0.3,
            patience: 1,
            threshold: 0.01,
            cooldown: 3,
            ..PlateauConfig::default()
        }),
    };
    let mut original = Scheduler::new(config).unwrap();
    original.step();
    original.step();
    // best 0.7; 0.699 is not below 0.7 * 0.99 (bad 1 of patience 1); 0.71 is
    // bad 2 -> reduction; then one cooldown eval.
    assert!(!original.observe(0.7));
    assert!(!original.observe(0.699));
    assert!(original.observe(0.71));
    assert!(!original.observe(f64::NAN));
    let state = original.state();
    let plateau = state.plateau.clone().unwrap();
    assert_eq!(plateau.cooldown_counter, 2);
    assert_eq!(plateau.best, Some(0.7));
    assert_eq!(plateau.lr, 3e-4 * 0.3);

    let after = [
        Op::Observe(0.8),
        Op::Step,
        Op::Observe(0.8),
        Op::Observe(0.8),
        Op::Observe(0.8),
        Op::Step,
        Op::Observe(0.1),
        Op::Step,
    ];
    assert_round_trip(&mut original, &after).unwrap();
}

#[test]
fn state_json_shape() {
    let config = ScheduleConfig {
        learning_rate: 1.0,
        min_lr: 0.0,
        warmup_steps: 0,
        total_steps: 0,
        kind: ScheduleKind::Plateau(PlateauConfig::default()),
    };
    let mut sched = Scheduler::new(config).unwrap();
    sched.step();
    sched.observe(2.5);
    assert_eq!(
        serde_json::to_string(&sched.state()).unwrap(),
        r#"{"steps_taken":1,"plateau":{"lr":1.0,"best":2.5,"num_bad_evals":0,"cooldown_counter":0}}"#
    );
}
