//! JetStream's failures as values: [`ApiError`] (the server's `code` and `err_code`, with
//! [`ErrorCode`] constants to match on) and [`JetStreamError`], which panini's
//! [`Error::JetStream`](crate::Error::JetStream) carries, with the Key-Value store's
//! [`KvError`] inside it.

use std::fmt;

use serde::Deserialize;

/// The server's JetStream error code (`err_code` in its replies): stable across server
/// versions, unlike the description's text. Match on the constants:
///
/// ```
/// use panini::jetstream::ErrorCode;
/// fn explain(code: ErrorCode) -> &'static str {
///     match code {
///         ErrorCode::STREAM_NOT_FOUND => "create the stream first",
///         ErrorCode::WRONG_LAST_SEQUENCE => "someone wrote first: read and retry",
///         _ => "unexpected",
///     }
/// }
/// assert_eq!(explain(ErrorCode(10059)), "create the stream first");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 10008: JetStream is temporarily unavailable (no meta leader yet).
    pub const TEMPORARILY_UNAVAILABLE: ErrorCode = ErrorCode(10008);
    /// 10013: the consumer name is already in use.
    pub const CONSUMER_NAME_IN_USE: ErrorCode = ErrorCode(10013);
    /// 10014: consumer not found.
    pub const CONSUMER_NOT_FOUND: ErrorCode = ErrorCode(10014);
    /// 10023: insufficient resources.
    pub const INSUFFICIENT_RESOURCES: ErrorCode = ErrorCode(10023);
    /// 10025: the request's JSON is invalid (from server 2.12, also unknown fields).
    pub const INVALID_JSON: ErrorCode = ErrorCode(10025);
    /// 10037: no message found (getting a message by sequence or subject).
    pub const NO_MESSAGE_FOUND: ErrorCode = ErrorCode(10037);
    /// 10039: JetStream is not enabled for the account.
    pub const NOT_ENABLED_FOR_ACCOUNT: ErrorCode = ErrorCode(10039);
    /// 10056: the stream name in the subject does not match the request's.
    pub const STREAM_NAME_MISMATCH: ErrorCode = ErrorCode(10056);
    /// 10057: deleting the message was refused or failed.
    pub const MESSAGE_DELETE_FAILED: ErrorCode = ErrorCode(10057);
    /// 10058: the stream name is in use with a different configuration.
    pub const STREAM_NAME_IN_USE: ErrorCode = ErrorCode(10058);
    /// 10059: stream not found.
    pub const STREAM_NOT_FOUND: ErrorCode = ErrorCode(10059);
    /// 10060: the stream is not the one the publish expected (`Nats-Expected-Stream`).
    pub const WRONG_EXPECTED_STREAM: ErrorCode = ErrorCode(10060);
    /// 10065: the subjects overlap with another stream's.
    pub const SUBJECTS_OVERLAP: ErrorCode = ErrorCode(10065);
    /// 10070: the last message id is not the expected one (`Nats-Expected-Last-Msg-Id`).
    pub const WRONG_LAST_MSG_ID: ErrorCode = ErrorCode(10070);
    /// 10071: the last sequence (of the stream or the subject) is not the expected one.
    /// Servers from 2.11 use [`WRONG_LAST_SEQUENCE_REPLICATED`](Self::WRONG_LAST_SEQUENCE_REPLICATED)
    /// on replicated streams; [`ApiError::is_wrong_last_sequence`] covers both.
    pub const WRONG_LAST_SEQUENCE: ErrorCode = ErrorCode(10071);
    /// 10076: JetStream is not enabled.
    pub const NOT_ENABLED: ErrorCode = ErrorCode(10076);
    /// 10164: wrong last sequence on a replicated stream (server 2.11 and later).
    pub const WRONG_LAST_SEQUENCE_REPLICATED: ErrorCode = ErrorCode(10164);
    /// 10148: the consumer already exists (create with `action`, server 2.10 and later).
    pub const CONSUMER_EXISTS: ErrorCode = ErrorCode(10148);
    /// 10149: the consumer does not exist (update with `action`, server 2.10 and later).
    pub const CONSUMER_DOES_NOT_EXIST: ErrorCode = ErrorCode(10149);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An error the JetStream API (or a stream, answering a publish) replied with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP-like status: 400, 404, 500, 503...
    #[serde(default)]
    pub code: u16,
    /// What went wrong, as a stable number: match it against the [`ErrorCode`] constants.
    #[serde(default)]
    pub err_code: ErrorCode,
    /// The server's text, for people (it varies between versions: never parse it).
    #[serde(default)]
    pub description: String,
}

impl ApiError {
    /// True when the server refused an expected last sequence (`10071`, or `10164` from
    /// replicated streams on servers 2.11 and later).
    pub fn is_wrong_last_sequence(&self) -> bool {
        matches!(
            self.err_code,
            ErrorCode::WRONG_LAST_SEQUENCE | ErrorCode::WRONG_LAST_SEQUENCE_REPLICATED
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (err_code {}, code {})",
            self.description, self.err_code, self.code
        )
    }
}

impl std::error::Error for ApiError {}

/// Why a JetStream operation failed, beyond the client's own errors (timeouts, a closed
/// connection): carried by [`Error::JetStream`](crate::Error::JetStream).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JetStreamError {
    /// The server answered with an error: see its [`ErrorCode`].
    Api(ApiError),
    /// No one answers the JetStream API under this prefix: JetStream is not enabled on the
    /// server, or the domain or prefix is wrong.
    NotEnabled {
        /// The API prefix asked, e.g. `$JS.API`.
        prefix: String,
    },
    /// A publish found no stream: no stream captures the subject (no responders).
    NoStream {
        /// The subject published to.
        subject: String,
    },
    /// The consumer was deleted (or its stream) while messages were being pulled.
    ConsumerDeleted,
    /// A pull request was refused with this status (a `400 Bad Request`, a consumer limit
    /// such as `409 Exceeded MaxRequestBatch`, `409 Consumer is push based`...).
    PullRefused {
        /// The status code.
        status: u16,
        /// The server's description.
        description: String,
    },
    /// The message did not come from a JetStream consumer: its reply subject is not an
    /// acknowledgement subject (`$JS.ACK.…`).
    NotJetStreamMessage,
    /// A stream or consumer name that cannot be used: empty, or holding `.`, `*`, `>`, `/`,
    /// `\` or whitespace.
    InvalidName(String),
    /// A Key-Value operation failed: see [`KvError`].
    Kv(KvError),
    /// The server is too old for what was asked (a 2.9 server would silently ignore it).
    NotSupported {
        /// What was asked, e.g. "several filter subjects".
        what: &'static str,
        /// The first server version that has it, e.g. "2.10".
        since: &'static str,
        /// The version of the server we are on.
        server: String,
    },
}

impl JetStreamError {
    /// The server's error, when it answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            JetStreamError::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for JetStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JetStreamError::Api(e) => e.fmt(f),
            JetStreamError::NotEnabled { prefix } => write!(
                f,
                "no JetStream API answers on {prefix}: JetStream is not enabled \
                 or the domain or prefix is wrong"
            ),
            JetStreamError::NoStream { subject } => {
                write!(f, "no stream captures subject {subject:?}")
            }
            JetStreamError::ConsumerDeleted => f.write_str("the consumer was deleted"),
            JetStreamError::PullRefused {
                status,
                description,
            } => write!(f, "pull request refused: {status} {description}"),
            JetStreamError::NotJetStreamMessage => {
                f.write_str("not a JetStream message: no acknowledgement subject")
            }
            JetStreamError::InvalidName(name) => {
                write!(f, "invalid stream or consumer name {name:?}")
            }
            JetStreamError::Kv(e) => e.fmt(f),
            JetStreamError::NotSupported {
                what,
                since,
                server,
            } => write!(
                f,
                "{what} needs nats-server {since} or later; this one is {server}"
            ),
        }
    }
}

impl std::error::Error for JetStreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JetStreamError::Api(e) => Some(e),
            JetStreamError::Kv(e) => Some(e),
            _ => None,
        }
    }
}

impl From<JetStreamError> for crate::Error {
    fn from(e: JetStreamError) -> Self {
        crate::Error::JetStream(e)
    }
}

impl From<ApiError> for crate::Error {
    fn from(e: ApiError) -> Self {
        crate::Error::JetStream(JetStreamError::Api(e))
    }
}

impl crate::Error {
    /// The JetStream server error inside, if this is one: the way to branch on an
    /// [`ErrorCode`].
    ///
    /// ```
    /// use panini::jetstream::ErrorCode;
    /// # fn check(err: panini::Error) {
    /// if err.api_error().map(|e| e.err_code) == Some(ErrorCode::STREAM_NOT_FOUND) {
    ///     // create it
    /// }
    /// # }
    /// ```
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            crate::Error::JetStream(e) => e.api(),
            _ => None,
        }
    }

    /// The JetStream [`ErrorCode`] of a server error, if this is one.
    pub fn err_code(&self) -> Option<ErrorCode> {
        self.api_error().map(|e| e.err_code)
    }
}

/// Why a Key-Value operation failed, beyond the transport and the JetStream API's own
/// errors: [`Error::kv_error`](crate::Error::kv_error) finds it in a panini error.
///
/// ```
/// use panini::jetstream::kv::KvError;
/// # fn check(err: panini::Error) {
/// match err.kv_error() {
///     Some(KvError::WrongRevision { key, .. }) => println!("{key} changed: read it again"),
///     Some(KvError::KeyExists { key }) => println!("{key} is taken"),
///     _ => println!("{err}"),
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// A bucket name that cannot be used: empty, or other than ASCII letters, digits, `_`
    /// and `-`.
    InvalidBucket(String),
    /// A key that cannot be used: empty, other than ASCII letters, digits and `-/_=.`, or
    /// starting or ending with `.`, or holding `..` (a watch pattern may also use `*` and
    /// a final `>`).
    InvalidKey(String),
    /// A bucket's history must be 1 to 64 values per key.
    InvalidHistory(i64),
    /// No bucket of that name (no stream `KV_<bucket>`).
    BucketNotFound(String),
    /// The stream `KV_<bucket>` exists but is not a Key-Value bucket (it keeps no history
    /// per subject).
    NotABucket(String),
    /// The bucket exists with another configuration.
    BucketExists(String),
    /// [`create`](crate::jetstream::kv::Store::create) found the key with a value.
    KeyExists {
        /// The key.
        key: String,
    },
    /// [`update`](crate::jetstream::kv::Store::update) (or a delete expecting a revision)
    /// found the key at another revision: someone wrote first.
    WrongRevision {
        /// The key.
        key: String,
        /// The revision the write expected.
        expected: u64,
        /// The server's refusal (`10071`, or `10164` on replicated streams from 2.11).
        error: ApiError,
    },
}

impl KvError {
    /// True for the two optimistic-concurrency refusals ([`KvError::KeyExists`],
    /// [`KvError::WrongRevision`]): read the key again and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            KvError::KeyExists { .. } | KvError::WrongRevision { .. }
        )
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::InvalidBucket(name) => write!(
                f,
                "invalid bucket name {name:?}: use ASCII letters, digits, '_' and '-'"
            ),
            KvError::InvalidKey(key) => write!(
                f,
                "invalid key {key:?}: use ASCII letters, digits and '-/_=.', \
                 with no leading, trailing or double '.'"
            ),
            KvError::InvalidHistory(n) => {
                write!(
                    f,
                    "invalid history {n}: a bucket keeps 1 to 64 values per key"
                )
            }
            KvError::BucketNotFound(name) => write!(f, "no bucket {name:?}"),
            KvError::NotABucket(name) => {
                write!(f, "stream KV_{name} exists but is not a key-value bucket")
            }
            KvError::BucketExists(name) => {
                write!(f, "bucket {name:?} exists with another configuration")
            }
            KvError::KeyExists { key } => write!(f, "key {key:?} exists"),
            KvError::WrongRevision {
                key,
                expected,
                error,
            } => write!(
                f,
                "key {key:?} is not at revision {expected} any more ({error})"
            ),
        }
    }
}

impl std::error::Error for KvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KvError::WrongRevision { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<KvError> for crate::Error {
    fn from(e: KvError) -> Self {
        crate::Error::JetStream(JetStreamError::Kv(e))
    }
}

impl crate::Error {
    /// The Key-Value error inside, if this is one.
    pub fn kv_error(&self) -> Option<&KvError> {
        match self {
            crate::Error::JetStream(JetStreamError::Kv(e)) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_reads_the_server_json() {
        let e: ApiError = serde_json::from_str(
            r#"{"code":400,"err_code":10071,"description":"wrong last sequence: 2"}"#,
        )
        .unwrap();
        assert_eq!(e.code, 400);
        assert_eq!(e.err_code, ErrorCode::WRONG_LAST_SEQUENCE);
        assert!(e.is_wrong_last_sequence());
        let err = crate::Error::from(e);
        assert_eq!(err.err_code(), Some(ErrorCode(10071)));
        assert_eq!(
            err.to_string(),
            "jetstream: wrong last sequence: 2 (err_code 10071, code 400)"
        );
    }

    #[test]
    fn a_conflict_is_found_in_a_panini_error() {
        let refused = ApiError {
            code: 400,
            err_code: ErrorCode::WRONG_LAST_SEQUENCE,
            description: "wrong last sequence: 3".into(),
        };
        let err = crate::Error::from(KvError::WrongRevision {
            key: "a".into(),
            expected: 2,
            error: refused,
        });
        assert!(err.kv_error().is_some_and(KvError::is_conflict));
        assert!(err.to_string().contains("not at revision 2"), "{err}");
        let source = std::error::Error::source(err.kv_error().unwrap());
        assert!(source.is_some());
        assert!(!KvError::BucketNotFound("b".into()).is_conflict());
    }
}
