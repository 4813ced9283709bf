//! The handle returned by `init_tracing`: log file path and progress-bar hookup.

use std::path::{Path, PathBuf};

use crate::console::ProgressSlot;
use crate::progress::TrainProgress;

/// Keeps track of what [`crate::init_tracing`] set up.
///
/// Dropping it detaches any progress bar from the console; the global
/// subscriber itself stays installed for the life of the process.
#[derive(Debug)]
pub struct LogGuard {
    log_file: Option<PathBuf>,
    progress: ProgressSlot,
}

impl LogGuard {
    pub(crate) fn new(log_file: Option<PathBuf>, progress: ProgressSlot) -> Self {
        Self { log_file, progress }
    }

    /// The log file being written, when a log directory was configured.
    pub fn log_file(&self) -> Option<&Path> {
        self.log_file.as_deref()
    }

    /// Makes console log lines print above `progress` instead of through it.
    /// Replaces any previously attached bar.
    pub fn attach_progress(&self, progress: &TrainProgress) {
        *self.slot() = Some(progress.bar().clone());
    }

    /// Stops suspending the attached progress bar for console lines.
    pub fn detach_progress(&self) {
        *self.slot() = None;
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.detach_progress();
    }
}
