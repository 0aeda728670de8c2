//! Reading a bucket through an ordered consumer: [`Store::watch`] and
//! [`Store::watch_all`] (the last revision of each key, a marker, then every change),
//! and the one-shot [`Store::keys`] and [`Store::history`], which stop at the marker.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use smol::stream::StreamExt;

use super::{check_key, check_pattern, Entry, Store};
use crate::error::{Error, Result};
use crate::jetstream::{DeliverPolicy, OrderedMessages};

/// What a [`Watch`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// A revision: at first the last one of each key watched (delete and purge markers
    /// included), then each change as it is written.
    Entry(Entry),
    /// The revisions stored when the watch started have all been delivered; what follows
    /// is live. Comes exactly once, at once if nothing was stored.
    InitialDone,
}

/// The changes to some keys of a bucket ([`Store::watch`]): a `Stream` of
/// [`WatchEvent`]s that does not end by itself. Built on an
/// [ordered consumer](crate::jetstream::Ordered): no change is missed or repeated across
/// lost consumers and server restarts. It yields an error and ends only when reading
/// cannot go on (the bucket was deleted, the client closed). Dropping it stops it.
#[derive(Debug)]
pub struct Watch {
    messages: OrderedMessages,
    bucket: String,
    prefix: String,
    catch_up: CatchUp,
}

/// When to say [`WatchEvent::InitialDone`]: once as many messages as were pending at the
/// start have come, or one says nothing follows it.
#[derive(Debug)]
struct CatchUp {
    pending: u64,
    received: u64,
    state: Marker,
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    Waiting,
    Due,
    Sent,
}

impl CatchUp {
    fn new(pending: u64) -> CatchUp {
        let state = if pending == 0 {
            Marker::Due
        } else {
            Marker::Waiting
        };
        CatchUp {
            pending,
            received: 0,
            state,
        }
    }

    fn saw(&mut self, delta: u64) {
        if self.state == Marker::Waiting {
            self.received += 1;
            if self.received >= self.pending || delta == 0 {
                self.state = Marker::Due;
            }
        }
    }

    fn take_due(&mut self) -> bool {
        let due = self.state == Marker::Due;
        if due {
            self.state = Marker::Sent;
        }
        due
    }
}

impl smol::stream::Stream for Watch {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.catch_up.take_due() {
            return Poll::Ready(Some(Ok(WatchEvent::InitialDone)));
        }
        let msg = match Pin::new(&mut this.messages).poll_next(cx) {
            Poll::Ready(Some(Ok(msg))) => msg,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let entry = Entry::from_delivered(&this.bucket, &this.prefix, msg);
        if let Ok(entry) = &entry {
            this.catch_up.saw(entry.delta);
        }
        Poll::Ready(Some(entry.map(WatchEvent::Entry)))
    }
}

impl Store {
    /// Watches the keys matching `pattern` (a key, or a pattern with `*` for one token
    /// and a final `>` for the rest): see [`Watch`].
    ///
    /// ```no_run
    /// # panini::rt::block_on(async {
    /// # let js = panini::jetstream::Context::new(panini::client::connect("nats://127.0.0.1:4222").await?);
    /// use panini::jetstream::kv::{Operation, WatchEvent};
    /// use panini::rt::StreamExt;
    /// let kv = js.key_value("config").await?;
    /// let mut watch = kv.watch("db.>").await?;
    /// while let Some(event) = watch.next().await {
    ///     if let WatchEvent::Entry(e) = event? {
    ///         match e.operation {
    ///             Operation::Put => println!("{} = {:?}", e.key, e.text()),
    ///             _ => println!("{} removed", e.key),
    ///         }
    ///     }
    /// }
    /// # Ok::<(), panini::Error>(()) });
    /// ```
    pub async fn watch(&self, pattern: &str) -> Result<Watch> {
        check_pattern(pattern)?;
        self.read_through(pattern, DeliverPolicy::LastPerSubject, false)
            .await
    }

    /// Watches every key of the bucket: see [`Watch`].
    pub async fn watch_all(&self) -> Result<Watch> {
        self.watch(">").await
    }

    /// The keys that have a value now (not those whose last revision is a delete or purge
    /// marker), sorted.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let entries = self
            .initial(">", DeliverPolicy::LastPerSubject, true)
            .await?;
        let mut keys: Vec<String> = entries
            .into_iter()
            .filter(|e| !e.is_removal())
            .map(|e| e.key)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Every revision the bucket keeps of `key`, oldest first, markers included (empty if
    /// it has none).
    pub async fn history(&self, key: &str) -> Result<Vec<Entry>> {
        check_key(key)?;
        self.initial(key, DeliverPolicy::All, false).await
    }

    /// What a watch delivers before its [`WatchEvent::InitialDone`].
    async fn initial(
        &self,
        pattern: &str,
        deliver: DeliverPolicy,
        headers_only: bool,
    ) -> Result<Vec<Entry>> {
        let mut watch = self.read_through(pattern, deliver, headers_only).await?;
        let mut entries = Vec::new();
        while let Some(event) = watch.next().await {
            match event? {
                WatchEvent::Entry(entry) => entries.push(entry),
                WatchEvent::InitialDone => return Ok(entries),
            }
        }
        Err(Error::Closed)
    }

    async fn read_through(
        &self,
        pattern: &str,
        deliver: DeliverPolicy,
        headers_only: bool,
    ) -> Result<Watch> {
        let messages = self
            .stream
            .ordered()
            .filter_subject(self.subject(pattern))
            .deliver_policy(deliver)
            .headers_only(headers_only)
            .await?;
        let catch_up = CatchUp::new(messages.initial_pending());
        Ok(Watch {
            messages,
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            catch_up,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_comes_once_after_the_pending_messages() {
        let mut none = CatchUp::new(0);
        assert!(none.take_due());
        none.saw(0);
        assert!(!none.take_due());

        let mut three = CatchUp::new(3);
        three.saw(5);
        three.saw(4);
        assert!(!three.take_due());
        three.saw(3);
        assert!(three.take_due());
        three.saw(0);
        assert!(!three.take_due());

        let mut early = CatchUp::new(10);
        early.saw(0);
        assert!(early.take_due());
    }
}
