//! `init_tracing` end to end; its own test binary, since it installs the
//! process-wide subscriber.

use ppo_log::{LogConfig, LogError, TrainProgress, init_tracing};
use tracing::Level;

#[test]
fn writes_log_file_and_refuses_second_install() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    let config = LogConfig {
        log_dir: Some(log_dir.clone()),
        console_level: Level::ERROR,
        file_level: Level::INFO,
    };
    let guard = init_tracing(&config).unwrap();
    let log_file = guard.log_file().unwrap().to_path_buf();
    assert_eq!(log_file.parent(), Some(log_dir.as_path()));
    let name = log_file.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("training_") && name.ends_with(".log") && name.len() == 28,
        "{name}"
    );

    let progress = TrainProgress::new(10, 0, false);
    guard.attach_progress(&progress);
    tracing::warn!(step = 3, "reward collapsed");
    tracing::debug!("below the file level");
    progress.update(4, &[("reward", 1.0)]);
    guard.detach_progress();

    // No flush or drop needed: each line is written through as it is logged.
    let text = std::fs::read_to_string(&log_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    assert!(lines[0].contains(" WARNING "), "{text:?}");
    assert!(lines[0].ends_with("reward collapsed step=3"), "{text:?}");

    let second_dir = dir.path().join("second");
    let err = init_tracing(&LogConfig {
        log_dir: Some(second_dir.clone()),
        ..LogConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, LogError::SubscriberAlreadyInstalled),
        "{err:?}"
    );
    assert!(!second_dir.exists());
}
