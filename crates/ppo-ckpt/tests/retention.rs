//! Checkpoint discovery and retention on fake run directories written with `write_atomic`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ppo_ckpt::{
    CheckpointMeta, CheckpointStatus, Decision, DeleteReason, KeepReason, PlanKind, StrayKind,
    apply_retention, best_checkpoint, checkpoints_dir, dir_size, latest_complete, list_checkpoints,
    list_stray_dirs, plan_retention, read_meta, resume_candidate, step_dir_name, write_atomic,
    write_meta,
};

/// No Linux process has this pid (`pid_max` is at most 2^22).
const DEAD_PID: u32 = 4_000_000_000;
/// init: always running.
const LIVE_PID: u32 = 1;

fn meta(step: u64) -> CheckpointMeta {
    CheckpointMeta {
        step,
        epoch: step / 200,
        eval_reward: step.is_multiple_of(200).then_some(step as f64 / 1000.0),
        created: "2025-01-01T00:00:00Z".into(),
        ppo_rs_version: "0.1.0".into(),
    }
}

/// A checkpoint of a few hundred bytes; sizes differ per step so that sums are meaningful.
fn save(dir: &Path, step: u64) {
    write_atomic(dir, |tmp| {
        write_meta(tmp, &meta(step))?;
        fs::create_dir_all(tmp.join("policy"))?;
        fs::write(
            tmp.join("policy/model.bpk"),
            vec![step as u8; 100 + step as usize],
        )?;
        fs::write(
            tmp.join("training_state.json"),
            format!("{{\"step\":{step}}}"),
        )?;
        Ok::<_, ppo_ckpt::CkptError>(())
    })
    .unwrap();
}

fn save_step(run: &Path, step: u64) -> PathBuf {
    let dir = checkpoints_dir(run).join(step_dir_name(step));
    save(&dir, step);
    dir
}

fn flip_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    bytes[0] ^= 0xFF;
    fs::write(path, bytes).unwrap();
}

fn stray(run: &Path, name: &str) -> PathBuf {
    let dir = checkpoints_dir(run).join(name);
    fs::create_dir_all(dir.join("policy")).unwrap();
    fs::write(dir.join("policy/model.bpk"), [7u8; 50]).unwrap();
    dir
}

/// steps 100..=400 complete, `best/` copied from 200.
fn clean_run() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for step in [100, 200, 300, 400] {
        save_step(root.path(), step);
    }
    save(&checkpoints_dir(root.path()).join("best"), 200);
    root
}

/// 100 complete, 200 damaged, 300 complete, 400 damaged (newest), `best/` from 100, stray
/// temporary and deletion directories, and names that must be ignored.
fn messy_run() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let run = root.path();
    for step in [100, 200, 300, 400] {
        save_step(run, step);
    }
    flip_byte(&checkpoints_dir(run).join("step_200/training_state.json"));
    flip_byte(&checkpoints_dir(run).join("step_400/policy/model.bpk"));
    save(&checkpoints_dir(run).join("best"), 100);
    stray(run, &format!(".step_200.tmp-{DEAD_PID}"));
    stray(run, &format!(".step_500.tmp-{DEAD_PID}"));
    stray(run, &format!(".step_600.tmp-{LIVE_PID}"));
    stray(run, ".deleting-step_50");
    stray(run, "step_007");
    stray(run, "notes");
    fs::write(checkpoints_dir(run).join("step_700"), b"not a directory").unwrap();
    root
}

fn names(paths: impl IntoIterator<Item = PathBuf>) -> BTreeSet<String> {
    paths
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn listing(run: &Path) -> BTreeSet<String> {
    names(
        fs::read_dir(checkpoints_dir(run))
            .unwrap()
            .map(|e| e.unwrap().path()),
    )
}

#[test]
fn missing_checkpoints_dir_is_empty_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    assert!(list_checkpoints(root.path()).unwrap().is_empty());
    assert!(list_stray_dirs(root.path()).unwrap().is_empty());
    assert_eq!(latest_complete(root.path()).unwrap(), None);
    assert_eq!(resume_candidate(root.path()).unwrap(), None);
    assert_eq!(best_checkpoint(root.path()).unwrap(), None);
    let plan = plan_retention(root.path(), 0, true).unwrap();
    assert!(plan.entries().is_empty());
    assert_eq!(apply_retention(&plan).unwrap().freed_bytes, 0);
}

#[test]
fn meta_round_trips_and_best_names_its_source() {
    let root = clean_run();
    let dir = checkpoints_dir(root.path()).join("step_200");
    assert_eq!(read_meta(&dir).unwrap(), meta(200));
    assert_eq!(read_meta(&dir).unwrap().eval_reward, Some(0.2));
    let (best, best_meta) = best_checkpoint(root.path()).unwrap().unwrap();
    assert_eq!(best, checkpoints_dir(root.path()).join("best"));
    assert_eq!(best_meta, meta(200));
}

#[test]
fn listing_sorts_by_step_verifies_and_ignores_other_names() {
    let root = messy_run();
    let run = root.path();
    let entries = list_checkpoints(run).unwrap();
    let steps: Vec<u64> = entries.iter().map(|e| e.step).collect();
    assert_eq!(steps, [100, 200, 300, 400]);
    let complete: Vec<bool> = entries.iter().map(|e| e.is_complete()).collect();
    assert_eq!(complete, [true, false, true, false]);
    match &entries[1].status {
        CheckpointStatus::Damaged(reason) => {
            assert!(reason.contains("training_state.json"), "{reason}")
        }
        other => panic!("step_200 should be damaged, is {other:?}"),
    }
    assert_eq!(entries[3].path, checkpoints_dir(run).join("step_400"));

    let strays = list_stray_dirs(run).unwrap();
    assert_eq!(
        names(strays.iter().map(|s| s.path.clone())),
        set(&[
            ".deleting-step_50",
            &format!(".step_200.tmp-{DEAD_PID}"),
            &format!(".step_500.tmp-{DEAD_PID}"),
            &format!(".step_600.tmp-{LIVE_PID}"),
        ])
    );
    assert!(strays.iter().any(|s| s.kind
        == StrayKind::Temp {
            name: "step_500".into(),
            step: Some(500),
            pid: DEAD_PID
        }));
}

#[test]
fn damaged_newest_falls_back_to_previous_complete_with_the_reason() {
    let root = messy_run();
    let run = root.path();
    assert_eq!(latest_complete(run).unwrap().unwrap().step, 300);
    let candidate = resume_candidate(run).unwrap().unwrap();
    assert_eq!(candidate.newest.step, 400);
    assert_eq!(candidate.fallback.as_ref().unwrap().step, 300);
    assert_eq!(candidate.resume_from().unwrap().step, 300);
    let warning = candidate.damage_warning().unwrap();
    assert!(warning.contains("step_400"), "{warning}");
    assert!(warning.contains("policy/model.bpk"), "{warning}");
    assert!(warning.contains("checksum"), "{warning}");
    assert!(
        warning.contains("the previous complete one is") && warning.contains("step_300"),
        "{warning}"
    );

    // A complete newest needs no fallback.
    let clean = clean_run();
    let candidate = resume_candidate(clean.path()).unwrap().unwrap();
    assert_eq!(candidate.newest.step, 400);
    assert_eq!(candidate.fallback, None);
    assert_eq!(candidate.damage_warning(), None);

    // Nothing complete at all.
    let lone = tempfile::tempdir().unwrap();
    let dir = save_step(lone.path(), 5);
    fs::remove_file(dir.join("manifest.json")).unwrap();
    let candidate = resume_candidate(lone.path()).unwrap().unwrap();
    assert_eq!(candidate.resume_from(), None);
    let warning = candidate.damage_warning().unwrap();
    assert!(
        warning.contains("manifest") && warning.contains("no earlier complete checkpoint"),
        "{warning}"
    );
}

#[test]
fn retention_keeps_exactly_the_right_set() {
    let cases: [(usize, bool, &[&str]); 8] = [
        (0, false, &["step_400"]),
        (0, true, &["step_200", "step_400"]),
        (1, false, &["step_400"]),
        (1, true, &["step_200", "step_400"]),
        (2, false, &["step_300", "step_400"]),
        (2, true, &["step_200", "step_300", "step_400"]),
        (3, true, &["step_200", "step_300", "step_400"]),
        (9, false, &["step_100", "step_200", "step_300", "step_400"]),
    ];
    for (keep, keep_best, kept) in cases {
        let root = clean_run();
        let run = root.path();
        let plan = plan_retention(run, keep, keep_best).unwrap();
        assert_eq!(plan.latest_complete(), Some(400));
        let before = listing(run);
        let doomed: Vec<(PathBuf, u64)> = plan
            .to_delete()
            .map(|e| (e.path.clone(), dir_size(&e.path)))
            .collect();
        assert_eq!(listing(run), before, "planning deleted something");

        let report = apply_retention(&plan).unwrap();
        let mut expected = set(kept);
        expected.insert("best".into());
        assert_eq!(listing(run), expected, "keep {keep}, keep_best {keep_best}");
        assert_eq!(
            report.freed_bytes,
            doomed.iter().map(|(_, bytes)| bytes).sum::<u64>()
        );
        assert_eq!(report.freed_bytes, plan.bytes_to_free());
        assert_eq!(
            report
                .deleted
                .iter()
                .map(|d| d.path.clone())
                .collect::<Vec<_>>(),
            doomed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
        );
        for name in &expected {
            ppo_ckpt::verify(&checkpoints_dir(run).join(name)).unwrap();
        }
        // Applying the same rules again finds nothing more to delete.
        let again = plan_retention(run, keep, keep_best).unwrap();
        assert_eq!(again.to_delete().count(), 0);
    }
}

#[test]
fn reasons_name_the_rule() {
    let root = clean_run();
    let plan = plan_retention(root.path(), 2, true).unwrap();
    let decisions: Vec<(String, Decision)> = plan
        .entries()
        .iter()
        .map(|e| (e.name(), e.decision.clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            (
                "step_100".into(),
                Decision::Delete(DeleteReason::Superseded { keep: 2 })
            ),
            ("step_200".into(), Decision::Keep(KeepReason::BestSource)),
            (
                "step_300".into(),
                Decision::Keep(KeepReason::Recent { keep_last_n: 2 })
            ),
            (
                "step_400".into(),
                Decision::Keep(KeepReason::LatestComplete)
            ),
            ("best".into(), Decision::Keep(KeepReason::Best)),
        ]
    );
    let best = &plan.entries()[4];
    assert_eq!(
        best.kind,
        PlanKind::Best {
            source_step: Some(200)
        }
    );
    assert_eq!(best.bytes, dir_size(&best.path));
    assert!(best.bytes > 300);
}

#[test]
fn messy_run_keeps_newer_damage_and_live_saves_and_deletes_the_rest() {
    let root = messy_run();
    let run = root.path();
    let plan = plan_retention(run, 2, false).unwrap();
    assert_eq!(plan.latest_complete(), Some(300));
    let decision = |name: &str| {
        plan.entries()
            .iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("{name} not in plan"))
            .decision
            .clone()
    };
    match decision("step_400") {
        Decision::Keep(KeepReason::DamagedNewest(reason)) => {
            assert!(reason.contains("policy/model.bpk"), "{reason}")
        }
        other => panic!("step_400: {other:?}"),
    }
    assert_eq!(
        decision("step_300"),
        Decision::Keep(KeepReason::LatestComplete)
    );
    match decision("step_200") {
        Decision::Delete(DeleteReason::Damaged(reason)) => {
            assert!(reason.contains("training_state.json"), "{reason}")
        }
        other => panic!("step_200: {other:?}"),
    }
    assert_eq!(
        decision("step_100"),
        Decision::Keep(KeepReason::Recent { keep_last_n: 2 })
    );
    assert_eq!(
        decision(".deleting-step_50"),
        Decision::Delete(DeleteReason::InterruptedDeletion)
    );
    assert_eq!(
        decision(&format!(".step_600.tmp-{LIVE_PID}")),
        Decision::Keep(KeepReason::WriterRunning(LIVE_PID))
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            decision(&format!(".step_200.tmp-{DEAD_PID}")),
            Decision::Delete(DeleteReason::AbandonedTemp(DEAD_PID))
        );
        assert_eq!(
            decision(&format!(".step_500.tmp-{DEAD_PID}")),
            Decision::Keep(KeepReason::SaveMayBeInProgress(DEAD_PID))
        );
    }

    let doomed: u64 = plan.to_delete().map(|e| dir_size(&e.path)).sum();
    let report = apply_retention(&plan).unwrap();
    assert_eq!(report.freed_bytes, doomed);
    let mut expected = set(&[
        "best",
        "notes",
        "step_007",
        "step_100",
        "step_300",
        "step_400",
        "step_700",
        &format!(".step_500.tmp-{DEAD_PID}"),
        &format!(".step_600.tmp-{LIVE_PID}"),
    ]);
    if !cfg!(target_os = "linux") {
        expected.insert(format!(".step_200.tmp-{DEAD_PID}"));
    }
    assert_eq!(listing(run), expected);
}

#[test]
fn latest_complete_and_best_survive_every_setting() {
    for keep in 0..4 {
        for keep_best in [false, true] {
            let root = messy_run();
            let run = root.path();
            let plan = plan_retention(run, keep, keep_best).unwrap();
            apply_retention(&plan).unwrap();
            let left = listing(run);
            assert!(left.contains("step_300"), "keep {keep}: {left:?}");
            assert!(left.contains("best"), "keep {keep}: {left:?}");
            assert!(left.contains("step_400"), "damaged newest kept: {left:?}");
            assert_eq!(
                left.contains("step_100"),
                keep_best || keep >= 2,
                "{left:?}"
            );
            assert!(!left.contains("step_200"), "{left:?}");
            assert!(
                !left.iter().any(|n| n.starts_with(".deleting-")),
                "{left:?}"
            );
            ppo_ckpt::verify(&checkpoints_dir(run).join("step_300")).unwrap();
            ppo_ckpt::verify(&checkpoints_dir(run).join("best")).unwrap();
        }
    }
}

#[test]
fn no_complete_checkpoint_means_nothing_is_deleted_but_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path();
    for step in [1, 2] {
        let dir = save_step(run, step);
        flip_byte(&dir.join("checkpoint.json"));
    }
    stray(run, ".deleting-step_0");
    let plan = plan_retention(run, 0, false).unwrap();
    assert_eq!(plan.latest_complete(), None);
    let report = apply_retention(&plan).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(listing(run), set(&["step_1", "step_2"]));
}

#[test]
fn unreadable_best_meta_still_keeps_best() {
    let root = clean_run();
    let run = root.path();
    fs::write(checkpoints_dir(run).join("best/checkpoint.json"), b"{").unwrap();
    assert!(best_checkpoint(run).is_err());
    let plan = plan_retention(run, 1, true).unwrap();
    let best = plan.entries().iter().find(|e| e.name() == "best").unwrap();
    assert_eq!(best.kind, PlanKind::Best { source_step: None });
    apply_retention(&plan).unwrap();
    assert_eq!(listing(run), set(&["best", "step_400"]));
}

#[test]
fn stale_plan_skips_what_is_gone_and_deletion_names_do_not_collide() {
    let root = clean_run();
    let run = root.path();
    let plan = plan_retention(run, 1, false).unwrap();
    // step_100 vanished since planning; a leftover `.deleting-step_200` sits where step_200
    // would be renamed to.
    fs::remove_dir_all(checkpoints_dir(run).join("step_100")).unwrap();
    stray(run, ".deleting-step_200");
    let report = apply_retention(&plan).unwrap();
    assert_eq!(names(report.already_gone.clone()), set(&["step_100"]));
    assert_eq!(
        names(report.deleted.iter().map(|d| d.path.clone())),
        set(&["step_200", "step_300"])
    );
    assert_eq!(
        listing(run),
        set(&[".deleting-step_200", "best", "step_400"])
    );
    // The next round removes the leftover.
    apply_retention(&plan_retention(run, 1, false).unwrap()).unwrap();
    assert_eq!(listing(run), set(&["best", "step_400"]));
}
