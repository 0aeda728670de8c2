//! The framework's error type: what can go wrong talking to NATS or starting an app (and,
//! in `jetstream`, the JetStream API's errors it carries with the `jetstream` feature).
//!
//! An error that wraps another keeps it: [`source()`](std::error::Error::source) returns it
//! (the I/O error, the TLS failure, the failed hook's own error), so a caller can walk the
//! chain and downcast. `Display` also shows the cause's text, so one line says it all.

use std::fmt;
use std::io;

#[cfg(feature = "jetstream")]
pub(crate) mod jetstream;

/// A `Result` whose error defaults to panini's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a user handler may return: anything that is an error and can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can fail in the client and the framework.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    Io(io::Error),
    /// The server broke the protocol (bytes we could not parse).
    Protocol(panini_proto::Error),
    /// The server sent `-ERR` with this text.
    Server(String),
    /// The server refused our credentials (`Authorization Violation` and kin).
    Auth(String),
    /// JSON could not be encoded or decoded.
    Json(serde_json::Error),
    /// An operation did not finish in time (connect, request, flush, drain).
    Timeout,
    /// A request found no subscriber on its subject (status 503 with an empty payload).
    NoResponders,
    /// The connection is closed: nothing more can be sent or received.
    Closed,
    /// The connection is draining: no new subscriptions.
    Draining,
    /// A subject or queue group is not valid for this use.
    InvalidSubject(String),
    /// A header name or value cannot be sent (empty name, CR or LF, ...).
    InvalidHeader,
    /// The message is larger than the server's `max_payload`.
    MaxPayload {
        /// Headers plus payload, in bytes.
        size: usize,
        /// The server's limit, from INFO.
        max: usize,
    },
    /// The client is disconnected and its reconnect buffer is full: the message was not taken.
    ReconnectBufferFull,
    /// A server URL could not be understood.
    InvalidUrl(String),
    /// No server could be reached: each server tried (a URL without credentials) with why
    /// it failed; the last failure is the source.
    NoServers(Vec<(String, Error)>),
    /// A request was written on a connection that was then lost, and no reply came within
    /// the grace after the reconnect: it may or may not have been handled. Not a timeout:
    /// the client is connected again, and the next request can be sent at once.
    ConnectionLost,
    /// A payload could not be decoded as the asked type (not UTF-8, ...).
    Decode(String),
    /// A service answered a request with an error (headers `Nats-Service-Error` and
    /// `Nats-Service-Error-Code`).
    Service {
        /// `Nats-Service-Error-Code`, e.g. 400 or 500.
        code: u16,
        /// `Nats-Service-Error`.
        description: String,
    },
    /// The app could not start: at `stage`, because of `source`. The source is a panini
    /// [`Error`] (downcast it: `source.downcast_ref::<panini::Error>()`), except after an
    /// `on_start` hook, where it is the hook's own error (or the panic it raised).
    Start {
        /// What the start was doing.
        stage: StartStage,
        /// Why it failed.
        source: BoxError,
    },
    /// `unsubscribe_subject` on a subject the app is not subscribed to.
    NotSubscribed(String),
    /// A blocking `_sync` method (named here) was called from async code the app runs (a
    /// handler, middleware, task or hook): blocking there would stall the executor thread
    /// the app's endpoints run on. Await the async method there, or use `listen_sync` /
    /// `task_sync` for blocking code.
    SyncInAsync {
        /// `publish_sync` or `request_sync`.
        method: &'static str,
    },
    /// A credential (NKey seed, JWT, creds file) could not be read or used. The source
    /// says why: for a file, an error naming the file, whose own source is the
    /// [`io::Error`] when the file could not be read. The text never holds the secret.
    Credentials(BoxError),
    /// TLS failed for a reason that retrying will not fix: the server's certificate did not
    /// verify, the server refused ours, the server offers no TLS where we require it, or a
    /// certificate or key file could not be used. The source says exactly what.
    Tls(BoxError),
    /// Something asked for a part of panini that this build leaves out: enable the cargo
    /// feature named here (`panini = { version = "...", features = ["tls"] }`).
    FeatureDisabled {
        /// The cargo feature to enable: `tls` or `nkeys`.
        feature: &'static str,
        /// What needed it, e.g. "the tls:// URL tls://demo.nats.io:4222".
        needed_for: String,
    },
    /// JetStream refused or failed an operation: the server's [`ErrorCode`](crate::jetstream::ErrorCode)
    /// (see [`Error::api_error`]), no stream for a publish, a deleted consumer... (feature
    /// `jetstream`).
    #[cfg(feature = "jetstream")]
    JetStream(jetstream::JetStreamError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Server(text) => write!(f, "server error: {text}"),
            Error::Auth(text) => write!(f, "authorization failed: {text}"),
            Error::Json(e) => write!(f, "json error: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::NoResponders => f.write_str("no responders"),
            Error::Closed => f.write_str("connection closed"),
            Error::Draining => f.write_str("connection draining"),
            Error::InvalidSubject(s) => write!(f, "invalid subject or queue group {s:?}"),
            Error::InvalidHeader => f.write_str("invalid header name or value"),
            Error::MaxPayload { size, max } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the server's max_payload of {max}"
                )
            }
            Error::ReconnectBufferFull => {
                f.write_str("disconnected and the reconnect buffer is full; message not sent")
            }
            Error::InvalidUrl(url) => write!(f, "invalid server url {url:?}"),
            Error::NoServers(failures) => {
                f.write_str("could not connect to any server")?;
                for (i, (server, why)) in failures.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{server}: {why}")?;
                }
                Ok(())
            }
            Error::ConnectionLost => f.write_str(
                "connection lost with the request in flight; no reply after the reconnect",
            ),
            Error::Decode(why) => write!(f, "cannot decode payload: {why}"),
            Error::Service { code, description } => {
                write!(f, "service error {code}: {description}")
            }
            Error::Start { stage, source } => write!(f, "cannot start: {stage}: {source}"),
            Error::Credentials(e) => write!(f, "credentials: {e}"),
            Error::NotSubscribed(subject) => {
                write!(f, "subject {subject:?} hasn't been subscribed")
            }
            Error::SyncInAsync { method } => write!(
                f,
                "{method} called from async code of the app, where blocking would stall \
                 its executor: await the async method there, or use listen_sync/task_sync"
            ),
            Error::Tls(e) => write!(f, "tls: {e}"),
            Error::FeatureDisabled {
                feature,
                needed_for,
            } => write!(
                f,
                "{needed_for} needs panini's `{feature}` cargo feature, which this build \
                 leaves out (features = [\"{feature}\"] in Cargo.toml)"
            ),
            #[cfg(feature = "jetstream")]
            Error::JetStream(e) => write!(f, "jetstream: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Json(e) => Some(e),
            Error::NoServers(failures) => failures.last().map(|(_, e)| e as _),
            Error::Tls(e) | Error::Credentials(e) => Some(e.as_ref()),
            Error::Start { source, .. } => Some(source.as_ref()),
            #[cfg(feature = "jetstream")]
            Error::JetStream(e) => Some(e),
            Error::Server(_)
            | Error::Auth(_)
            | Error::Timeout
            | Error::NoResponders
            | Error::Closed
            | Error::Draining
            | Error::InvalidSubject(_)
            | Error::InvalidHeader
            | Error::MaxPayload { .. }
            | Error::ReconnectBufferFull
            | Error::InvalidUrl(_)
            | Error::ConnectionLost
            | Error::Decode(_)
            | Error::Service { .. }
            | Error::NotSubscribed(_)
            | Error::SyncInAsync { .. }
            | Error::FeatureDisabled { .. } => None,
        }
    }
}

/// What an app was doing when its start failed: the stage of an [`Error::Start`].
///
/// ```
/// use panini::{Error, StartStage};
///
/// let err = Error::Start {
///     stage: StartStage::OnStart(2),
///     source: "no database".into(),
/// };
/// assert_eq!(err.to_string(), "cannot start: on_start hook #2 failed: no database");
/// assert!(matches!(err, Error::Start { stage: StartStage::OnStart(2), .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartStage {
    /// Binding the HTTP server to this address.
    Listen(String),
    /// Connecting to NATS, with the retries the app allows.
    Connect,
    /// Running the `on_start` hook of this number (from 1, in the order they were added).
    OnStart(usize),
    /// Subscribing to this subject.
    Subscribe(String),
    /// Publishing the start event (`panini_events.<service>.<client>.started`).
    Announce,
    /// Starting the app's own executor threads (`App::threads` above 1).
    Threads,
    /// Setting up JetStream: checking the account, declaring a stream, creating the
    /// consumer of a durable endpoint (this one). Feature `jetstream`.
    #[cfg(feature = "jetstream")]
    JetStream(String),
    /// Setting up the NATS Service API: a version that is not SemVer, or its subscriptions.
    ServiceApi,
}

impl fmt::Display for StartStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartStage::Listen(addr) => write!(f, "cannot listen on {addr}"),
            StartStage::Connect => f.write_str("cannot connect to NATS"),
            StartStage::OnStart(n) => write!(f, "on_start hook #{n} failed"),
            StartStage::Subscribe(subject) => write!(f, "cannot subscribe to {subject}"),
            StartStage::Announce => f.write_str("cannot publish the start event"),
            StartStage::Threads => f.write_str("cannot start the app's threads"),
            #[cfg(feature = "jetstream")]
            StartStage::JetStream(what) => write!(f, "cannot set up JetStream: {what}"),
            StartStage::ServiceApi => f.write_str("cannot set up the NATS Service API"),
        }
    }
}

impl Error {
    /// The start failed at `stage` because of `source`.
    pub(crate) fn start(stage: StartStage, source: impl Into<BoxError>) -> Error {
        Error::Start {
            stage,
            source: source.into(),
        }
    }

    /// Whether retrying cannot help: the server refused who we are (credentials,
    /// certificates) or our configuration is wrong. Connecting stops at the first such
    /// error instead of trying every server again and again.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Auth(_)
                | Error::InvalidUrl(_)
                | Error::Credentials(_)
                | Error::Tls(_)
                | Error::FeatureDisabled { .. }
        )
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<panini_proto::Error> for Error {
    fn from(e: panini_proto::Error) -> Self {
        Error::Protocol(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

/// A file the client could not read or use (a credentials or NKey seed file, a TLS
/// certificate, key or CA file): which one, and why as its source (the [`io::Error`]
/// when it could not be read). Inside [`Error::Credentials`] and [`Error::Tls`].
#[derive(Debug)]
#[cfg_attr(not(any(feature = "tls", feature = "nkeys")), allow(dead_code))]
pub(crate) struct FileError {
    /// What failed: "cannot read", "cannot use".
    doing: &'static str,
    /// Which file: "credentials file", "CA file".
    what: &'static str,
    /// The path as errors may show it (a secret given where a path belongs is not).
    path: String,
    source: BoxError,
}

#[cfg_attr(not(any(feature = "tls", feature = "nkeys")), allow(dead_code))]
impl FileError {
    pub(crate) fn new(
        doing: &'static str,
        what: &'static str,
        path: String,
        source: impl Into<BoxError>,
    ) -> FileError {
        FileError {
            doing,
            what,
            path,
            source: source.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FileError {
            doing,
            what,
            path,
            source,
        } = self;
        write!(f, "{doing} the {what} {path}: {source}")
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The message of a caught panic (`panic!("...")` carries a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::{Error, StartStage};
    use std::error::Error as _;
    use std::io;

    /// The text of each error of the `source()` chain, `err` first.
    fn chain(err: &Error) -> Vec<String> {
        let first: &(dyn std::error::Error + 'static) = err;
        std::iter::successors(Some(first), |e| (*e).source())
            .map(ToString::to_string)
            .collect()
    }

    fn refused() -> Error {
        Error::Io(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
    }

    #[test]
    fn io_has_the_io_error_as_its_source() {
        assert_eq!(chain(&refused()), ["i/o error: refused", "refused"]);
    }

    #[test]
    fn no_servers_has_the_last_failure_as_its_source() {
        let err = Error::NoServers(vec![
            ("nats://a:4222".into(), Error::Timeout),
            ("nats://b:4222".into(), refused()),
        ]);
        assert_eq!(
            chain(&err),
            [
                "could not connect to any server: nats://a:4222: timed out; \
                 nats://b:4222: i/o error: refused",
                "i/o error: refused",
                "refused",
            ]
        );
        assert!(Error::NoServers(Vec::new()).source().is_none());
    }

    #[test]
    fn start_has_its_cause_as_its_source() {
        let hook = Error::start(StartStage::OnStart(2), "no database");
        assert_eq!(
            chain(&hook),
            [
                "cannot start: on_start hook #2 failed: no database",
                "no database"
            ]
        );
        let connect = Error::start(StartStage::Connect, refused());
        assert_eq!(
            chain(&connect),
            [
                "cannot start: cannot connect to NATS: i/o error: refused",
                "i/o error: refused",
                "refused",
            ]
        );
        let source = connect.source().and_then(|e| e.downcast_ref::<Error>());
        assert!(matches!(source, Some(Error::Io(_))), "{connect:?}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_start_that_failed_for_tls_reaches_the_rustls_error() {
        use futures_rustls::rustls;
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = Error::start(StartStage::Connect, Error::Tls(Box::new(rustls.clone())));
        let tls = err.source().and_then(|e| e.downcast_ref::<Error>());
        assert!(matches!(tls, Some(Error::Tls(_))), "{err:?}");
        let cause = tls.and_then(|e| e.source());
        assert_eq!(
            cause.and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(&rustls)
        );
        assert_eq!(
            chain(&err).last().map(String::as_str),
            Some("invalid peer certificate: UnknownIssuer")
        );
    }

    #[test]
    fn errors_that_wrap_nothing_have_no_source() {
        for err in [Error::Timeout, Error::Closed, Error::Server("bad".into())] {
            assert!(err.source().is_none(), "{err:?}");
        }
    }
}
