//! Checks that `cargo xtask ci` runs the same cargo commands, in the same order, as `.ci/run`.

#[test]
fn ci_steps_match_ci_run_script() {
    let script_path = xtask::workspace_root().join(".ci").join("run");
    let script = match std::fs::read_to_string(&script_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "{} not present yet; nothing to compare",
                script_path.display()
            );
            return;
        }
        Err(err) => panic!("reading {}: {err}", script_path.display()),
    };
    let ours: Vec<String> = xtask::ci::CI_STEPS
        .iter()
        .map(xtask::ci::Step::command_line)
        .collect();
    assert_eq!(
        xtask::ci::script_cargo_commands(&script),
        ours,
        "the cargo commands in {} and xtask::ci::CI_STEPS have drifted apart",
        script_path.display()
    );
}
