//! Console (stderr) output that prints above an attached progress bar.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use tracing_subscriber::fmt::MakeWriter;

/// The progress bar, if any, that console lines must be printed around.
/// Shared between the console layer and the [`crate::LogGuard`].
pub(crate) type ProgressSlot = Arc<Mutex<Option<ProgressBar>>>;

/// Writes each event to stderr in one piece, suspending the attached
/// progress bar (if any) while it does.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleWriter {
    slot: ProgressSlot,
}

impl ConsoleWriter {
    pub(crate) fn new(slot: ProgressSlot) -> Self {
        Self { slot }
    }
}

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = ConsoleLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleLine {
            slot: &self.slot,
            buf: Vec::with_capacity(128),
        }
    }
}

/// Collects one event and prints it when dropped.
pub(crate) struct ConsoleLine<'a> {
    slot: &'a ProgressSlot,
    buf: Vec<u8>,
}

impl Write for ConsoleLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let bar = self
            .slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let print = || {
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(&self.buf);
            let _ = stderr.flush();
        };
        match bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}
