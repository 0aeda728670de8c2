//! Pull consumers: [`ConsumerConfig`] and [`ConsumerInfo`] as the API writes them, the
//! calls that create (or update), list and delete consumers, and the [`Consumer`] handle
//! that [`fetch`](Consumer::fetch) and [`messages`](Consumer::messages) pull through.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::check_name;
use super::api::{is_zero, nanos};
use super::stream::{confirmed, ClusterInfo, Stream};
use super::Context;
use crate::error::Result;

/// How messages are acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    /// Each message is acknowledged on its own (the default here; the server's default when
    /// the field is missing is `none`, so it is always sent).
    #[default]
    Explicit,
    /// Acknowledging a message acknowledges every one before it.
    All,
    /// No acknowledgements: delivered is done.
    None,
}

/// Where in the stream a new consumer starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    All,
    /// From the last message.
    Last,
    /// Only messages stored from now on.
    New,
    /// From [`ConsumerConfig::opt_start_seq`].
    ByStartSequence,
    /// From [`ConsumerConfig::opt_start_time`].
    ByStartTime,
    /// The last message of each subject (needs a `filter_subject` on servers 2.9).
    LastPerSubject,
}

/// How fast stored messages are replayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    /// As fast as the consumer takes them.
    #[default]
    Instant,
    /// At the pace they were stored.
    Original,
}

/// A pull consumer's configuration. A `durable_name` makes it durable; without one it is
/// ephemeral (the server removes it after `inactive_threshold` without pulls, 5 s by
/// default). Unset fields (zero, empty) are not sent, so the server's defaults apply.
///
/// ```
/// use std::time::Duration;
/// use panini::jetstream::{AckPolicy, ConsumerConfig};
/// let config = ConsumerConfig {
///     max_deliver: 5,
///     backoff: vec![Duration::from_secs(1), Duration::from_secs(10)],
///     ..ConsumerConfig::durable("billing")
/// };
/// assert_eq!(config.ack_policy, AckPolicy::Explicit);
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(
///     json,
///     r#"{"durable_name":"billing","deliver_policy":"all","ack_policy":"explicit","max_deliver":5,"replay_policy":"instant","backoff":[1000000000,10000000000]}"#
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// The durable name: the consumer outlives its clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable_name: Option<String>,
    /// The name of an ephemeral consumer (the server picks one if unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where it starts.
    pub deliver_policy: DeliverPolicy,
    /// The first sequence, with [`DeliverPolicy::ByStartSequence`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_seq: Option<u64>,
    /// The first time (RFC 3339), with [`DeliverPolicy::ByStartTime`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// How messages are acknowledged (always sent).
    pub ack_policy: AckPolicy,
    /// How long a delivered message may stay unacknowledged before it is redelivered
    /// (unset: 30 s; the first `backoff` value when there is one).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub ack_wait: Duration,
    /// Most deliveries of one message (unset: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_deliver: i64,
    /// Only the messages on this subject (wildcards allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    /// Replay pace.
    pub replay_policy: ReplayPolicy,
    /// Most messages delivered and not yet acknowledged (unset: 1000); delivery pauses
    /// there.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    /// Most pull requests waiting at once (unset: 512).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_waiting: i64,
    /// Largest batch one pull may ask for (unset: no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_batch: i64,
    /// Longest `expires` one pull may ask for (unset: no limit).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub max_expires: Duration,
    /// Largest `max_bytes` one pull may ask for (unset: no limit).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_bytes: i64,
    /// Redelivery delays, one per delivery (the last repeats); `max_deliver` must exceed
    /// their count.
    #[serde(with = "nanos::list", skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<Duration>,
    /// Deliver headers only, with the payload's size in `Nats-Msg-Size`.
    #[serde(skip_serializing_if = "is_zero")]
    pub headers_only: bool,
    /// How long without pulls before the server removes the consumer (ephemerals: 5 s
    /// unless set).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub inactive_threshold: Duration,
    /// Replicas (unset: the stream's).
    #[serde(skip_serializing_if = "is_zero")]
    pub num_replicas: usize,
    /// Keep its state in memory even on a file stream.
    #[serde(skip_serializing_if = "is_zero")]
    pub mem_storage: bool,
    /// The fields this type does not name, kept as the server wrote them.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl ConsumerConfig {
    /// A durable pull consumer named `name`, explicit acks, from the first message.
    pub fn durable(name: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            durable_name: Some(name.into()),
            ..ConsumerConfig::default()
        }
    }

    /// An ephemeral pull consumer (named by the server), explicit acks, from the first
    /// message.
    pub fn ephemeral() -> ConsumerConfig {
        ConsumerConfig::default()
    }

    /// Sets the ack policy.
    pub fn ack_policy(mut self, policy: AckPolicy) -> Self {
        self.ack_policy = policy;
        self
    }

    /// Sets the filter subject.
    pub fn filter_subject(mut self, subject: impl Into<String>) -> Self {
        self.filter_subject = Some(subject.into());
        self
    }

    /// The name it is created under: the durable name, else the ephemeral's own name.
    fn chosen_name(&self) -> Option<&str> {
        self.durable_name.as_deref().or(self.name.as_deref())
    }
}

/// A consumer's configuration and state.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// Its stream.
    pub stream_name: String,
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Its configuration, with the server's defaults filled in.
    pub config: ConsumerConfig,
    /// The last message delivered.
    pub delivered: SequenceInfo,
    /// Everything up to here is acknowledged.
    pub ack_floor: SequenceInfo,
    /// Messages delivered and not yet acknowledged.
    pub num_ack_pending: u64,
    /// Messages delivered more than once.
    pub num_redelivered: u64,
    /// Pull requests waiting.
    pub num_waiting: u64,
    /// Messages of the stream not yet delivered.
    pub num_pending: u64,
    /// Its replicas, in a cluster.
    pub cluster: Option<ClusterInfo>,
}

/// A position in a consumer and its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SequenceInfo {
    /// The consumer's sequence (counts every delivery).
    pub consumer_seq: u64,
    /// The stream's sequence.
    pub stream_seq: u64,
    /// When (RFC 3339), if ever.
    pub last_active: Option<String>,
}

#[derive(Serialize)]
struct CreateRequest<'a> {
    stream_name: &'a str,
    config: &'a ConsumerConfig,
}

impl Stream {
    /// Creates the pull consumer, or updates it if one of that name exists (what the
    /// server does for a create on 2.9; from 2.10 the request asks for it). Idempotent, so
    /// an app can call it at every start.
    pub async fn create_consumer(&self, config: &ConsumerConfig) -> Result<Consumer> {
        let mut verb = self.verb("CONSUMER.CREATE")?;
        if let Some(name) = config.chosen_name() {
            check_name(name)?;
            verb = format!("{verb}.{name}");
        }
        let request = CreateRequest {
            stream_name: &self.name,
            config,
        };
        let info: ConsumerInfo = self.ctx.api(&verb, Some(&request)).await?;
        Ok(Consumer {
            stream: self.clone(),
            name: info.name.clone(),
            cached: Some(info),
        })
    }

    /// A handle on its consumer `name` (no call yet).
    pub fn consumer(&self, name: impl Into<String>) -> Consumer {
        Consumer {
            stream: self.clone(),
            name: name.into(),
            cached: None,
        }
    }

    /// Deletes its consumer `name`.
    pub async fn delete_consumer(&self, name: &str) -> Result<()> {
        self.consumer(name).delete().await
    }

    /// The names of its consumers (all pages).
    pub async fn consumer_names(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Names {
            #[serde(default)]
            consumers: Option<Vec<String>>,
        }
        let verb = self.verb("CONSUMER.NAMES")?;
        let pick = |p: Names| p.consumers.unwrap_or_default();
        self.ctx.paged(&verb, serde_json::Map::new(), pick).await
    }

    /// Its consumers' configurations and states (all pages).
    pub async fn consumers(&self) -> Result<Vec<ConsumerInfo>> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            consumers: Option<Vec<ConsumerInfo>>,
        }
        let verb = self.verb("CONSUMER.LIST")?;
        let pick = |p: List| p.consumers.unwrap_or_default();
        self.ctx.paged(&verb, serde_json::Map::new(), pick).await
    }
}

impl Context {
    /// Creates (or updates) a pull consumer on `stream`: see [`Stream::create_consumer`].
    pub async fn create_consumer(&self, stream: &str, config: &ConsumerConfig) -> Result<Consumer> {
        self.stream(stream).create_consumer(config).await
    }

    /// A handle on consumer `name` of `stream` (no call yet).
    pub fn consumer(&self, stream: &str, name: &str) -> Consumer {
        self.stream(stream).consumer(name)
    }

    /// Deletes consumer `name` of `stream`.
    pub async fn delete_consumer(&self, stream: &str, name: &str) -> Result<()> {
        self.consumer(stream, name).delete().await
    }
}

/// One pull consumer of a stream. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub(crate) stream: Stream,
    pub(crate) name: String,
    cached: Option<ConsumerInfo>,
}

impl Consumer {
    /// Its name (for an ephemeral, the one the server gave it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// What the server said when it was created, if this handle comes from a create.
    pub fn cached_info(&self) -> Option<&ConsumerInfo> {
        self.cached.as_ref()
    }

    pub(crate) fn context(&self) -> &Context {
        &self.stream.ctx
    }

    /// `<verb>.<stream>.<name>`, once both names are known to be usable in a subject.
    pub(crate) fn verb(&self, verb: &str) -> Result<String> {
        check_name(&self.name)?;
        Ok(format!("{}.{}", self.stream.verb(verb)?, self.name))
    }

    /// Its configuration and state now.
    pub async fn info(&self) -> Result<ConsumerInfo> {
        let verb = self.verb("CONSUMER.INFO")?;
        self.context().api::<_, ()>(&verb, None).await
    }

    /// Deletes it (pulls waiting on it end with an error).
    pub async fn delete(&self) -> Result<()> {
        let verb = self.verb("CONSUMER.DELETE")?;
        confirmed(self.context().api::<_, ()>(&verb, None).await?)
    }
}
