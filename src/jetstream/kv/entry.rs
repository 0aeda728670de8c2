//! [`Entry`]: one revision of a key, and its [`Operation`], read from each form a stored
//! message comes back in: a direct get reply (raw, with `Nats-*` headers), a
//! `STREAM.MSG.GET` reply ([`StoredMessage`]), or a consumer's delivery.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::jetstream::{Message, StoredMessage};
use crate::message::Headers;
use crate::rfc3339;

/// What a revision did to its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A value was written.
    #[default]
    Put,
    /// The key was deleted (a `KV-Operation: DEL` marker; older revisions stay).
    Delete,
    /// The key was purged (a `KV-Operation: PURGE` marker; older revisions are gone).
    Purge,
}

impl Operation {
    /// Reads `KV-Operation` (and, from servers 2.11, `Nats-Marker-Reason`).
    pub(crate) fn from_headers(headers: Option<&Headers>) -> Operation {
        match header(headers, "KV-Operation") {
            Some(op) if op.eq_ignore_ascii_case("DEL") => return Operation::Delete,
            Some(op) if op.eq_ignore_ascii_case("PURGE") => return Operation::Purge,
            _ => {}
        }
        match header(headers, "Nats-Marker-Reason") {
            Some("MaxAge" | "Purge") => Operation::Purge,
            Some("Remove") => Operation::Delete,
            _ => Operation::Put,
        }
    }
}

/// A header by name, whatever the case another client wrote it in.
pub(crate) fn header<'a>(headers: Option<&'a Headers>, name: &str) -> Option<&'a str> {
    headers?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// One revision of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The value (empty for a delete or purge marker, and for a watch with headers only).
    pub value: Vec<u8>,
    /// Its revision: the stream sequence it was stored at.
    pub revision: u64,
    /// When it was written.
    pub created: SystemTime,
    /// In a watch or a history, how many newer revisions (of what is watched) followed
    /// when it was delivered; 0 for a read.
    pub delta: u64,
    /// What it did to the key.
    pub operation: Operation,
}

impl Entry {
    /// The value as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// True for a delete or purge marker.
    pub fn is_removal(&self) -> bool {
        self.operation != Operation::Put
    }

    /// From a direct get's reply: the raw value, with `Nats-Subject`, `Nats-Sequence` and
    /// `Nats-Time-Stamp` headers.
    pub(crate) fn from_direct(bucket: &str, prefix: &str, msg: crate::Message) -> Result<Entry> {
        let headers = msg.headers.as_ref();
        let bad = |what: &str| Error::Decode(format!("a direct get reply without {what}"));
        let subject = header(headers, "Nats-Subject").ok_or_else(|| bad("Nats-Subject"))?;
        let revision = header(headers, "Nats-Sequence")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a Nats-Sequence number"))?;
        let created = header(headers, "Nats-Time-Stamp")
            .and_then(rfc3339::parse)
            .unwrap_or(UNIX_EPOCH);
        Ok(Entry {
            bucket: bucket.to_string(),
            key: key_of(prefix, subject).to_string(),
            operation: Operation::from_headers(headers),
            revision,
            created,
            delta: 0,
            value: msg.payload,
        })
    }

    /// From a `STREAM.MSG.GET` reply.
    pub(crate) fn from_stored(bucket: &str, prefix: &str, msg: StoredMessage) -> Entry {
        Entry {
            bucket: bucket.to_string(),
            key: key_of(prefix, &msg.subject).to_string(),
            operation: Operation::from_headers(msg.headers.as_ref()),
            revision: msg.sequence,
            created: rfc3339::parse(&msg.time).unwrap_or(UNIX_EPOCH),
            delta: 0,
            value: msg.payload,
        }
    }

    /// From a consumer's delivery (a watch, the keys, a history): revision, time and
    /// delta come from the ack subject.
    pub(crate) fn from_delivered(bucket: &str, prefix: &str, msg: Message) -> Result<Entry> {
        let info = msg.info()?;
        let (revision, created, delta) = (info.stream_sequence, info.published, info.pending);
        let msg = msg.into_inner();
        Ok(Entry {
            bucket: bucket.to_string(),
            key: key_of(prefix, &msg.subject).to_string(),
            operation: Operation::from_headers(msg.headers.as_ref()),
            revision,
            created,
            delta,
            value: msg.payload,
        })
    }
}

/// The key in a subject under `prefix` (`$KV.<bucket>.`).
fn key_of<'a>(prefix: &str, subject: &'a str) -> &'a str {
    subject.strip_prefix(prefix).unwrap_or(subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in fields {
            h.insert(*n, *v);
        }
        h
    }

    #[test]
    fn the_operation_comes_from_the_headers() {
        let op = |fields: &[(&str, &str)]| Operation::from_headers(Some(&headers(fields)));
        assert_eq!(Operation::from_headers(None), Operation::Put);
        assert_eq!(op(&[("KV-Operation", "DEL")]), Operation::Delete);
        assert_eq!(op(&[("Kv-Operation", "PURGE")]), Operation::Purge);
        assert_eq!(op(&[("Nats-Marker-Reason", "MaxAge")]), Operation::Purge);
        assert_eq!(op(&[("Nats-Marker-Reason", "Remove")]), Operation::Delete);
        assert_eq!(op(&[("Other", "x")]), Operation::Put);
    }

    #[test]
    fn a_direct_get_reply_is_an_entry() {
        let msg = crate::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            headers: Some(headers(&[
                ("Nats-Stream", "KV_b"),
                ("Nats-Subject", "$KV.b.a.b"),
                ("Nats-Sequence", "12"),
                ("Nats-Time-Stamp", "1970-01-01T00:00:10.5Z"),
            ])),
            status: None,
            description: None,
            payload: b"v".to_vec(),
        };
        let entry = Entry::from_direct("b", "$KV.b.", msg.clone()).unwrap();
        assert_eq!((entry.key.as_str(), entry.revision), ("a.b", 12));
        assert_eq!(entry.created, UNIX_EPOCH + Duration::from_millis(10_500));
        assert_eq!((entry.text(), entry.operation), (Some("v"), Operation::Put));
        let mut broken = msg;
        broken.headers = Some(headers(&[("Nats-Subject", "$KV.b.a")]));
        assert!(Entry::from_direct("b", "$KV.b.", broken).is_err());
    }
}
