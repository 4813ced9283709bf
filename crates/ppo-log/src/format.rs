//! The log line layout: local timestamp, level word, spans, message and fields.

use std::fmt;

use chrono::Local;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Layout of the local timestamp that starts every line.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// The word printed for a level: `WARN` is spelled `WARNING`.
pub fn level_label(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// A [`FormatEvent`] producing lines such as
/// `2026-01-20 14:30:22.123 WARNING epoch{n=3}: reward collapsed kl=0.9`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFormat {
    show_target: bool,
}

impl LineFormat {
    /// A formatter; with `show_target` the event's target (module path)
    /// follows the level.
    pub fn new(show_target: bool) -> Self {
        Self { show_target }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{} {:<7} ",
            Local::now().format(TIMESTAMP_FORMAT),
            level_label(meta.level())
        )?;
        if self.show_target {
            write!(writer, "{}: ", meta.target())?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::NaiveDateTime;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::shared_writer::SharedWriter;

    fn capture(show_target: bool, emit: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(LineFormat::new(show_target))
            .with_writer(SharedWriter::new(Arc::clone(&buffer)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn assert_timestamp_prefix(line: &str) {
        let stamp = &line[..23];
        NaiveDateTime::parse_from_str(stamp, TIMESTAMP_FORMAT)
            .unwrap_or_else(|e| panic!("no timestamp at the start of {line:?}: {e}"));
    }

    #[test]
    fn warn_is_rendered_as_warning_with_timestamp_and_fields() {
        let out = capture(false, || tracing::warn!(kl = 0.5, "reward collapsed"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out:?}");
        let line = lines[0];
        assert_timestamp_prefix(line);
        assert!(line[23..].starts_with(" WARNING "), "{line:?}");
        assert!(line.ends_with("reward collapsed kl=0.5"), "{line:?}");
        assert!(!line.contains("WARN "), "{line:?}");
    }

    #[test]
    fn every_level_has_its_word() {
        let out = capture(false, || {
            tracing::error!("e");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let levels: Vec<&str> = out
            .lines()
            .map(|line| {
                assert_timestamp_prefix(line);
                line[24..].split_whitespace().next().unwrap()
            })
            .collect();
        assert_eq!(levels, ["ERROR", "INFO", "DEBUG"]);
    }

    #[test]
    fn target_and_spans_are_included() {
        let out = capture(true, || {
            let span = tracing::info_span!("epoch", n = 3);
            let _entered = span.enter();
            tracing::info!("step done");
        });
        assert!(
            out.trim_end()
                .ends_with("INFO    ppo_log::format::tests: epoch{n=3}: step done"),
            "{out:?}"
        );
    }
}
