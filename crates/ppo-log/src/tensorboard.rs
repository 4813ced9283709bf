//! The TensorBoard sink: one event file per invocation in a directory it is handed
//! (`OUTPUT_DIR/tb/` in a run), holding the resolved config as text and every metric of
//! every record as a scalar at its step.
//!
//! Event files are TFRecord files of `Event` protocol buffers, written here by hand
//! (`event.rs`): no TensorFlow, no protobuf code generation. A resumed run rewrites the
//! directory from the checkpoint's history, like `metrics.jsonl`, so a reader sees each
//! step once. [`TensorBoardSink`] never stops training: a failure is one WARNING and the
//! sink goes quiet for the rest of the invocation.

mod event;
mod writer;

pub use event::masked_crc32c;
pub use writer::{
    CONFIG_TEXT_TAG, EVENT_FILE_MARKER, EventFileWriter, FILE_VERSION, TensorBoardSink,
    event_file_name,
};
