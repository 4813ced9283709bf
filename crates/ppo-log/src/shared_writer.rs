//! A `MakeWriter` over a shared `Mutex`-guarded writer, flushed after each event.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;

/// Hands out the locked writer for one event at a time; the lock is held for
/// the whole event and the writer is flushed when the event is done.
#[derive(Debug)]
pub(crate) struct SharedWriter<W> {
    inner: Arc<Mutex<W>>,
}

impl<W> SharedWriter<W> {
    pub(crate) fn new(inner: Arc<Mutex<W>>) -> Self {
        Self { inner }
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for SharedWriter<W> {
    type Writer = EventWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        // A panic in another writer must not silence logging.
        EventWriter(
            self.inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// The writer for a single event.
pub(crate) struct EventWriter<'a, W: Write>(MutexGuard<'a, W>);

impl<W: Write> Write for EventWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Drop for EventWriter<'_, W> {
    fn drop(&mut self) {
        let _ = self.0.flush();
    }
}
