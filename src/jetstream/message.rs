//! A message delivered by a consumer: its metadata, read from the ack subject the server
//! gave it as reply, and its acknowledgements (`ack`, `double_ack`, `nak`, `in_progress`,
//! `term`), published to that subject unchanged.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::JetStreamError;
use crate::client::Client;
use crate::error::Result;

/// A message from a JetStream consumer. It reads as a core
/// [`Message`](crate::Message) (`msg.subject`, `msg.payload`, `msg.headers`).
///
/// Once a message is acknowledged for good (`ack`, `double_ack`, `nak`, `term`), later
/// acknowledgements of it are not sent (and return `Ok`); `in_progress` can be repeated
/// until then.
#[derive(Debug)]
pub struct Message {
    message: crate::Message,
    client: Client,
    timeout: Duration,
    done: AtomicBool,
}

/// Where a delivered message stands, from its ack subject
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>`,
/// or the longer form with a domain and an account hash).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageInfo<'a> {
    /// The JetStream domain, when the subject names one.
    pub domain: Option<&'a str>,
    /// The account's hash, when the subject has one.
    pub account_hash: Option<&'a str>,
    /// The stream.
    pub stream: &'a str,
    /// The consumer.
    pub consumer: &'a str,
    /// How many times it has been delivered (1 the first time).
    pub delivered: u64,
    /// Its sequence in the stream (the same at every delivery).
    pub stream_sequence: u64,
    /// The consumer's sequence (counts every delivery, redeliveries too).
    pub consumer_sequence: u64,
    /// When it was stored.
    pub published: SystemTime,
    /// Messages of the consumer still to deliver after this one.
    pub pending: u64,
}

impl<'a> MessageInfo<'a> {
    /// Reads an ack subject; `None` if it is not one.
    pub fn parse(subject: &'a str) -> Option<MessageInfo<'a>> {
        let rest = subject.strip_prefix("$JS.ACK.")?;
        let tokens: Vec<&str> = rest.split('.').collect();
        // v1: 7 tokens after `$JS.ACK`; v2: 9 or more (domain and account hash first,
        // anything after the pending count ignored).
        let (domain, account_hash, t) = match tokens.len() {
            7 => (None, None, &tokens[..]),
            n if n >= 9 => {
                let domain = Some(tokens[0]).filter(|d| *d != "_" && !d.is_empty());
                (domain, Some(tokens[1]), &tokens[2..9])
            }
            _ => return None,
        };
        let num = |i: usize| t[i].parse::<u64>().ok();
        Some(MessageInfo {
            domain,
            account_hash,
            stream: t[0],
            consumer: t[1],
            delivered: num(2)?,
            stream_sequence: num(3)?,
            consumer_sequence: num(4)?,
            published: UNIX_EPOCH + Duration::from_nanos(num(5)?),
            pending: num(6)?,
        })
    }
}

impl Message {
    pub(crate) fn new(message: crate::Message, client: Client, timeout: Duration) -> Message {
        Message {
            message,
            client,
            timeout,
            done: AtomicBool::new(false),
        }
    }

    /// The core message inside.
    pub fn into_inner(self) -> crate::Message {
        self.message
    }

    /// Takes subject, headers and payload out (for a handler, without a copy), keeping
    /// the ack subject the acknowledgements need; the core message returned has no reply.
    pub(crate) fn take_content(&mut self) -> crate::Message {
        let m = &mut self.message;
        crate::Message {
            subject: std::mem::take(&mut m.subject),
            reply: None,
            headers: m.headers.take(),
            status: None,
            description: None,
            payload: std::mem::take(&mut m.payload),
        }
    }

    /// Its metadata, from the ack subject; an error if it did not come from a JetStream
    /// consumer.
    pub fn info(&self) -> Result<MessageInfo<'_>> {
        let reply = self.message.reply.as_deref().unwrap_or_default();
        Ok(MessageInfo::parse(reply).ok_or(JetStreamError::NotJetStreamMessage)?)
    }

    /// Acknowledges it: done, not to be redelivered.
    pub async fn ack(&self) -> Result<()> {
        self.send(b"+ACK", true).await
    }

    /// Acknowledges it and waits until the server confirms it has recorded the ack (an
    /// error if no confirmation comes within the context's timeout: the message may then
    /// be redelivered).
    pub async fn double_ack(&self) -> Result<()> {
        if self.done.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let reply = self.ack_subject()?;
        let confirmed = self
            .client
            .request_with(reply, None, b"+ACK", self.timeout)
            .await;
        if confirmed.is_err() {
            // Not recorded as far as we know: a later ack may still be sent.
            self.done.store(false, Ordering::Release);
        }
        confirmed.map(drop)
    }

    /// Negative acknowledgement: redeliver it now.
    pub async fn nak(&self) -> Result<()> {
        self.send(b"-NAK", true).await
    }

    /// Negative acknowledgement: redeliver it after `delay`.
    pub async fn nak_with_delay(&self, delay: Duration) -> Result<()> {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let body = format!("-NAK {{\"delay\":{nanos}}}");
        self.send(body.as_bytes(), true).await
    }

    /// Still working on it: restarts its ack wait, so it is not redelivered yet. Can be
    /// sent again and again.
    pub async fn in_progress(&self) -> Result<()> {
        self.send(b"+WPI", false).await
    }

    /// Terminates it: never redelivered, whether or not it was handled.
    pub async fn term(&self) -> Result<()> {
        self.send(b"+TERM", true).await
    }

    fn ack_subject(&self) -> Result<&str> {
        match self.message.reply.as_deref() {
            Some(reply) if reply.starts_with("$JS.ACK.") => Ok(reply),
            _ => Err(JetStreamError::NotJetStreamMessage.into()),
        }
    }

    async fn send(&self, body: &[u8], terminal: bool) -> Result<()> {
        let reply = self.ack_subject()?;
        if self.done.load(Ordering::Acquire) {
            return Ok(());
        }
        if terminal && self.done.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let sent = self.client.publish(reply, body).await;
        if sent.is_err() && terminal {
            self.done.store(false, Ordering::Release);
        }
        sent
    }
}

impl Deref for Message {
    type Target = crate::Message;

    fn deref(&self) -> &crate::Message {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_ack_subject_gives_the_metadata() {
        let info = MessageInfo::parse("$JS.ACK.WORK.pull1.2.1.6.1796192431713116521.0").unwrap();
        assert_eq!((info.stream, info.consumer), ("WORK", "pull1"));
        assert_eq!((info.delivered, info.stream_sequence), (2, 1));
        assert_eq!((info.consumer_sequence, info.pending), (6, 0));
        assert_eq!(
            info.published,
            UNIX_EPOCH + Duration::from_nanos(1_796_192_431_713_116_521)
        );
        assert_eq!((info.domain, info.account_hash), (None, None));
    }

    #[test]
    fn a_v2_ack_subject_has_a_domain_and_an_account_hash() {
        let info = MessageInfo::parse("$JS.ACK.hub.ACCHASH.S.C.1.10.11.1000.4.r4nd0m").unwrap();
        assert_eq!(
            (info.domain, info.account_hash),
            (Some("hub"), Some("ACCHASH"))
        );
        assert_eq!((info.stream, info.consumer, info.pending), ("S", "C", 4));
        let no_domain = MessageInfo::parse("$JS.ACK._.ACCHASH.S.C.1.10.11.1000.4").unwrap();
        assert_eq!(no_domain.domain, None);
    }

    #[test]
    fn other_subjects_are_not_ack_subjects() {
        for subject in [
            "",
            "$JS.ACK",
            "$JS.ACK.S.C.1.2.3.4",
            "$JS.ACK.S.C.1.2.3.4.5.6",
            "$JS.ACK.S.C.x.2.3.4.5",
            "$JS.FC.S.C.abcd",
            "_INBOX.abc.1",
            "$JS.ACK.S.C.1.2.3.4.-5",
        ] {
            assert_eq!(MessageInfo::parse(subject), None, "{subject:?}");
        }
    }
}
