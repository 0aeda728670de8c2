//! Publishing to a stream with an acknowledgement: [`PubAck`], the de-duplication and
//! expected-last headers of [`PublishOptions`], and [`Context::publish_async`], which keeps
//! a bounded window of acks in flight ([`PubAckFuture`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use serde::Deserialize;
use smol::lock::SemaphoreGuardArc;

use super::Context;
use super::{ApiError, JetStreamError};
use crate::client::ReplyWait;
use crate::error::{Error, Result};
use crate::message::{Headers, Message};

/// The stream's acknowledgement of a publish: the message is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PubAck {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in that stream.
    pub seq: u64,
    /// True when the `Nats-Msg-Id` was seen within the duplicate window: nothing new was
    /// stored, and `seq` is the first copy's.
    pub duplicate: bool,
    /// The stream's JetStream domain, if it has one.
    pub domain: Option<String>,
}

/// A PubAck as the server writes it: an error instead, sometimes.
#[derive(Deserialize)]
struct WireAck {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(flatten)]
    ack: PubAck,
}

/// The headers and timeout of one publish.
///
/// ```
/// use panini::jetstream::PublishOptions;
/// // Stored once however often it is retried (within the stream's duplicate window),
/// // and only if the subject's last message is still revision 7.
/// let opts = PublishOptions::new()
///     .msg_id("order-42")
///     .expected_last_subject_sequence(7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    msg_id: Option<String>,
    expected_stream: Option<String>,
    expected_last_msg_id: Option<String>,
    expected_last_sequence: Option<u64>,
    expected_last_subject_sequence: Option<u64>,
    headers: Option<Headers>,
    timeout: Option<Duration>,
}

impl PublishOptions {
    /// No option: like [`Context::publish`].
    pub fn new() -> Self {
        Self::default()
    }

    /// `Nats-Msg-Id`: a second publish with the same id within the stream's duplicate
    /// window is not stored again (its ack says `duplicate`).
    pub fn msg_id(mut self, id: impl Into<String>) -> Self {
        self.msg_id = Some(id.into());
        self
    }

    /// `Nats-Expected-Stream`: refused unless this stream stores the subject.
    pub fn expected_stream(mut self, stream: impl Into<String>) -> Self {
        self.expected_stream = Some(stream.into());
        self
    }

    /// `Nats-Expected-Last-Msg-Id`: refused unless the stream's last message had this id.
    pub fn expected_last_msg_id(mut self, id: impl Into<String>) -> Self {
        self.expected_last_msg_id = Some(id.into());
        self
    }

    /// `Nats-Expected-Last-Sequence`: refused unless the stream's last sequence is this.
    pub fn expected_last_sequence(mut self, seq: u64) -> Self {
        self.expected_last_sequence = Some(seq);
        self
    }

    /// `Nats-Expected-Last-Subject-Sequence`: refused unless the last sequence on this
    /// subject is this (0: the subject has no message).
    pub fn expected_last_subject_sequence(mut self, seq: u64) -> Self {
        self.expected_last_subject_sequence = Some(seq);
        self
    }

    /// Headers of the message itself (the options above are added to them).
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// How long to wait for the ack (default: the context's timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout set, if any.
    pub(crate) fn timeout_set(&self) -> Option<Duration> {
        self.timeout
    }

    /// The headers to send, if any.
    pub(crate) fn to_headers(&self) -> Option<Headers> {
        let mut headers = self.headers.clone().unwrap_or_default();
        let text = [
            ("Nats-Msg-Id", self.msg_id.clone()),
            ("Nats-Expected-Stream", self.expected_stream.clone()),
            (
                "Nats-Expected-Last-Msg-Id",
                self.expected_last_msg_id.clone(),
            ),
        ];
        let numbers = [
            ("Nats-Expected-Last-Sequence", self.expected_last_sequence),
            (
                "Nats-Expected-Last-Subject-Sequence",
                self.expected_last_subject_sequence,
            ),
        ];
        for (name, value) in text {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        for (name, value) in numbers {
            if let Some(value) = value {
                headers.insert(name, value.to_string());
            }
        }
        (!headers.is_empty()).then_some(headers)
    }
}

impl Context {
    /// Publishes `payload` to `subject` and waits for the stream's ack. No stream on the
    /// subject fails at once with [`JetStreamError::NoStream`], not after the timeout.
    ///
    /// In a cluster the server answers the same while a replicated stream elects a new
    /// leader (a few seconds after the old one died), and a timeout or
    /// [`Error::ConnectionLost`] may hide a message that was stored: retry with the same
    /// [`PublishOptions::msg_id`], and the stream keeps one copy (its ack then says
    /// `duplicate`).
    pub async fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<PubAck> {
        self.publish_with(subject, payload, &PublishOptions::default())
            .await
    }

    /// [`publish`](Context::publish) with headers (`Nats-Msg-Id`, expected last sequence…)
    /// and a timeout. A refused expectation is the server's [`ApiError`], e.g.
    /// [`ErrorCode::WRONG_LAST_SEQUENCE`](super::ErrorCode::WRONG_LAST_SEQUENCE).
    pub async fn publish_with(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
        opts: &PublishOptions,
    ) -> Result<PubAck> {
        let wait = self
            .send_publish(subject, payload.as_ref(), opts, None)
            .await?;
        parse_ack(subject, wait.await)
    }

    /// Publishes without waiting for the ack: returns once the message is handed to the
    /// client, with a future that resolves to the ack. At most
    /// [`with_max_pending_acks`](Context::with_max_pending_acks) acks (default
    /// [`DEFAULT_MAX_PENDING_ACKS`](super::DEFAULT_MAX_PENDING_ACKS)) are in flight at a
    /// time, across the clones of this context: past that, this waits until an ack
    /// arrives (or times out), so a fast publisher cannot outrun the stream. The futures
    /// need not be awaited for their acks to count as arrived.
    ///
    /// Dropping a [`PubAckFuture`] forgets its ack (the message may still be stored). An
    /// ack lost with a connection fails its future with [`Error::Timeout`] or
    /// [`Error::ConnectionLost`]: republish with the same `Nats-Msg-Id` and the stream keeps
    /// one copy.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
    /// let mut acks = Vec::new();
    /// for i in 0..10_000 {
    ///     acks.push(js.publish_async("orders.new", format!("{i}")).await?);
    /// }
    /// for ack in acks {
    ///     ack.await?;
    /// }
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub async fn publish_async(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
    ) -> Result<PubAckFuture> {
        self.publish_async_with(subject, payload, &PublishOptions::default())
            .await
    }

    /// [`publish_async`](Context::publish_async) with options.
    pub async fn publish_async_with(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
        opts: &PublishOptions,
    ) -> Result<PubAckFuture> {
        let permit = self.window.acquire_arc().await;
        // The place in the window stays with the pending request in the client and is given
        // back when the ack arrives (or its wait times out), whether or not the future is
        // being awaited: a caller may publish a thousand messages before it awaits the
        // first ack.
        let wait = self
            .send_publish(subject, payload.as_ref(), opts, Some(permit))
            .await?;
        Ok(PubAckFuture {
            subject: subject.to_string(),
            wait: Some(wait),
        })
    }

    /// Acks of [`publish_async`](Context::publish_async) in flight now.
    pub fn pending_acks(&self) -> usize {
        self.window_size - self.window.available_permits()
    }

    /// Waits until no ack of [`publish_async`](Context::publish_async) is in flight (each
    /// future resolved or dropped). Publishes started meanwhile wait too.
    pub async fn wait_for_acks(&self) {
        let mut all = Vec::with_capacity(self.window_size);
        for _ in 0..self.window_size {
            all.push(self.window.acquire_arc().await);
        }
    }

    async fn send_publish(
        &self,
        subject: &str,
        payload: &[u8],
        opts: &PublishOptions,
        hold: Option<SemaphoreGuardArc>,
    ) -> Result<ReplyWait> {
        let headers = opts.to_headers();
        let timeout = opts.timeout.unwrap_or(self.timeout);
        self.client
            .send_request_holding(subject, headers.as_ref(), payload, timeout, hold)
            .await
    }
}

/// The ack in a reply: no responders means no stream.
pub(crate) fn parse_ack(subject: &str, reply: Result<Message>) -> Result<PubAck> {
    let msg = match reply {
        Err(Error::NoResponders) => {
            let subject = subject.to_string();
            return Err(JetStreamError::NoStream { subject }.into());
        }
        other => other?,
    };
    let wire: WireAck = serde_json::from_slice(&msg.payload)?;
    match wire.error {
        Some(e) => Err(e.into()),
        None => Ok(wire.ack),
    }
}

/// The ack of a [`Context::publish_async`]: await it. Its message holds one place in the
/// context's window of pending acks until the ack arrives or times out, awaited or not;
/// dropping the future forgets the ack (the place is still held until then).
#[must_use = "dropping it forgets the ack"]
pub struct PubAckFuture {
    subject: String,
    /// `None` once it has resolved.
    wait: Option<ReplyWait>,
}

impl std::fmt::Debug for PubAckFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubAckFuture")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Future for PubAckFuture {
    type Output = Result<PubAck>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<PubAck>> {
        let Some(wait) = self.wait.as_mut() else {
            return Poll::Ready(Err(Error::Closed));
        };
        let reply = std::task::ready!(Pin::new(wait).poll(cx));
        self.wait = None;
        Poll::Ready(parse_ack(&self.subject, reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::ErrorCode;

    fn reply(json: &str) -> Result<Message> {
        Ok(Message {
            subject: "_INBOX.x.1".into(),
            reply: None,
            headers: None,
            status: None,
            description: None,
            payload: json.as_bytes().to_vec(),
        })
    }

    #[test]
    fn acks_as_the_server_writes_them() {
        let ack = parse_ack("o", reply(r#"{"stream":"ORDERS", "seq":1}"#)).unwrap();
        assert_eq!(
            (ack.stream.as_str(), ack.seq, ack.duplicate),
            ("ORDERS", 1, false)
        );
        let dup = parse_ack(
            "o",
            reply(r#"{"stream":"ORDERS", "seq":2,"duplicate": true}"#),
        );
        assert!(dup.unwrap().duplicate);
        let hub = parse_ack("o", reply(r#"{"stream":"D", "domain":"hub", "seq":1}"#)).unwrap();
        assert_eq!(hub.domain.as_deref(), Some("hub"));
        let refused = r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 2"},"stream":"ORDERS","seq":0}"#;
        let err = parse_ack("o", reply(refused)).unwrap_err();
        assert_eq!(err.err_code(), Some(ErrorCode::WRONG_LAST_SEQUENCE));
    }

    #[test]
    fn no_responders_means_no_stream() {
        let err = parse_ack("orders.x", Err(Error::NoResponders)).unwrap_err();
        assert!(matches!(
            err,
            Error::JetStream(JetStreamError::NoStream { ref subject }) if subject == "orders.x"
        ));
    }

    #[test]
    fn options_become_headers() {
        assert_eq!(PublishOptions::new().to_headers(), None);
        let mut own = Headers::new();
        own.insert("Trace", "t");
        let h = PublishOptions::new()
            .headers(own)
            .msg_id("m")
            .expected_stream("S")
            .expected_last_msg_id("l")
            .expected_last_sequence(3)
            .expected_last_subject_sequence(0)
            .to_headers()
            .unwrap();
        let fields: Vec<_> = h.iter().collect();
        assert_eq!(
            fields,
            [
                ("Trace", "t"),
                ("Nats-Msg-Id", "m"),
                ("Nats-Expected-Stream", "S"),
                ("Nats-Expected-Last-Msg-Id", "l"),
                ("Nats-Expected-Last-Sequence", "3"),
                ("Nats-Expected-Last-Subject-Sequence", "0"),
            ]
        );
    }
}
