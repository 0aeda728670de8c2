//! Key-Value buckets on JetStream: a bucket is the stream `KV_<bucket>` on the subjects
//! `$KV.<bucket>.>`, a key is one subject, and its last message is its value. Each write
//! has a revision (the message's stream sequence); a bucket keeps up to 64 revisions per
//! key (its `history`); deletes and purges are markers (`KV-Operation: DEL` / `PURGE`),
//! so watchers see them.
//!
//! [`Context::create_key_value`] makes a bucket, [`Context::key_value`] binds to one, and
//! [`Context::delete_key_value`] removes it. On the [`Store`]: [`get`](Store::get),
//! [`entry`](Store::entry), [`get_revision`](Store::get_revision), [`put`](Store::put),
//! [`create`](Store::create) (only if absent), [`update`](Store::update) (only at a
//! revision), [`delete`](Store::delete), [`purge`](Store::purge), [`keys`](Store::keys),
//! [`history`](Store::history), [`watch`](Store::watch) / [`watch_all`](Store::watch_all),
//! and [`status`](Store::status). Conflicts and bad names are [`KvError`]s inside
//! [`Error`](crate::Error): find them with [`Error::kv_error`](crate::Error::kv_error).
//!
//! Reads use the stream's direct get (any replica answers, no JSON) when the bucket
//! allows it (buckets made here do, on nats-server 2.9 and later), else
//! `STREAM.MSG.GET` (the stream leader answers). Watches, keys and history read through
//! an [ordered consumer](super::Ordered), so they survive server restarts.
//!
//! ```no_run
//! # panini::rt::block_on(async {
//! use std::time::Duration;
//! use panini::jetstream::kv::{KvConfig, KvError, WatchEvent};
//! use panini::rt::StreamExt;
//!
//! let client = panini::client::connect("nats://127.0.0.1:4222").await?;
//! let js = panini::jetstream::Context::new(client);
//! let config = KvConfig { history: 5, ttl: Duration::from_secs(3600), ..KvConfig::new("config") };
//! let kv = js.create_key_value(&config).await?;
//!
//! let rev = kv.put("db.url", "postgres://a").await?;
//! let entry = kv.get("db.url").await?.expect("just put");
//! assert_eq!(entry.revision, rev);
//!
//! // Optimistic concurrency: only if nobody wrote since `rev`.
//! match kv.update("db.url", "postgres://b", rev).await {
//!     Err(e) if e.kv_error().is_some_and(KvError::is_conflict) => println!("lost a race"),
//!     other => { other?; }
//! }
//!
//! let mut watch = kv.watch_all().await?;
//! while let Some(event) = watch.next().await {
//!     match event? {
//!         WatchEvent::Entry(e) => println!("{} = {:?} ({:?})", e.key, e.text(), e.operation),
//!         WatchEvent::InitialDone => println!("-- up to date, now live --"),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), panini::Error>(()) });
//! ```
//!
//! # Layout
//! - `mod.rs`: [`KvConfig`], the bucket calls on [`Context`], the [`Store`] handle, its
//!   [`Status`], and the name checks.
//! - `entry`: [`Entry`] and [`Operation`], read from each form a message comes back in.
//! - `read`: `get`, `entry`, `get_revision` (direct get, or `STREAM.MSG.GET`).
//! - `write`: `put`, `create`, `update`, `delete`, `purge`.
//! - `watch`: [`Watch`] and [`WatchEvent`], `keys`, `history`.

mod entry;
mod read;
mod watch;
mod write;

use std::time::Duration;

pub use crate::error::jetstream::KvError;
pub use entry::{Entry, Operation};
pub use watch::{Watch, WatchEvent};

use super::{Context, DiscardPolicy, ErrorCode, StorageType, Stream, StreamConfig, StreamInfo};
use crate::error::Result;

/// Most revisions a bucket keeps per key.
pub const MAX_HISTORY: u8 = 64;

/// A bucket's configuration. Unset fields (zero) take the defaults: history 1, no TTL,
/// no size limits, file storage, one replica.
///
/// ```
/// use std::time::Duration;
/// use panini::jetstream::{kv::KvConfig, StorageType};
/// let config = KvConfig {
///     history: 10,
///     storage: StorageType::Memory,
///     max_value_size: 1024,
///     ..KvConfig::new("sessions")
/// };
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvConfig {
    /// Its name: ASCII letters, digits, `_` and `-`.
    pub bucket: String,
    /// A description for people.
    pub description: Option<String>,
    /// Revisions kept per key, 1 to [`MAX_HISTORY`] (0: 1).
    pub history: u8,
    /// How long a value lives (zero: for ever).
    pub ttl: Duration,
    /// Largest value, in bytes (0: no limit but the server's max_payload).
    pub max_value_size: i64,
    /// Most bytes the bucket holds (0: no limit); a write past it is refused.
    pub max_bytes: i64,
    /// File or memory.
    pub storage: StorageType,
    /// Replicas in a cluster (0: 1).
    pub replicas: usize,
}

impl KvConfig {
    /// A bucket named `bucket` with the defaults.
    pub fn new(bucket: impl Into<String>) -> KvConfig {
        KvConfig {
            bucket: bucket.into(),
            ..KvConfig::default()
        }
    }

    /// The stream behind the bucket, as nats.go and async-nats make it.
    pub(crate) fn stream_config(&self) -> Result<StreamConfig> {
        check_bucket(&self.bucket)?;
        let history = match self.history {
            0 => 1,
            n if n > MAX_HISTORY => return Err(KvError::InvalidHistory(n.into()).into()),
            n => n,
        };
        let unlimited = |n: i64| if n == 0 { -1 } else { n };
        // Deduplication never outlives the values.
        let mut duplicate_window = Duration::from_secs(120);
        if !self.ttl.is_zero() {
            duplicate_window = duplicate_window.min(self.ttl);
        }
        Ok(StreamConfig {
            description: self.description.clone(),
            max_msgs_per_subject: history.into(),
            max_msgs: -1,
            max_consumers: -1,
            max_bytes: unlimited(self.max_bytes),
            max_msg_size: unlimited(self.max_value_size),
            max_age: self.ttl,
            storage: self.storage,
            num_replicas: self.replicas.max(1),
            discard: DiscardPolicy::New,
            duplicate_window,
            allow_rollup_hdrs: true,
            deny_delete: true,
            allow_direct: true,
            ..StreamConfig::new(
                stream_name(&self.bucket),
                [format!("$KV.{}.>", self.bucket)],
            )
        })
    }
}

fn stream_name(bucket: &str) -> String {
    format!("KV_{bucket}")
}

impl Context {
    /// Creates the bucket (the stream `KV_<bucket>`). The same configuration again is not
    /// an error; another one for an existing bucket is [`KvError::BucketExists`].
    pub async fn create_key_value(&self, config: &KvConfig) -> Result<Store> {
        let stream = config.stream_config()?;
        match self.create_stream(&stream).await {
            Ok(info) => Ok(Store::new(self, &config.bucket, &info)),
            Err(e) if e.err_code() == Some(ErrorCode::STREAM_NAME_IN_USE) => {
                Err(KvError::BucketExists(config.bucket.clone()).into())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket, or updates an existing one to this configuration (what an app
    /// declaring its bucket at every start needs), and binds to it.
    pub async fn create_or_update_key_value(&self, config: &KvConfig) -> Result<Store> {
        match self.create_key_value(config).await {
            Err(e) if matches!(e.kv_error(), Some(KvError::BucketExists(_))) => {
                self.update_stream(&config.stream_config()?).await?;
                self.key_value(&config.bucket).await
            }
            other => other,
        }
    }

    /// Binds to the existing bucket `bucket` ([`KvError::BucketNotFound`] if there is
    /// none).
    pub async fn key_value(&self, bucket: &str) -> Result<Store> {
        check_bucket(bucket)?;
        let info = match self.stream(stream_name(bucket)).info().await {
            Err(e) if e.err_code() == Some(ErrorCode::STREAM_NOT_FOUND) => {
                return Err(KvError::BucketNotFound(bucket.into()).into())
            }
            other => other?,
        };
        if info.config.max_msgs_per_subject < 1 {
            return Err(KvError::NotABucket(bucket.into()).into());
        }
        Ok(Store::new(self, bucket, &info))
    }

    /// Deletes the bucket, its keys and their history ([`KvError::BucketNotFound`] if
    /// there is none).
    pub async fn delete_key_value(&self, bucket: &str) -> Result<()> {
        check_bucket(bucket)?;
        match self.delete_stream(&stream_name(bucket)).await {
            Err(e) if e.err_code() == Some(ErrorCode::STREAM_NOT_FOUND) => {
                Err(KvError::BucketNotFound(bucket.into()).into())
            }
            other => other,
        }
    }
}

/// One bucket: its keys' values, their history, and watches. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    bucket: String,
    stream: Stream,
    /// `$KV.<bucket>.`: the subjects keys are stored under.
    prefix: String,
    /// Where writes go: `prefix`, behind the API prefix when it is not `$JS.API` (a
    /// domain or an imported JetStream), as nats.go does.
    put_prefix: String,
    /// Reads use direct get.
    direct: bool,
}

impl Store {
    fn new(ctx: &Context, bucket: &str, info: &StreamInfo) -> Store {
        let prefix = format!("$KV.{bucket}.");
        let put_prefix = if &*ctx.prefix == super::DEFAULT_PREFIX {
            prefix.clone()
        } else {
            format!("{}.{prefix}", ctx.prefix)
        };
        Store {
            bucket: bucket.to_string(),
            stream: ctx.stream(stream_name(bucket)),
            prefix,
            put_prefix,
            direct: info.config.allow_direct,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The stream behind it (`KV_<bucket>`).
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Whether reads use direct get (the stream allows it), rather than `STREAM.MSG.GET`.
    pub fn uses_direct_get(&self) -> bool {
        self.direct
    }

    fn ctx(&self) -> &Context {
        &self.stream.ctx
    }

    /// The subject a key is stored under.
    fn subject(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The bucket's size and settings now.
    pub async fn status(&self) -> Result<Status> {
        let info = self.stream.info().await?;
        Ok(Status {
            bucket: self.bucket.clone(),
            values: info.state.messages,
            bytes: info.state.bytes,
            history: info.config.max_msgs_per_subject,
            ttl: info.config.max_age,
            info,
        })
    }
}

/// A bucket's size and settings ([`Store::status`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// The bucket's name.
    pub bucket: String,
    /// Values stored, every revision and marker counted.
    pub values: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Revisions kept per key.
    pub history: i64,
    /// How long a value lives (zero: for ever).
    pub ttl: Duration,
    /// The stream behind it.
    pub info: StreamInfo,
}

/// Refuses bucket names that are not ASCII letters, digits, `_` and `-`.
fn check_bucket(name: &str) -> Result<(), KvError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(ok) {
        return Err(KvError::InvalidBucket(name.to_string()));
    }
    Ok(())
}

/// Refuses keys that are not tokens of ASCII letters, digits and `-/_=` joined by
/// single dots.
fn check_key(key: &str) -> Result<(), KvError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=');
    if key.split('.').all(|t| !t.is_empty() && t.chars().all(ok)) {
        return Ok(());
    }
    Err(KvError::InvalidKey(key.to_string()))
}

/// Like [`check_key`], but a token may also be `*`, and the last one `>`.
fn check_pattern(pattern: &str) -> Result<(), KvError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=');
    let tokens: Vec<&str> = pattern.split('.').collect();
    let last = tokens.len() - 1;
    let valid = tokens.iter().enumerate().all(|(i, t)| {
        *t == "*" || (*t == ">" && i == last) || (!t.is_empty() && t.chars().all(ok))
    });
    if valid {
        return Ok(());
    }
    Err(KvError::InvalidKey(pattern.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_and_keys_are_checked() {
        for good in ["a", "my-bucket_2"] {
            assert!(check_bucket(good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "a b", "a*", "ü", "a>"] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a.b", "users/42=x", "A-_", "1.2.3"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "", ".a", "a.", "a..b", "a b", "a*", ">", "a.>", "é", "a\r\n",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in [">", "*", "a.*", "a.>", "*.b.>", "a.b"] {
            assert!(check_pattern(good).is_ok(), "{good}");
        }
        for bad in ["", "a.>.b", ">.a", "a*", "a..b", ".a", "a b"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stream_is_made_as_other_clients_make_it() {
        let config = KvConfig {
            history: 5,
            ttl: Duration::from_secs(60),
            ..KvConfig::new("cfg")
        };
        let stream = config.stream_config().unwrap();
        assert_eq!(stream.name, "KV_cfg");
        assert_eq!(stream.subjects, ["$KV.cfg.>"]);
        assert_eq!(stream.max_msgs_per_subject, 5);
        assert_eq!(stream.discard, DiscardPolicy::New);
        assert!(stream.allow_rollup_hdrs && stream.deny_delete && stream.allow_direct);
        assert_eq!(stream.duplicate_window, Duration::from_secs(60));
        assert_eq!((stream.max_bytes, stream.max_msg_size), (-1, -1));
        assert_eq!(
            KvConfig::new("d")
                .stream_config()
                .unwrap()
                .max_msgs_per_subject,
            1
        );
        let too_deep = KvConfig {
            history: 65,
            ..KvConfig::new("x")
        };
        let err = too_deep.stream_config().unwrap_err();
        assert_eq!(err.kv_error(), Some(&KvError::InvalidHistory(65)));
        let err = KvConfig::new("a.b").stream_config().unwrap_err();
        assert!(matches!(err.kv_error(), Some(KvError::InvalidBucket(_))));
    }
}
