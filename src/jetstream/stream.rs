//! Streams: [`StreamConfig`] and [`StreamInfo`] as the API writes them, the calls that
//! create, update, list and delete streams, and the [`Stream`] handle (its messages are
//! in `stored`, its consumers in `consumer`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::check_name;
use super::api::{is_zero, nanos, Success};
use super::Context;
use super::{ApiError, ErrorCode};
use crate::error::Result;

/// How a stream decides a message can go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// Kept until a limit (count, bytes, age) removes it.
    #[default]
    Limits,
    /// Kept while some consumer has not acknowledged it.
    Interest,
    /// Removed once a consumer acknowledges it (one consumer per subject).
    #[serde(rename = "workqueue")]
    WorkQueue,
}

/// Where a stream keeps its messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// What a full stream does with a new message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    /// Removes the oldest messages to make room.
    #[default]
    Old,
    /// Refuses the new message.
    New,
}

/// A stream's configuration, as the server reads it. Unset fields (zero, empty, `false`)
/// are not sent, so the server's defaults apply; the server echoes its values back in
/// [`StreamInfo::config`] (`-1` for unlimited).
///
/// ```
/// use std::time::Duration;
/// use panini::jetstream::{StorageType, StreamConfig};
/// let config = StreamConfig {
///     storage: StorageType::Memory,
///     max_age: Duration::from_secs(3600),
///     ..StreamConfig::new("ORDERS", ["orders.>"])
/// };
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(
///     json,
///     r#"{"name":"ORDERS","subjects":["orders.>"],"retention":"limits","max_age":3600000000000,"storage":"memory","discard":"old"}"#
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Its name: no `.`, `*`, `>`, `/`, `\` or whitespace.
    pub name: String,
    /// The subjects it stores (wildcards allowed); none means its name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// A description for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When messages go.
    pub retention: RetentionPolicy,
    /// Most consumers (unset: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_consumers: i64,
    /// Most messages (unset: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_msgs: i64,
    /// Most bytes (unset: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_bytes: i64,
    /// Oldest message kept (unset: no limit).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub max_age: Duration,
    /// Most messages per subject (unset: unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_msgs_per_subject: i64,
    /// Largest message (unset: the server's max_payload).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_msg_size: i64,
    /// File or memory.
    pub storage: StorageType,
    /// What a full stream does.
    pub discard: DiscardPolicy,
    /// Replicas in a cluster (unset: 1).
    #[serde(skip_serializing_if = "is_zero")]
    pub num_replicas: usize,
    /// How long `Nats-Msg-Id`s are remembered to drop duplicates (unset: 2 minutes).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub duplicate_window: Duration,
    /// Publishes get no ack.
    #[serde(skip_serializing_if = "is_zero")]
    pub no_ack: bool,
    /// `Nats-Rollup` headers are allowed.
    #[serde(skip_serializing_if = "is_zero")]
    pub allow_rollup_hdrs: bool,
    /// Messages cannot be deleted.
    #[serde(skip_serializing_if = "is_zero")]
    pub deny_delete: bool,
    /// The stream cannot be purged.
    #[serde(skip_serializing_if = "is_zero")]
    pub deny_purge: bool,
    /// Direct get (`$JS.API.DIRECT.GET`) is allowed.
    #[serde(skip_serializing_if = "is_zero")]
    pub allow_direct: bool,
    /// With `discard: new` and `max_msgs_per_subject`, refuses per subject.
    #[serde(skip_serializing_if = "is_zero")]
    pub discard_new_per_subject: bool,
    /// Sealed: no more writes, deletes or purges.
    #[serde(skip_serializing_if = "is_zero")]
    pub sealed: bool,
    /// The fields this type does not name (`placement`, `mirror`, `sources`, `republish`…),
    /// kept as the server wrote them, so that an update made from [`Stream::info`] keeps
    /// them.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl StreamConfig {
    /// A stream `name` storing `subjects`, the rest left to the server's defaults.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        subjects: impl IntoIterator<Item = S>,
    ) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            ..StreamConfig::default()
        }
    }
}

/// A stream's configuration and state.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StreamInfo {
    /// Its configuration, with the server's defaults filled in.
    pub config: StreamConfig,
    /// When it was created (RFC 3339).
    pub created: String,
    /// What it holds.
    pub state: StreamState,
    /// Its replicas, in a cluster.
    pub cluster: Option<ClusterInfo>,
}

/// What a stream holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StreamState {
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// The first sequence stored.
    pub first_seq: u64,
    /// When the first message was stored (RFC 3339).
    pub first_ts: String,
    /// The last sequence stored.
    pub last_seq: u64,
    /// When the last message was stored (RFC 3339).
    pub last_ts: String,
    /// Distinct subjects.
    pub num_subjects: u64,
    /// Messages deleted between the first and the last.
    pub num_deleted: u64,
    /// Consumers.
    pub consumer_count: u64,
}

/// Where a stream's or consumer's replicas are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterInfo {
    /// The cluster's name.
    pub name: Option<String>,
    /// The server leading it.
    pub leader: Option<String>,
    /// The other replicas.
    pub replicas: Vec<PeerInfo>,
}

/// One replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The server's name.
    pub name: String,
    /// Whether it is up to date.
    pub current: bool,
    /// Whether it is offline.
    pub offline: bool,
    /// Since it was last heard from.
    #[serde(with = "nanos")]
    pub active: Duration,
    /// Operations it is behind.
    pub lag: u64,
}

/// Replies whose `success` must be true.
pub(crate) fn confirmed(reply: Success) -> Result<()> {
    if reply.success {
        return Ok(());
    }
    Err(ApiError {
        code: 500,
        err_code: ErrorCode(0),
        description: "the server did not confirm the operation".into(),
    }
    .into())
}

impl Context {
    /// Creates a stream. The same configuration again is not an error; a different one for
    /// the same name is [`ErrorCode::STREAM_NAME_IN_USE`] (use
    /// [`update_stream`](Context::update_stream)).
    pub async fn create_stream(&self, config: &StreamConfig) -> Result<StreamInfo> {
        check_name(&config.name)?;
        let verb = format!("STREAM.CREATE.{}", config.name);
        self.api(&verb, Some(config)).await
    }

    /// Changes a stream's configuration ([`ErrorCode::STREAM_NOT_FOUND`] if there is none).
    pub async fn update_stream(&self, config: &StreamConfig) -> Result<StreamInfo> {
        check_name(&config.name)?;
        let verb = format!("STREAM.UPDATE.{}", config.name);
        self.api(&verb, Some(config)).await
    }

    /// Makes the stream exist with this configuration: updated if it exists, created if
    /// not. Idempotent, so an app can call it at every start.
    pub async fn create_or_update_stream(&self, config: &StreamConfig) -> Result<StreamInfo> {
        match self.update_stream(config).await {
            Err(e) if e.err_code() == Some(ErrorCode::STREAM_NOT_FOUND) => {}
            other => return other,
        }
        match self.create_stream(config).await {
            // Created by someone else in between, with another configuration.
            Err(e) if e.err_code() == Some(ErrorCode::STREAM_NAME_IN_USE) => {
                self.update_stream(config).await
            }
            other => other,
        }
    }

    /// A handle on the stream `name` (no call yet: the first operation says if it exists).
    pub fn stream(&self, name: impl Into<String>) -> Stream {
        Stream {
            ctx: self.clone(),
            name: name.into(),
        }
    }

    /// Deletes the stream `name`, its messages and its consumers.
    pub async fn delete_stream(&self, name: &str) -> Result<()> {
        self.stream(name).delete().await
    }

    /// The names of every stream (all pages).
    pub async fn stream_names(&self) -> Result<Vec<String>> {
        self.names_page(serde_json::Map::new()).await
    }

    /// The names of the streams that store `subject` (wildcards allowed).
    pub async fn stream_names_for_subject(&self, subject: &str) -> Result<Vec<String>> {
        let mut body = serde_json::Map::new();
        body.insert("subject".into(), subject.into());
        self.names_page(body).await
    }

    async fn names_page(
        &self,
        body: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Names {
            #[serde(default)]
            streams: Option<Vec<String>>,
        }
        self.paged("STREAM.NAMES", body, |p: Names| {
            p.streams.unwrap_or_default()
        })
        .await
    }

    /// Every stream's configuration and state (all pages).
    pub async fn streams(&self) -> Result<Vec<StreamInfo>> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            streams: Option<Vec<StreamInfo>>,
        }
        self.paged("STREAM.LIST", serde_json::Map::new(), |p: List| {
            p.streams.unwrap_or_default()
        })
        .await
    }
}

/// One stream: its info, purge, messages, and (see [`Consumer`](super::Consumer)) its
/// consumers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stream {
    pub(crate) ctx: Context,
    pub(crate) name: String,
}

impl Stream {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The context it was made from.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// `<verb>.<name>`, once the name is known to be usable in a subject.
    pub(crate) fn verb(&self, verb: &str) -> Result<String> {
        check_name(&self.name)?;
        Ok(format!("{verb}.{}", self.name))
    }

    /// Its configuration and state now.
    pub async fn info(&self) -> Result<StreamInfo> {
        self.ctx
            .api::<_, ()>(&self.verb("STREAM.INFO")?, None)
            .await
    }

    /// Deletes it, its messages and its consumers.
    pub async fn delete(&self) -> Result<()> {
        let verb = self.verb("STREAM.DELETE")?;
        confirmed(self.ctx.api::<_, ()>(&verb, None).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_echoed_by_the_server_round_trips_with_its_unknown_fields() {
        let echoed = r#"{"name":"S","subjects":["s.>"],"retention":"workqueue","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"memory","num_replicas":1,"duplicate_window":120000000000,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"allow_direct":false,"mirror_direct":false,"placement":{"cluster":"c"}}"#;
        let config: StreamConfig = serde_json::from_str(echoed).unwrap();
        assert_eq!(config.retention, RetentionPolicy::WorkQueue);
        assert_eq!(config.storage, StorageType::Memory);
        assert_eq!(config.max_msgs, -1);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
        assert_eq!(config.other["placement"]["cluster"], "c");
        let again: serde_json::Value = serde_json::to_value(&config).unwrap();
        assert_eq!(again["placement"]["cluster"], "c");
        assert_eq!(again["max_msgs"], -1);
        assert_eq!(again["mirror_direct"], false);
        assert!(again.get("max_age").is_none(), "{again}");
    }
}
