//! The Key-Value store's failures as values: [`KvError`], carried by
//! [`JetStreamError::Kv`](super::jetstream::JetStreamError::Kv), so that a caller can
//! match a conflict, a missing bucket or a bad key without reading text.

use std::fmt;

use super::jetstream::{ApiError, JetStreamError};

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
    use crate::jetstream::ErrorCode;

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
