//! What a stream holds, read and removed through its [`Stream`] handle: a message by
//! sequence or the last on a subject ([`StoredMessage`]), deleting one, and purges
//! ([`Purge`]).

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::api::{base64_decode, decode_reply, Success};
use super::stream::{confirmed, Stream};
use crate::error::{Error, Result};
use crate::message::Headers;

/// A message read back from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredMessage {
    /// The subject it was published to.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// The headers it was published with.
    pub headers: Option<Headers>,
    /// Its payload.
    pub payload: Vec<u8>,
    /// When it was stored (RFC 3339).
    pub time: String,
}

/// A stream's message as `STREAM.MSG.GET` writes it (body and headers in base64).
#[derive(Deserialize)]
struct WireStored {
    message: WireMessage,
}

#[derive(Deserialize)]
struct WireMessage {
    subject: String,
    seq: u64,
    #[serde(default)]
    hdrs: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    time: String,
}

impl WireMessage {
    fn decode(self) -> Result<StoredMessage> {
        let bad = || Error::Decode("a stored message's base64 body or headers".into());
        let payload = match self.data {
            Some(text) => base64_decode(&text).ok_or_else(bad)?,
            None => Vec::new(),
        };
        let headers = match self.hdrs {
            Some(text) => {
                let raw = base64_decode(&text).ok_or_else(bad)?;
                let block = panini_proto::HeaderBlock::parse(&raw)?;
                Some(Headers::from_block(&block))
            }
            None => None,
        };
        Ok(StoredMessage {
            subject: self.subject,
            sequence: self.seq,
            headers,
            payload,
            time: self.time,
        })
    }
}

impl Stream {
    /// Removes messages: all of them, or (with the builder's options) those of a subject,
    /// below a sequence, or all but the last few. Returns how many were removed.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
    /// let stream = js.stream("ORDERS");
    /// let all = stream.purge().await?;
    /// let old = stream.purge().filter("orders.eu.>").keep(10).await?;
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub fn purge(&self) -> Purge<'_> {
        Purge {
            stream: self,
            request: PurgeRequest::default(),
        }
    }

    /// The message stored at `sequence` ([`ErrorCode::NO_MESSAGE_FOUND`](super::ErrorCode::NO_MESSAGE_FOUND) if none).
    pub async fn get_message(&self, sequence: u64) -> Result<StoredMessage> {
        self.get(serde_json::json!({ "seq": sequence })).await
    }

    /// The last message stored on `subject` ([`ErrorCode::NO_MESSAGE_FOUND`](super::ErrorCode::NO_MESSAGE_FOUND) if none).
    pub async fn get_last_message(&self, subject: &str) -> Result<StoredMessage> {
        self.get(serde_json::json!({ "last_by_subj": subject }))
            .await
    }

    async fn get(&self, body: serde_json::Value) -> Result<StoredMessage> {
        let reply = self
            .ctx
            .api_raw(&self.verb("STREAM.MSG.GET")?, Some(&body))
            .await?;
        decode_reply::<WireStored>(&reply)?.message.decode()
    }

    /// Deletes the message at `sequence` (its bytes are not overwritten: see
    /// [`erase_message`](Stream::erase_message)).
    pub async fn delete_message(&self, sequence: u64) -> Result<()> {
        self.remove(sequence, true).await
    }

    /// Deletes the message at `sequence` and overwrites its bytes on disk.
    pub async fn erase_message(&self, sequence: u64) -> Result<()> {
        self.remove(sequence, false).await
    }

    async fn remove(&self, sequence: u64, no_erase: bool) -> Result<()> {
        let body = serde_json::json!({ "seq": sequence, "no_erase": no_erase });
        let verb = self.verb("STREAM.MSG.DELETE")?;
        confirmed(self.ctx.api(&verb, Some(&body)).await?)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
struct PurgeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep: Option<u64>,
}

/// A purge being set up ([`Stream::purge`]); await it to run it. Yields how many
/// messages were removed.
#[derive(Debug)]
#[must_use = "a purge does nothing until awaited"]
pub struct Purge<'a> {
    stream: &'a Stream,
    request: PurgeRequest,
}

impl Purge<'_> {
    /// Only the messages on `subject` (wildcards allowed).
    pub fn filter(mut self, subject: impl Into<String>) -> Self {
        self.request.filter = Some(subject.into());
        self
    }

    /// Only the messages below `sequence`.
    pub fn below(mut self, sequence: u64) -> Self {
        self.request.seq = Some(sequence);
        self
    }

    /// All but the last `n` messages (of the filter, if any).
    pub fn keep(mut self, n: u64) -> Self {
        self.request.keep = Some(n);
        self
    }
}

impl<'a> IntoFuture for Purge<'a> {
    type Output = Result<u64>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<u64>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        #[derive(Deserialize)]
        struct Purged {
            #[serde(default)]
            success: bool,
            #[serde(default)]
            purged: u64,
        }
        Box::pin(async move {
            let verb = self.stream.verb("STREAM.PURGE")?;
            let reply: Purged = self.stream.ctx.api(&verb, Some(&self.request)).await?;
            confirmed(Success {
                success: reply.success,
            })?;
            Ok(reply.purged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_message_decodes_its_base64_body_and_headers() {
        // "NATS/1.0\r\nNats-Msg-Id: a\r\n\r\n" and "hello"
        let reply = br#"{"message":{"subject":"s.1","seq":3,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiBhDQoNCg==","data":"aGVsbG8=","time":"2026-01-01T00:00:00Z"}}"#;
        let msg = decode_reply::<WireStored>(reply)
            .unwrap()
            .message
            .decode()
            .unwrap();
        assert_eq!((msg.subject.as_str(), msg.sequence), ("s.1", 3));
        assert_eq!(msg.payload, b"hello");
        assert_eq!(msg.headers.unwrap().get("Nats-Msg-Id"), Some("a"));
    }
}
