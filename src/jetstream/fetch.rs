//! [`Consumer::fetch`]: one pull request, its messages collected until the batch is full,
//! the server ends the request (`404`, `408`), or the client's own bound passes.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::{Duration, Instant};

use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::Timer;

use super::message::Message;
use super::pull::{classify, is_gone, Incoming, PullRequest};
use super::{Consumer, JetStreamError};
use crate::error::{Error, Result};

/// How long a fetch waits for its batch unless told ([`Fetch::expires`]).
pub const DEFAULT_FETCH_EXPIRES: Duration = Duration::from_secs(5);

/// What the client waits beyond `expires` for the server's `408` before it gives up on
/// the request (a late `408` on a slow link must not lose the messages before it).
const CLIENT_PAD: Duration = Duration::from_secs(1);

/// From this `expires` on, the fetch asks for idle heartbeats, to notice a dead server
/// before the request would have ended.
const HEARTBEAT_FROM: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(5);

/// One pull being set up ([`Consumer::fetch`]); await it to run it. It yields the
/// messages delivered: at most `batch`, possibly none.
#[derive(Debug)]
#[must_use = "a fetch does nothing until awaited"]
pub struct Fetch<'a> {
    consumer: &'a Consumer,
    request: PullRequest,
    expires: Option<Duration>,
}

impl Consumer {
    /// Pulls up to `batch` messages: waits until that many came, or `expires` (default
    /// [`DEFAULT_FETCH_EXPIRES`]) passed, whichever is first; with
    /// [`no_wait`](Fetch::no_wait), takes only what is there now.
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
    /// use std::time::Duration;
    /// let consumer = js.consumer("ORDERS", "billing");
    /// let batch = consumer.fetch(50).expires(Duration::from_secs(2)).await?;
    /// let ready = consumer.fetch(50).no_wait().await?;
    /// let sized = consumer.fetch(1000).max_bytes(64 * 1024).await?;
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    ///
    /// A consumer (or stream) that does not exist is its [`ErrorCode`](super::ErrorCode)
    /// error; a pull the consumer refuses (over its `max_batch`…) is
    /// [`JetStreamError::PullRefused`]; a deleted consumer is
    /// [`JetStreamError::ConsumerDeleted`].
    pub fn fetch(&self, batch: usize) -> Fetch<'_> {
        Fetch {
            consumer: self,
            request: PullRequest {
                batch: batch.max(1),
                ..PullRequest::default()
            },
            expires: None,
        }
    }
}

impl Fetch<'_> {
    /// How long the server keeps the request open waiting for messages.
    pub fn expires(mut self, expires: Duration) -> Self {
        self.expires = Some(expires);
        self
    }

    /// Takes only the messages pending now: an empty result at once if there is none.
    /// With [`expires`](Fetch::expires) too, waits up to that long for the first ones.
    pub fn no_wait(mut self) -> Self {
        self.request.no_wait = true;
        self
    }

    /// Stops before the message that would take the batch over `bytes` (subjects,
    /// headers and payloads counted).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.request.max_bytes = bytes;
        self
    }

    /// Fills in `expires` and the heartbeat; returns how long the client waits in all.
    fn settle(&mut self, api_timeout: Duration) -> Duration {
        let expires = match (self.expires, self.request.no_wait) {
            (Some(expires), _) => expires,
            (None, true) => Duration::ZERO,
            (None, false) => DEFAULT_FETCH_EXPIRES,
        };
        self.request.expires = expires;
        if expires >= HEARTBEAT_FROM {
            self.request.idle_heartbeat = HEARTBEAT;
        }
        if expires.is_zero() {
            api_timeout
        } else {
            expires + CLIENT_PAD
        }
    }

    async fn run(mut self) -> Result<Vec<Message>> {
        let consumer = self.consumer;
        let ctx = consumer.context();
        let subject = consumer.next_subject()?;
        let deadline = Instant::now() + self.settle(ctx.timeout);
        let inbox = ctx.client.new_inbox();
        let mut sub = ctx.client.subscribe(&inbox).await?;
        consumer.pull(&subject, &inbox, &self.request).await?;
        let (batch, heartbeat) = (self.request.batch, self.request.idle_heartbeat);
        let mut got = Vec::with_capacity(batch.min(256));
        let mut last_seen = Instant::now();
        while got.len() < batch {
            let mut until = deadline;
            if !heartbeat.is_zero() {
                until = until.min(last_seen + 2 * heartbeat);
            }
            let next = async { Some(sub.next().await) };
            let timer = async {
                Timer::at(until).await;
                None
            };
            let msg = match next.or(timer).await {
                Some(Some(msg)) => msg,
                Some(None) => return Err(Error::Closed),
                None if got.is_empty() => return Err(no_answer(consumer).await),
                None => break,
            };
            last_seen = Instant::now();
            match classify(msg) {
                Incoming::Message(msg) => {
                    got.push(Message::new(msg, ctx.client.clone(), ctx.timeout));
                }
                Incoming::Heartbeat => {}
                Incoming::Warning {
                    status,
                    description,
                } if got.is_empty() => {
                    let refused = JetStreamError::PullRefused {
                        status,
                        description,
                    };
                    return Err(refused.into());
                }
                Incoming::Ended { .. } | Incoming::Warning { .. } => break,
                Incoming::Refused(e) => return Err(e.into()),
            }
        }
        Ok(got)
    }
}

/// The error for a pull the server never answered: the consumer's own error if it is gone
/// (the server drops pulls to a missing consumer silently), else a timeout.
async fn no_answer(consumer: &Consumer) -> Error {
    match consumer.info().await {
        Err(e) if is_gone(&e) => e,
        _ => Error::Timeout,
    }
}

impl<'a> IntoFuture for Fetch<'a> {
    type Output = Result<Vec<Message>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Vec<Message>>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
