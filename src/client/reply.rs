//! The wait for one request's reply: a one-shot slot that the connection task, the
//! sweeper or a disconnect fills, and [`ReplyWait`], the future that reads it. One
//! allocation and one short lock per request, lighter than a channel; a request in
//! flight by the thousand (JetStream's windowed publish) pays for nothing more.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::shared::lock;
use crate::error::{Error, Result};
use crate::message::Message;

/// What the two ends share.
#[derive(Debug, Default)]
struct Slot {
    value: Option<Result<Message>>,
    waker: Option<Waker>,
    /// The filling end is gone: no value will come if none is here.
    closed: bool,
}

/// A new slot: its filling end (kept with the pending request) and its wait.
pub(crate) fn slot() -> (ReplyTx, ReplyWait) {
    let slot = Arc::new(Mutex::new(Slot::default()));
    (ReplyTx(slot.clone()), ReplyWait(slot))
}

/// The filling end of a reply slot. Dropped unfilled, the wait ends with
/// [`Error::Closed`].
#[derive(Debug)]
pub(crate) struct ReplyTx(Arc<Mutex<Slot>>);

impl ReplyTx {
    /// Fills the slot (the first value counts) and wakes the wait.
    pub(crate) fn send(&self, value: Result<Message>) {
        let waker = {
            let mut slot = lock(&self.0);
            if slot.closed || slot.value.is_some() {
                return;
            }
            slot.value = Some(value);
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ReplyTx {
    fn drop(&mut self) {
        let waker = {
            let mut slot = lock(&self.0);
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The wait for a request's reply: resolves to the reply, [`Error::NoResponders`] when the
/// server says nobody listens, the error that ended the request ([`Error::Timeout`],
/// [`Error::ConnectionLost`]…), or [`Error::Closed`] when the client closed first.
/// Dropping it forgets the reply.
#[derive(Debug)]
pub(crate) struct ReplyWait(Arc<Mutex<Slot>>);

impl Future for ReplyWait {
    type Output = Result<Message>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        let mut slot = lock(&self.0);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(match value {
                Ok(msg) if msg.is_no_responders() => Err(Error::NoResponders),
                other => other,
            });
        }
        if slot.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            subject: "_INBOX.x.1".into(),
            reply: None,
            headers: None,
            status: None,
            description: None,
            payload: b"hi".to_vec(),
        }
    }

    #[test]
    fn the_wait_gets_the_first_value() {
        let (tx, wait) = slot();
        tx.send(Ok(msg()));
        tx.send(Err(Error::Timeout));
        drop(tx);
        let got = smol::block_on(wait).unwrap();
        assert_eq!(got.payload, b"hi");
    }

    #[test]
    fn a_dropped_filler_closes_the_wait() {
        let (tx, wait) = slot();
        let waiting = smol::spawn(wait);
        drop(tx);
        assert!(matches!(smol::block_on(waiting), Err(Error::Closed)));
    }

    #[test]
    fn an_error_reaches_the_wait() {
        let (tx, wait) = slot();
        tx.send(Err(Error::Timeout));
        assert!(matches!(smol::block_on(wait), Err(Error::Timeout)));
    }
}
