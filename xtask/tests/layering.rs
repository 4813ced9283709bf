//! Runs the real layering check (`cargo xtask tidy`) against the real workspace and its ARCHITECTURE.md.

#[test]
fn workspace_respects_architecture_md_layering() {
    let root = xtask::workspace_root();
    let architecture = root.join(xtask::tidy::ARCHITECTURE_FILE);
    assert!(
        architecture.is_file(),
        "{} is missing: it must define the allowed crate-dependency edges between `{}` and `{}` \
         (this test deliberately fails rather than skips without it)",
        architecture.display(),
        xtask::tidy::START_MARKER,
        xtask::tidy::END_MARKER,
    );
    if let Err(err) = xtask::tidy::tidy(&root) {
        panic!("{err:#}");
    }
}
