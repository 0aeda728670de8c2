//! [`RecordError`]: why a recording could not be read, or a replay could not run. A
//! replayed app that answers differently is not an error: it is a
//! [`Mismatch`](super::Mismatch) in the report.

use std::fmt;
use std::io;

/// Why a recording could not be read or a replay could not be run.
///
/// ```
/// use panini::record::{RecordError, Recording};
///
/// let err = Recording::parse("{\"dir\":\"in\"}\n").unwrap_err();
/// assert!(matches!(err, RecordError::Line { line: 1, .. }));
/// assert!(err.to_string().starts_with("line 1 of the recording"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RecordError {
    /// The recording file could not be read.
    Io(io::Error),
    /// A line of the recording (1-based) is not a recording line.
    Line {
        /// Its number, from 1.
        line: usize,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// The test client failed while replaying (publish, subscribe).
    Nats(crate::Error),
    /// [`Replay::run`](super::Replay::run) before [`Replay::attach`](super::Replay::attach):
    /// without its probe in the app, a replay cannot see the app's sends.
    NotAttached,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io(_) => f.write_str("cannot read the recording"),
            RecordError::Line { line, .. } => {
                write!(f, "line {line} of the recording is not a recording line")
            }
            RecordError::Nats(_) => f.write_str("the replay's client failed"),
            RecordError::NotAttached => {
                f.write_str("the replay is not attached to the app under test (Replay::attach)")
            }
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Io(e) => Some(e),
            RecordError::Line { source, .. } => Some(source),
            RecordError::Nats(e) => Some(e),
            RecordError::NotAttached => None,
        }
    }
}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

impl From<crate::Error> for RecordError {
    fn from(e: crate::Error) -> Self {
        RecordError::Nats(e)
    }
}
