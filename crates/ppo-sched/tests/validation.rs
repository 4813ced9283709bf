//! Config and resumed-state validation: each error names the offending key.

use ppo_sched::{
    PlateauConfig, PlateauState, SchedError, ScheduleConfig, ScheduleKind, Scheduler,
    SchedulerState,
};

fn base(kind: ScheduleKind) -> ScheduleConfig {
    ScheduleConfig {
        learning_rate: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 10,
        total_steps: 100,
        kind,
    }
}

fn message(config: &ScheduleConfig) -> String {
    let err = config.validate().expect_err("config should be rejected");
    // `new` must reject exactly what `validate` rejects (compared as text:
    // errors carrying NaN are not equal to themselves).
    let from_new = Scheduler::new(config.clone()).expect_err("new should reject it too");
    assert_eq!(from_new.to_string(), err.to_string());
    err.to_string()
}

fn plateau_with(f: impl FnOnce(&mut PlateauConfig)) -> ScheduleConfig {
    let mut p = PlateauConfig::default();
    f(&mut p);
    base(ScheduleKind::Plateau(p))
}

#[test]
fn min_lr_above_learning_rate_message() {
    let cfg = ScheduleConfig {
        learning_rate: 1e-3,
        min_lr: 2e-3,
        ..base(ScheduleKind::Cosine)
    };
    assert_eq!(
        message(&cfg),
        "min_lr (2e-3) must not exceed learning_rate (1e-3)"
    );
}

#[test]
fn learning_rate_must_be_positive_and_finite() {
    for lr in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let cfg = ScheduleConfig {
            learning_rate: lr,
            min_lr: 0.0,
            ..base(ScheduleKind::Constant)
        };
        let msg = message(&cfg);
        assert!(msg.starts_with("learning_rate ("), "{msg}");
    }
}

#[test]
fn min_lr_must_be_non_negative_and_finite() {
    for min_lr in [-1e-9, f64::NAN, f64::NEG_INFINITY] {
        let cfg = ScheduleConfig {
            min_lr,
            ..base(ScheduleKind::Linear)
        };
        let msg = message(&cfg);
        assert!(msg.starts_with("min_lr ("), "{msg}");
    }
}

#[test]
fn warmup_must_not_exceed_total_for_decaying_kinds() {
    for kind in [
        ScheduleKind::Linear,
        ScheduleKind::Cosine,
        ScheduleKind::CosineWithRestarts { num_cycles: 2 },
        ScheduleKind::Wsd {
            decay_fraction: 0.1,
        },
    ] {
        let name = kind.name();
        let cfg = ScheduleConfig {
            warmup_steps: 101,
            ..base(kind)
        };
        assert_eq!(
            message(&cfg),
            format!("warmup_steps (101) must not exceed total_steps (100) for the {name} schedule")
        );
    }
}

#[test]
fn total_steps_must_be_positive_for_decaying_kinds() {
    let cfg = ScheduleConfig {
        warmup_steps: 0,
        total_steps: 0,
        ..base(ScheduleKind::Cosine)
    };
    assert_eq!(
        message(&cfg),
        "total_steps must be greater than 0 for the cosine schedule"
    );
}

#[test]
fn constant_and_plateau_ignore_total_steps() {
    for kind in [
        ScheduleKind::Constant,
        ScheduleKind::Plateau(PlateauConfig::default()),
    ] {
        let cfg = ScheduleConfig {
            warmup_steps: 50,
            total_steps: 0,
            ..base(kind)
        };
        assert_eq!(cfg.validate(), Ok(()));
    }
}

#[test]
fn min_lr_equal_to_learning_rate_is_allowed() {
    let cfg = ScheduleConfig {
        min_lr: 1e-3,
        ..base(ScheduleKind::Cosine)
    };
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn num_cycles_must_be_positive() {
    let msg = message(&base(ScheduleKind::CosineWithRestarts { num_cycles: 0 }));
    assert!(msg.starts_with("num_cycles"), "{msg}");
}

#[test]
fn decay_fraction_must_be_in_unit_interval() {
    for f in [0.0, -0.5, 1.0001, f64::NAN] {
        let msg = message(&base(ScheduleKind::Wsd { decay_fraction: f }));
        assert!(msg.starts_with("decay_fraction ("), "{msg}");
    }
    assert_eq!(
        base(ScheduleKind::Wsd {
            decay_fraction: 1.0
        })
        .validate(),
        Ok(())
    );
}

#[test]
fn factor_must_be_in_open_unit_interval() {
    for f in [0.0, 1.0, -0.1, 2.0, f64::NAN] {
        let msg = message(&plateau_with(|p| p.factor = f));
        assert!(msg.starts_with("factor ("), "{msg}");
    }
}

#[test]
fn threshold_must_be_non_negative_and_finite() {
    for t in [-1e-4, f64::NAN, f64::INFINITY] {
        let msg = message(&plateau_with(|p| p.threshold = t));
        assert!(msg.starts_with("threshold ("), "{msg}");
    }
    assert_eq!(plateau_with(|p| p.threshold = 0.0).validate(), Ok(()));
}

#[test]
fn from_state_validates_the_config() {
    let cfg = ScheduleConfig {
        learning_rate: -1.0,
        ..base(ScheduleKind::Constant)
    };
    let state = SchedulerState {
        steps_taken: 0,
        plateau: None,
    };
    assert!(matches!(
        Scheduler::from_state(cfg, state),
        Err(SchedError::InvalidLearningRate(_))
    ));
}

fn state_error(config: ScheduleConfig, plateau: Option<PlateauState>) -> String {
    let state = SchedulerState {
        steps_taken: 3,
        plateau,
    };
    Scheduler::from_state(config, state)
        .expect_err("state should be rejected")
        .to_string()
}

#[test]
fn from_state_rejects_plateau_state_mismatch() {
    let msg = state_error(base(ScheduleKind::Cosine), Some(PlateauState::new(1e-3)));
    assert!(msg.starts_with("state.plateau: "), "{msg}");
    assert!(msg.contains("cosine"), "{msg}");

    let msg = state_error(base(ScheduleKind::Plateau(PlateauConfig::default())), None);
    assert!(msg.starts_with("state.plateau: "), "{msg}");
}

#[test]
fn from_state_rejects_inconsistent_plateau_fields() {
    let cfg = base(ScheduleKind::Plateau(PlateauConfig {
        patience: 2,
        cooldown: 1,
        ..PlateauConfig::default()
    }));
    let ok = PlateauState::new(1e-3);

    for lr in [2e-3, 1e-5, f64::NAN] {
        let msg = state_error(cfg.clone(), Some(PlateauState { lr, ..ok.clone() }));
        assert!(msg.starts_with("state.plateau.lr: "), "{msg}");
    }
    let msg = state_error(
        cfg.clone(),
        Some(PlateauState {
            best: Some(f64::INFINITY),
            ..ok.clone()
        }),
    );
    assert!(msg.starts_with("state.plateau.best: "), "{msg}");
    let msg = state_error(
        cfg.clone(),
        Some(PlateauState {
            num_bad_evals: 3,
            ..ok.clone()
        }),
    );
    assert!(msg.starts_with("state.plateau.num_bad_evals: "), "{msg}");
    let msg = state_error(
        cfg.clone(),
        Some(PlateauState {
            cooldown_counter: 2,
            ..ok.clone()
        }),
    );
    assert!(msg.starts_with("state.plateau.cooldown_counter: "), "{msg}");

    let state = SchedulerState {
        steps_taken: 3,
        plateau: Some(PlateauState {
            lr: 1e-4,
            best: Some(-2.0),
            num_bad_evals: 2,
            cooldown_counter: 1,
        }),
    };
    let sched = Scheduler::from_state(cfg, state.clone()).expect("consistent state");
    assert_eq!(sched.state(), state);
}

#[test]
fn serde_format_of_kinds() {
    let cases = [
        (r#"{"type":"constant"}"#, ScheduleKind::Constant),
        (r#"{"type":"linear"}"#, ScheduleKind::Linear),
        (r#"{"type":"cosine"}"#, ScheduleKind::Cosine),
        (
            r#"{"type":"cosine_with_restarts","num_cycles":3}"#,
            ScheduleKind::CosineWithRestarts { num_cycles: 3 },
        ),
        (
            r#"{"type":"wsd","decay_fraction":0.2}"#,
            ScheduleKind::Wsd {
                decay_fraction: 0.2,
            },
        ),
        (
            r#"{"type":"plateau","mode":"max","factor":0.5,"patience":3,"threshold":0.01,"threshold_mode":"abs","cooldown":2}"#,
            ScheduleKind::Plateau(PlateauConfig {
                mode: ppo_sched::PlateauMode::Max,
                factor: 0.5,
                patience: 3,
                threshold: 0.01,
                threshold_mode: ppo_sched::ThresholdMode::Abs,
                cooldown: 2,
            }),
        ),
    ];
    for (json, kind) in cases {
        assert_eq!(serde_json::to_string(&kind).unwrap(), json);
        assert_eq!(serde_json::from_str::<ScheduleKind>(json).unwrap(), kind);
    }
}

#[test]
fn plateau_fields_default_to_pytorch_values() {
    let kind: ScheduleKind = serde_json::from_str(r#"{"type":"plateau","patience":4}"#).unwrap();
    assert_eq!(
        kind,
        ScheduleKind::Plateau(PlateauConfig {
            patience: 4,
            ..PlateauConfig::default()
        })
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let typo_top = r#"{"learning_rate":1e-3,"min_lr":0.0,"warmup_steps":0,"total_steps":10,"kind":{"type":"cosine"},"warmup":5}"#;
    assert!(serde_json::from_str::<ScheduleConfig>(typo_top).is_err());
    let typo_wsd = r#"{"type":"wsd","decay_fraction":0.1,"decay":0.2}"#;
    assert!(serde_json::from_str::<ScheduleKind>(typo_wsd).is_err());
    let typo_plateau = r#"{"type":"plateau","patients":3}"#;
    assert!(serde_json::from_str::<ScheduleKind>(typo_plateau).is_err());
    let unknown_type = r#"{"type":"exponential"}"#;
    assert!(serde_json::from_str::<ScheduleKind>(unknown_type).is_err());
}
