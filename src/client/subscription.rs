//! [`Subscription`]: a stream of messages for one SUB, unsubscribed on drop; and its
//! [`Lane`]s, more readers of the same queue (each message goes to one of them).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smol::channel::Receiver;
use smol::stream::Stream;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::shared::{ClientState, Queued};
use crate::message::Message;

/// The messages of one subscription, as a `Stream`. Dropping it unsubscribes.
///
/// ```no_run
/// # smol::block_on(async {
/// use smol::stream::StreamExt;
/// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
/// let mut sub = client.subscribe("greet.*").await?;
/// while let Some(msg) = sub.next().await {
///     println!("{} {:?}", msg.subject, msg.text());
/// }
/// # Ok::<(), panini::Error>(()) });
/// ```
#[derive(Debug)]
pub struct Subscription {
    pub(crate) sid: u64,
    pub(crate) rx: Pin<Box<Receiver<Queued>>>,
    /// Bytes queued, counted against `subscription_capacity_bytes` (see `task::deliver`).
    pub(crate) bytes: Arc<AtomicUsize>,
    pub(crate) shared: Arc<ClientState>,
}

impl Subscription {
    /// The subscription id sent in SUB.
    pub fn sid(&self) -> u64 {
        self.sid
    }

    /// Unsubscribes now. Messages already queued can still be read from this stream.
    pub fn unsubscribe(&mut self) {
        self.shared.unsubscribe(self.sid, None);
        self.rx.close();
    }

    /// Unsubscribes once `max` messages in total have been delivered (the server stops
    /// sending at the same count); the stream then ends.
    pub fn unsubscribe_after(&mut self, max: u64) {
        self.shared.unsubscribe(self.sid, Some(max));
    }

    /// Messages waiting in this subscription's queue.
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Another reader of this subscription's queue, for the crate's endpoints that run
    /// one loop per thread: each message goes to one reader, the subscription or one of
    /// its lanes. A lane ends when the subscription does (after the queue is read); it
    /// does not unsubscribe when dropped.
    pub(crate) fn lane(&self) -> Lane {
        Lane {
            rx: Box::pin((*self.rx).clone()),
            bytes: self.bytes.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Bytes waiting in this subscription's queue: the subjects, reply subjects, headers
    /// and payloads of its messages, as bounded by
    /// [`ConnectOptions::subscription_capacity_bytes`](super::ConnectOptions::subscription_capacity_bytes).
    pub fn pending_bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        poll_queue(this.rx.as_mut(), &this.bytes, &this.shared, cx)
    }
}

/// A message from a subscription's queue, its bytes uncounted; a drain in progress hears
/// of every step.
fn poll_queue(
    rx: Pin<&mut Receiver<Queued>>,
    bytes: &AtomicUsize,
    shared: &ClientState,
    cx: &mut Context<'_>,
) -> Poll<Option<Message>> {
    let polled = rx.poll_next(cx).map(|item| {
        item.map(|(msg, size)| {
            bytes.fetch_sub(size, Relaxed);
            msg
        })
    });
    if polled.is_ready() && shared.draining.load(Relaxed) {
        shared.drain_progress.notify(usize::MAX);
    }
    polled
}

/// [`poll_queue`] for an endpoint loop: the message's bytes are added to `taken` rather
/// than given back to the queue's bound one by one; the loop gives them back together
/// ([`Subscription::release`]), before it yields, so that at one thread the connection
/// never sees them (one atomic operation per burst, not per message).
fn poll_queue_taking(
    rx: Pin<&mut Receiver<Queued>>,
    taken: &mut usize,
    shared: &ClientState,
    cx: &mut Context<'_>,
) -> Poll<Option<Message>> {
    let polled = rx.poll_next(cx).map(|item| {
        item.map(|(msg, size)| {
            *taken += size;
            msg
        })
    });
    if polled.is_ready() && shared.draining.load(Relaxed) {
        shared.drain_progress.notify(usize::MAX);
    }
    polled
}

impl Subscription {
    /// The next message, its bytes added to `taken` and still counted against the
    /// queue's byte bound until [`release`](Self::release)d (crate-internal: the
    /// endpoint loops).
    pub(crate) fn poll_taking(
        &mut self,
        cx: &mut Context<'_>,
        taken: &mut usize,
    ) -> Poll<Option<Message>> {
        poll_queue_taking(self.rx.as_mut(), taken, &self.shared, cx)
    }

    /// Gives `bytes` taken by [`poll_taking`](Self::poll_taking) back to the queue's bound.
    pub(crate) fn release(&self, bytes: usize) {
        release(&self.bytes, bytes);
    }
}

/// Uncounts `taken` bytes from a queue's byte bound.
fn release(bytes: &AtomicUsize, taken: usize) {
    if taken > 0 {
        bytes.fetch_sub(taken, Relaxed);
    }
}

/// One more reader of a [`Subscription`]'s queue (see [`Subscription::lane`]).
#[derive(Debug)]
pub(crate) struct Lane {
    rx: Pin<Box<Receiver<Queued>>>,
    bytes: Arc<AtomicUsize>,
    shared: Arc<ClientState>,
}

impl Lane {
    /// Messages waiting in the queue (all readers').
    pub(crate) fn pending(&self) -> usize {
        self.rx.len()
    }

    /// [`Subscription::poll_taking`] for this reader.
    pub(crate) fn poll_taking(
        &mut self,
        cx: &mut Context<'_>,
        taken: &mut usize,
    ) -> Poll<Option<Message>> {
        poll_queue_taking(self.rx.as_mut(), taken, &self.shared, cx)
    }

    /// [`Subscription::release`] for this reader.
    pub(crate) fn release(&self, bytes: usize) {
        release(&self.bytes, bytes);
    }
}

impl Stream for Lane {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        poll_queue(this.rx.as_mut(), &this.bytes, &this.shared, cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(self.sid, None);
        if self.shared.draining.load(Relaxed) {
            self.shared.drain_progress.notify(usize::MAX);
        }
    }
}
