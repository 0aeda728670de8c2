//! [`Recorder`]: the middleware that records what an app's endpoints receive and answer
//! and what its handlers send, one [`Line`] each; and the mark that links a send to the
//! message whose handler made it (set on the thread while the recorder polls that
//! handler's future, as `app_async` marks the app's async code).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::line::{pairs, Body, Line, Meta, Payload, Received, Replied, Sent, SentKind};
use super::writer::Writer;
use crate::app::builder::App;
use crate::app::context::AppHandle;
use crate::app::middleware::{ListenResult, Middleware, Next, Outgoing, SendKind, SendResult};
use crate::message::Message;

/// Records an app's traffic to a JSONL file: each message an endpoint handles (`in`), the
/// reply of each request (`reply`), and each publish and request made through the app's
/// handle (`out`), linked by `seq` (see [`record`](super) for the format).
///
/// A middleware: [`attach`](Recorder::attach) it (or `app.add_middleware(recorder)`).
/// Added last, it is the outermost: it sees messages as they arrive, replies as they
/// leave, and sends as the handlers made them. Lines are written by a thread of its own
/// through a queue bounded in bytes ([`buffer_limit`](Recorder::buffer_limit)); a write
/// error is logged once and stops the recording, never the app.
///
/// ```no_run
/// use panini::record::Recorder;
/// use panini::{App, AppHandle, Msg};
/// use serde_json::{json, Value};
///
/// let recorder = Recorder::to_file("orders.jsonl")?;
/// let mut app = App::new("orders");
/// app.listen("orders.place", |msg: Msg<Value>, app: AppHandle| async move {
///     app.publish("orders.placed", msg.data.clone()).await?;
///     Ok::<_, panini::Error>(json!({"ok": true}))
/// });
/// recorder.attach(&mut app); // last: the outermost middleware; flushed at stop
/// app.start();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tells this recorder's marks from another's on the same thread.
    id: u64,
    /// The last `seq` given.
    seq: AtomicU64,
    /// When the recording started: `t_ms` counts from here.
    started: Instant,
    sink: Sink,
}

/// Where the lines go.
pub(super) enum Sink {
    /// To a file, through the writer thread: the `reply` lines of requests only.
    Writer(Writer),
    /// To a replay, in memory: a `reply` line for every message (it says the handling
    /// ended). Bounded; a full channel loses lines, as a full writer queue does.
    Probe(smol::channel::Sender<Line>),
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("seq", &self.inner.seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Records to the file at `path`, created or truncated now.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("panini-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let recorder = panini::record::Recorder::to_file(dir.join("app.jsonl"))?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn to_file(path: impl AsRef<Path>) -> io::Result<Recorder> {
        let path = path.as_ref();
        let file = std::fs::File::create(path)?;
        Recorder::with_writer(Box::new(file), path.display().to_string())
    }

    /// Records to `out` (a pipe, a socket, a buffer of a test), written by a thread of
    /// the recorder's own.
    ///
    /// ```
    /// let recorder = panini::record::Recorder::to_writer(std::io::sink())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn to_writer(out: impl io::Write + Send + 'static) -> io::Result<Recorder> {
        Recorder::with_writer(Box::new(out), "a writer".to_string())
    }

    fn with_writer(out: Box<dyn io::Write + Send>, name: String) -> io::Result<Recorder> {
        let writer = Writer::spawn(out, name)?;
        let recorder = Recorder::new(Sink::Writer(writer));
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        recorder.emit(Line::Meta(Meta {
            version: super::line::FORMAT_VERSION,
            unix_ms,
        }));
        Ok(recorder)
    }

    pub(super) fn new(sink: Sink) -> Recorder {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Recorder {
            inner: Arc::new(Inner {
                id: IDS.fetch_add(1, Ordering::Relaxed),
                seq: AtomicU64::new(0),
                started: Instant::now(),
                sink,
            }),
        }
    }

    /// At most `bytes` of lines wait for the writer (default 16 MiB); past that, lines
    /// are dropped and a `gap` line counts them, so a slow disk never grows the app's
    /// memory nor slows its handlers.
    ///
    /// ```
    /// let recorder = panini::record::Recorder::to_writer(std::io::sink())?.buffer_limit(1 << 20);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn buffer_limit(self, bytes: usize) -> Recorder {
        if let Sink::Writer(writer) = &self.inner.sink {
            writer.set_limit(bytes);
        }
        self
    }

    /// Adds the recorder to `app` as a middleware (the outermost so far), and an
    /// `on_stop` hook that flushes the file once the handlers in flight are done (a write
    /// error was logged when it happened: the hook does not log it again).
    pub fn attach(&self, app: &mut App) {
        app.add_middleware(self.clone());
        let recorder = self.clone();
        app.on_stop(move |_: AppHandle| {
            let recorder = recorder.clone();
            async move {
                let _ = recorder.flush().await;
            }
        });
    }

    /// Waits until every line recorded so far is written and flushed to the file; the
    /// first write error, if the recording failed.
    ///
    /// ```
    /// # panini::rt::block_on(async {
    /// let recorder = panini::record::Recorder::to_writer(std::io::sink())?;
    /// recorder.flush().await?;
    /// # Ok::<(), std::io::Error>(()) })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn flush(&self) -> io::Result<()> {
        match &self.inner.sink {
            Sink::Writer(writer) => writer.flush().await,
            Sink::Probe(_) => Ok(()),
        }
    }

    /// Milliseconds since the recording started, to the microsecond.
    fn t_ms(&self, at: Instant) -> f64 {
        ms(at.saturating_duration_since(self.inner.started))
    }

    fn emit(&self, line: Line) {
        match &self.inner.sink {
            Sink::Writer(writer) => writer.push(&line),
            Sink::Probe(tx) => {
                let _ = tx.try_send(line);
            }
        }
    }

    /// Records `msg` and the reply its handler (the rest of the chain) gives.
    pub(super) async fn listen(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> ListenResult {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let start = Instant::now();
        let request = msg.reply.is_some();
        self.emit(Line::In(Received {
            seq,
            t_ms: self.t_ms(start),
            subject: msg.subject.clone(),
            reply: request,
            headers: pairs(msg.headers.as_ref()),
            payload: Payload(msg.payload.clone()),
        }));
        let reply = handling(self.inner.id, seq, next.run(msg)).await;
        if request || matches!(self.inner.sink, Sink::Probe(_)) {
            let end = Instant::now();
            self.emit(Line::Reply(Replied {
                seq,
                t_ms: self.t_ms(end),
                elapsed_ms: ms(end - start),
                headers: reply.as_ref().and_then(|r| pairs(r.headers.as_ref())),
                payload: reply.as_ref().map(|r| Payload(r.payload.clone())),
            }));
        }
        reply
    }

    /// Records `out` and what sending it (the rest of the chain) gives.
    pub(super) async fn send(&self, out: Outgoing, next: Next<Outgoing, SendResult>) -> SendResult {
        let sent = self.sent(&out);
        let result = next.run(out).await;
        self.emit_sent(sent, &result);
        result
    }

    /// The `out` line of `out`, linked to the message being handled, if any; call it from
    /// the send hook's future (polled inside the handler's).
    pub(super) fn sent(&self, out: &Outgoing) -> Sent {
        Sent {
            seq: current(self.inner.id),
            t_ms: self.t_ms(Instant::now()),
            kind: match out.kind {
                SendKind::Publish => SentKind::Publish,
                SendKind::Request => SentKind::Request,
                SendKind::JsPublish => SentKind::JsPublish,
            },
            subject: out.subject.clone(),
            reply_to: out.reply_to.clone(),
            headers: pairs(out.headers.as_ref()),
            payload: Payload(out.payload.clone()),
            response: None,
            error: None,
        }
    }

    /// Completes `sent` with the result of the send, and records it.
    pub(super) fn emit_sent(&self, mut sent: Sent, result: &SendResult) {
        match result {
            Ok(Some(response)) => sent.response = Some(Body::of(response)),
            Ok(None) => {}
            Err(e) => sent.error = Some(e.to_string()),
        }
        self.emit(Line::Out(sent));
    }

    /// The `seq` of the message whose handler this thread is polling, if any.
    pub(super) fn current(&self) -> Option<u64> {
        current(self.inner.id)
    }
}

impl Middleware for Recorder {
    fn send_publish(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        self.send(out, next)
    }

    fn send_request(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        self.send(out, next)
    }

    fn listen_publish(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        self.listen(msg, next)
    }

    fn listen_request(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        self.listen(msg, next)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

thread_local! {
    /// (recorder, seq) of the handlers this thread is polling, innermost last.
    static HANDLING: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `fut` (a handler's run) with the mark `(id, seq)` on the thread while it is polled.
async fn handling<F: Future>(id: u64, seq: u64, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        HANDLING.with_borrow_mut(|marks| marks.push((id, seq)));
        let _unmark = Unmark;
        fut.as_mut().poll(cx)
    })
    .await
}

/// Takes the mark off after a poll, or while a panic unwinds.
struct Unmark;

impl Drop for Unmark {
    fn drop(&mut self) {
        HANDLING.with_borrow_mut(|marks| marks.pop());
    }
}

/// The innermost mark of recorder `id` on this thread.
fn current(id: u64) -> Option<u64> {
    HANDLING.with_borrow(|marks| marks.iter().rev().find(|(r, _)| *r == id).map(|(_, s)| *s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_nest_and_are_taken_off_after_each_poll_and_on_panic() {
        assert_eq!(current(1), None);
        let seen = smol::block_on(handling(1, 7, async {
            let inner = handling(2, 9, async { (current(1), current(2)) }).await;
            (inner, current(2))
        }));
        assert_eq!(seen, ((Some(7), Some(9)), None));
        assert_eq!(current(1), None);
        let panicked =
            std::panic::catch_unwind(|| smol::block_on(handling(1, 3, async { panic!("boom") })));
        assert!(panicked.is_err());
        assert_eq!(current(1), None);
    }

    #[test]
    fn a_task_spawned_by_the_handler_is_not_marked() {
        let spawned = smol::block_on(handling(1, 5, async {
            smol::spawn(async { current(1) }).await
        }));
        assert_eq!(spawned, None);
    }
}
