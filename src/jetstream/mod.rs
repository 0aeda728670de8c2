//! JetStream on panini's [`Client`]: streams, pull consumers, acknowledged publishes and
//! acknowledged consumption, over core request/reply, headers and status codes only.
//!
//! A [`Context`] is made from a client (with an optional domain or API prefix, and a
//! timeout for API calls). Through it: [`account_info`](Context::account_info); streams
//! ([`create_stream`](Context::create_stream), [`update_stream`](Context::update_stream),
//! [`create_or_update_stream`](Context::create_or_update_stream), and a [`Stream`] handle
//! for info, purge, messages by sequence or subject, and its consumers); durable and
//! ephemeral pull [`Consumer`]s ([`fetch`](Consumer::fetch) a batch, or a continuous
//! [`messages`](Consumer::messages) stream); and publishes acknowledged by the stream
//! ([`publish`](Context::publish), [`publish_async`](Context::publish_async) with a bounded
//! window of acks in flight). Each delivered [`Message`] carries its metadata and its
//! acknowledgements (`ack`, `double_ack`, `nak`, `in_progress`, `term`).
//!
//! On top of these: [ordered consumers](Stream::ordered) (every message of a stream or a
//! filter once, in order, without acks, across lost consumers and server restarts), and
//! the [Key-Value store](kv) ([`Context::create_key_value`], [`Context::key_value`]).
//!
//! Errors are panini's [`Error`](crate::Error); what the server refused is
//! [`Error::JetStream`](crate::Error::JetStream) with a typed [`ApiError`]: branch on its
//! [`ErrorCode`], never on text. The pull status messages (`404`, `408`, `409`, `100`
//! heartbeats) are handled here and never reach the caller as messages.
//!
//! ```no_run
//! # panini::rt::block_on(async {
//! use std::time::Duration;
//! use panini::jetstream::{self, AckPolicy, ConsumerConfig, ErrorCode, PublishOptions, StreamConfig};
//! use panini::rt::StreamExt;
//!
//! let client = panini::client::connect("nats://127.0.0.1:4222").await?;
//! let js = jetstream::Context::new(client);
//!
//! js.create_or_update_stream(&StreamConfig::new("ORDERS", ["orders.>"])).await?;
//! let ack = js.publish("orders.new", r#"{"id":1}"#).await?;
//! println!("stored as #{} in {}", ack.seq, ack.stream);
//!
//! // Only if the stream's last message is still the one we saw:
//! let opts = PublishOptions::new().msg_id("order-2").expected_last_sequence(ack.seq);
//! match js.publish_with("orders.new", r#"{"id":2}"#, &opts).await {
//!     Err(e) if e.err_code() == Some(ErrorCode::WRONG_LAST_SEQUENCE) => println!("lost a race"),
//!     other => { other?; }
//! }
//!
//! let config = ConsumerConfig::durable("billing").ack_policy(AckPolicy::Explicit);
//! let consumer = js.stream("ORDERS").create_consumer(&config).await?;
//! for msg in consumer.fetch(10).expires(Duration::from_secs(1)).await? {
//!     println!("{} (delivery {})", msg.subject, msg.info()?.delivered);
//!     msg.ack().await?;
//! }
//! let mut messages = consumer.messages().await?;
//! while let Some(msg) = messages.next().await {
//!     let msg = msg?; // an error here ends the stream (the consumer was deleted...)
//!     msg.ack().await?;
//! }
//! # Ok::<(), panini::Error>(()) });
//! ```
//!
//! # Layout
//! - `mod.rs`: [`Context`], its settings, [`AccountInfo`].
//! - `api`: the request helper (error replies, paging) and the API's wire encodings.
//! - [`ApiError`], [`ErrorCode`], [`JetStreamError`]: defined with the crate's errors
//!   (`error/jetstream.rs`), so that [`Error`](crate::Error) can carry them.
//! - `stream`: [`StreamConfig`], [`StreamInfo`], the [`Stream`] handle.
//! - `stored`: a stream's messages: [`StoredMessage`] by sequence or subject, deletes,
//!   [`Purge`].
//! - `consumer`: [`ConsumerConfig`], [`ConsumerInfo`], the [`Consumer`] handle.
//! - `publish`: [`PubAck`], [`PublishOptions`], the windowed [`PubAckFuture`].
//! - `message`: [`Message`]: metadata from the ack subject, acknowledgements.
//! - `pull`: pull requests and the status messages that answer them.
//! - `fetch`: one pull, collected ([`Fetch`]).
//! - `consume`: the continuous [`Messages`] stream (refills, heartbeats, recovery).
//! - `ordered`: ordered consumers ([`Ordered`], [`OrderedMessages`]): resets on a gap,
//!   a lost consumer or a reconnect.
//! - [`kv`]: Key-Value buckets on streams, read and watched through ordered consumers.
//! - the API's times to and from `SystemTime` are the foundation's `rfc3339`.

mod api;
mod consume;
mod consumer;
mod fetch;
pub mod kv;
mod message;
mod ordered;
mod publish;
mod pull;
mod stored;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use smol::lock::Semaphore;

pub use crate::error::jetstream::{ApiError, ErrorCode, JetStreamError};
pub use consume::{
    Consume, Messages, DEFAULT_CONSUME_BATCH, DEFAULT_CONSUME_EXPIRES, DEFAULT_CONSUME_HEARTBEAT,
};
pub use consumer::{
    AckPolicy, Consumer, ConsumerConfig, ConsumerInfo, DeliverPolicy, ReplayPolicy, SequenceInfo,
};
pub use fetch::{Fetch, DEFAULT_FETCH_EXPIRES};
pub use message::{Message, MessageInfo};
pub use ordered::{Ordered, OrderedMessages, DEFAULT_ORDERED_HEARTBEAT};
pub(crate) use publish::parse_ack;
pub use publish::{PubAck, PubAckFuture, PublishOptions};
pub use stored::{Purge, StoredMessage};
pub use stream::{
    ClusterInfo, DiscardPolicy, PeerInfo, RetentionPolicy, StorageType, Stream, StreamConfig,
    StreamInfo, StreamState,
};

use crate::client::Client;
use crate::error::Result;

/// The API prefix without a domain.
const DEFAULT_PREFIX: &str = "$JS.API";

/// API calls wait this long for their reply unless [`Context::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Acks a [`Context::publish_async`] keeps in flight unless
/// [`Context::with_max_pending_acks`] says otherwise.
pub const DEFAULT_MAX_PENDING_ACKS: usize = 1024;

/// JetStream through one client: cheap to clone (clones share the window of pending
/// acks).
///
/// ```no_run
/// # panini::rt::block_on(async {
/// use std::time::Duration;
/// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
/// let js = panini::jetstream::Context::new(client)
///     .with_domain("hub")
///     .with_timeout(Duration::from_secs(2));
/// let info = js.account_info().await?;
/// println!("{} streams, {} bytes stored", info.streams, info.storage);
/// # Ok::<(), panini::Error>(()) });
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    pub(crate) client: Client,
    pub(crate) prefix: Arc<str>,
    pub(crate) timeout: Duration,
    /// One permit per publish whose ack is awaited ([`Context::publish_async`]).
    pub(crate) window: Arc<Semaphore>,
    pub(crate) window_size: usize,
}

impl Context {
    /// JetStream with the default API prefix (`$JS.API`) and timeout
    /// ([`DEFAULT_TIMEOUT`]).
    pub fn new(client: Client) -> Context {
        Context {
            client,
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            window: Arc::new(Semaphore::new(DEFAULT_MAX_PENDING_ACKS)),
            window_size: DEFAULT_MAX_PENDING_ACKS,
        }
    }

    /// Talks to the JetStream of domain `domain` (API prefix `$JS.<domain>.API`).
    pub fn with_domain(mut self, domain: &str) -> Context {
        self.prefix = format!("$JS.{domain}.API").into();
        self
    }

    /// Uses `prefix` instead of `$JS.API` (for an account that imports another's
    /// JetStream under its own prefix).
    pub fn with_prefix(mut self, prefix: &str) -> Context {
        self.prefix = prefix.trim_end_matches('.').into();
        self
    }

    /// How long API calls, publishes and double acks wait for their reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Context {
        self.timeout = timeout;
        self
    }

    /// How many acks [`publish_async`](Context::publish_async) keeps in flight before it
    /// waits for one (at least 1). A new window: clones made before keep the old one.
    pub fn with_max_pending_acks(mut self, n: usize) -> Context {
        let n = n.max(1);
        self.window = Arc::new(Semaphore::new(n));
        self.window_size = n;
        self
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API prefix in use, e.g. `$JS.API`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The timeout of API calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What the account uses and may use. Also the way to check that JetStream is there:
    /// without it this fails with [`JetStreamError::NotEnabled`] at once.
    pub async fn account_info(&self) -> Result<AccountInfo> {
        self.api::<_, ()>("INFO", None).await
    }
}

/// The JetStream usage and limits of the account (`$JS.API.INFO`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AccountInfo {
    /// Bytes of memory storage in use.
    pub memory: u64,
    /// Bytes of file storage in use.
    pub storage: u64,
    /// Streams.
    pub streams: u64,
    /// Consumers.
    pub consumers: u64,
    /// The account's limits.
    pub limits: AccountLimits,
    /// The JetStream domain, if the server has one.
    pub domain: Option<String>,
    /// API calls counted by the server.
    pub api: ApiStats,
}

/// An account's JetStream limits (`-1`: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AccountLimits {
    /// Bytes of memory storage.
    pub max_memory: i64,
    /// Bytes of file storage.
    pub max_storage: i64,
    /// Streams.
    pub max_streams: i64,
    /// Consumers.
    pub max_consumers: i64,
    /// Unacknowledged messages per consumer.
    pub max_ack_pending: i64,
}

/// API calls the account made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ApiStats {
    /// All calls.
    pub total: u64,
    /// Calls answered with an error.
    pub errors: u64,
}
