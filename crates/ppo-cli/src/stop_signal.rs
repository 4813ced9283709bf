//! SIGINT and SIGTERM stop training cleanly: the first one is noted and the loop ends after
//! the current iteration with a checkpoint, flushed logs and tracker, and exit status
//! 128 + signal (130, 143); a second one ends the process at once with that status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals that stop a run, as the training loop sees them.
#[derive(Clone)]
pub struct StopSignal {
    which: Arc<AtomicUsize>,
}

impl StopSignal {
    /// Installs the handlers (for the whole process; call once).
    pub fn install() -> Result<Self> {
        let received = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            // Handlers run in registration order: the shutdown only fires when an earlier
            // signal already set `received`.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                received.clone(),
            )
            .and_then(|_| signal_hook::flag::register(signal, received.clone()))
            .and_then(|_| signal_hook::flag::register_usize(signal, which.clone(), signal as usize))
            .with_context(|| format!("cannot install the handler of signal {signal}"))?;
        }
        Ok(Self { which })
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

/// "SIGINT", "SIGTERM" or "signal N".
pub fn name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".to_owned(),
        SIGTERM => "SIGTERM".to_owned(),
        n => format!("signal {n}"),
    }
}
