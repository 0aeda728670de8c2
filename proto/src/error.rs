//! The ways bytes can be wrong: one small `Copy` enum, with a readable message.
//!
//! "Need more bytes" is never an error here; it is [`Status::Partial`](crate::Status::Partial).

use std::fmt;

/// Why a buffer could not be parsed (or a value could not be encoded).
///
/// Every variant means the peer broke the protocol, except
/// [`InvalidHeader`](Error::InvalidHeader) returned by
/// [`HeaderBlock::parse`](crate::HeaderBlock::parse), which concerns one message only: the
/// framing around it is intact and the next op parses normally.
///
/// ```
/// use panini_proto::{parse_server_op, Error, Limits};
/// let err = parse_server_op(b"FOO bar\r\n", &Limits::default()).unwrap_err();
/// assert_eq!(err, Error::UnknownOp);
/// assert_eq!(err.to_string(), "unknown protocol operation");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The line does not start with an op this side of the protocol knows.
    UnknownOp,
    /// The op has the wrong number or shape of arguments.
    InvalidArgs,
    /// A size, sid or count is not 1 to 9 (sid: 1 to 20) plain decimal digits.
    InvalidNumber,
    /// A subject or queue name breaks the subject rules.
    InvalidSubject,
    /// A headers block (or a header name or value to encode) is malformed.
    InvalidHeader,
    /// No line end within the control-line limit.
    ControlLineTooLong,
    /// The declared payload is larger than the payload limit.
    PayloadTooLarge,
    /// The payload is not followed by exactly `\r\n`.
    MissingCrlf,
}

impl Error {
    /// A short, lower-case description of the error.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::UnknownOp => "unknown protocol operation",
            Error::InvalidArgs => "invalid arguments",
            Error::InvalidNumber => "invalid number",
            Error::InvalidSubject => "invalid subject",
            Error::InvalidHeader => "invalid headers block",
            Error::ControlLineTooLong => "control line too long",
            Error::PayloadTooLarge => "payload too large",
            Error::MissingCrlf => "payload not followed by CRLF",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}
