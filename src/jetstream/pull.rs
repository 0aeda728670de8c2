//! Pull requests (`CONSUMER.MSG.NEXT`) and what answers them on the request's inbox:
//! stream messages, and status messages sorted by what they mean for the pull (a
//! heartbeat, the end of a request, a warning, or a refusal that ends the consume). No
//! status message ever reaches the caller as a message.

use std::time::Duration;

use serde::Serialize;

use super::api::{is_zero, nanos};
use super::Consumer;
use super::JetStreamError;
use crate::error::Result;

/// The body of a pull request.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct PullRequest {
    /// Messages asked for (at least 1: the server delivers 1 for 0).
    pub(crate) batch: usize,
    /// When the server ends the request with a `408` (unset: never).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub(crate) expires: Duration,
    /// End at once (`404`) if nothing is pending.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) no_wait: bool,
    /// Byte budget of the request.
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) max_bytes: usize,
    /// A `100 Idle Heartbeat` this often while the request is open and idle (the server
    /// wants `expires` at least twice this).
    #[serde(with = "nanos", skip_serializing_if = "is_zero")]
    pub(crate) idle_heartbeat: Duration,
}

/// What arrived on a pull inbox.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A stream message, for the caller.
    Message(crate::Message),
    /// `100 Idle Heartbeat`: the server and the request are alive.
    Heartbeat,
    /// A request is over (`404 No Messages`, `408 Request Timeout`, `409 Message Size
    /// Exceeds MaxBytes`), with the messages it had not delivered.
    Ended {
        /// `Nats-Pending-Messages`: what it still owed (0 if not said).
        unfilled: usize,
    },
    /// A request was dropped for a reason worth telling (`409 Exceeded MaxWaiting`,
    /// `409 Leadership Change`, `503` no responders while JetStream starts…); pulling
    /// again later may work.
    Warning {
        /// The status code.
        status: u16,
        /// Its description.
        description: String,
    },
    /// Pulling this way cannot work: the consumer is gone, or the request breaks its
    /// limits.
    Refused(JetStreamError),
}

/// Sorts one message of a pull inbox. A status message is one with a status code and no
/// ack subject (a stream message always has one).
pub(crate) fn classify(msg: crate::Message) -> Incoming {
    let is_data = msg
        .reply
        .as_deref()
        .is_some_and(|r| r.starts_with("$JS.ACK."));
    let Some(status) = msg.status.filter(|_| !is_data) else {
        return Incoming::Message(msg);
    };
    let description = msg.description.clone().unwrap_or_default();
    let said = |text: &str| description.eq_ignore_ascii_case(text);
    let starts = |text: &str| {
        description
            .get(..text.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(text))
    };
    let refused = || {
        Incoming::Refused(JetStreamError::PullRefused {
            status,
            description: description.clone(),
        })
    };
    match status {
        100 => Incoming::Heartbeat,
        404 | 408 => Incoming::Ended {
            unfilled: pending_messages(&msg),
        },
        409 if said("Message Size Exceeds MaxBytes") => Incoming::Ended {
            unfilled: pending_messages(&msg),
        },
        409 if said("Consumer Deleted") => Incoming::Refused(JetStreamError::ConsumerDeleted),
        409 if said("Consumer is push based") || starts("Exceeded MaxRequest") => refused(),
        400 => refused(),
        _ => Incoming::Warning {
            status,
            description,
        },
    }
}

/// `Nats-Pending-Messages` of a status, 0 when absent.
fn pending_messages(msg: &crate::Message) -> usize {
    msg.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pending-Messages"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Consumer {
    /// The subject pull requests go to.
    pub(crate) fn next_subject(&self) -> Result<String> {
        let verb = self.verb("CONSUMER.MSG.NEXT")?;
        Ok(format!("{}.{verb}", self.context().prefix))
    }

    /// Sends one pull request whose messages and statuses come to `inbox`.
    pub(crate) async fn pull(&self, subject: &str, inbox: &str, req: &PullRequest) -> Result<()> {
        let body = serde_json::to_vec(req)?;
        let client = &self.context().client;
        client.publish_with(subject, Some(inbox), None, body).await
    }
}

/// Whether an error says the consumer (or its stream) no longer exists.
pub(crate) fn is_gone(err: &crate::Error) -> bool {
    use super::ErrorCode;
    matches!(
        err.err_code(),
        Some(ErrorCode::CONSUMER_NOT_FOUND | ErrorCode::STREAM_NOT_FOUND)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Headers;

    fn status(code: u16, description: &str, pending: Option<&str>) -> crate::Message {
        let headers = pending.map(|n| {
            let mut h = Headers::new();
            h.insert("Nats-Pending-Messages", n);
            h
        });
        crate::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            headers,
            status: Some(code),
            description: Some(description.into()),
            payload: Vec::new(),
        }
    }

    #[test]
    fn status_messages_are_sorted_by_what_they_mean() {
        assert!(matches!(
            classify(status(100, "Idle Heartbeat", None)),
            Incoming::Heartbeat
        ));
        assert!(matches!(
            classify(status(404, "No Messages", None)),
            Incoming::Ended { unfilled: 0 }
        ));
        assert!(matches!(
            classify(status(408, "Request Timeout", Some("7"))),
            Incoming::Ended { unfilled: 7 }
        ));
        assert!(matches!(
            classify(status(409, "Message Size Exceeds MaxBytes", Some("2"))),
            Incoming::Ended { unfilled: 2 }
        ));
        assert!(matches!(
            classify(status(409, "Consumer Deleted", None)),
            Incoming::Refused(JetStreamError::ConsumerDeleted)
        ));
        for refused in [
            (409, "Consumer is push based"),
            (409, "Exceeded MaxRequestBatch of 5"),
            (409, "Exceeded MaxRequestExpires of 2s"),
            (400, "Bad Request - heartbeat value too large"),
        ] {
            let got = classify(status(refused.0, refused.1, None));
            assert!(
                matches!(got, Incoming::Refused(JetStreamError::PullRefused { status, .. }) if status == refused.0),
                "{refused:?}: {got:?}"
            );
        }
        for warning in ["Exceeded MaxWaiting", "Leadership Change"] {
            let got = classify(status(409, warning, None));
            assert!(
                matches!(got, Incoming::Warning { status: 409, .. }),
                "{got:?}"
            );
        }
    }

    #[test]
    fn a_stream_message_is_never_a_status() {
        let mut msg = status(408, "Request Timeout", None);
        msg.reply = Some("$JS.ACK.S.C.1.1.1.1.0".into());
        assert!(matches!(classify(msg), Incoming::Message(_)));
        let mut plain = status(100, "", None);
        plain.status = None;
        plain.payload = b"x".to_vec();
        assert!(matches!(classify(plain), Incoming::Message(_)));
    }
}
