//! The writer of a recording: a thread of its own writes the lines through a buffer, so
//! the app's threads never wait for the disk. Lines wait in a queue bounded in bytes; past
//! the bound they are dropped, counted, and a `gap` line says how many went missing. The
//! buffer is flushed whenever the queue is empty, on [`Writer::flush`], and when the last
//! handle goes. The first write error is logged once; the lines after it are discarded.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use super::line::{Gap, Line};
use crate::log::log_at;

/// Bytes of lines that may wait for the writer thread, by default.
pub(super) const DEFAULT_BUFFER_LIMIT: usize = 16 << 20;

/// A handle to the writer thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<WriterState>,
}

/// What the handles and the thread share.
struct WriterState {
    /// Where it writes, for the log.
    name: String,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// The bound on `queued`.
    limit: AtomicUsize,
    /// Lines dropped since the last `gap` line.
    dropped: AtomicU64,
    /// Whether the drop was logged already.
    drop_logged: AtomicBool,
    /// The first write error (kind and text; an `io::Error` is not `Clone`).
    failed: Mutex<Option<(io::ErrorKind, String)>>,
}

enum Cmd {
    Line(String),
    Flush(smol::channel::Sender<io::Result<()>>),
}

impl Writer {
    /// Starts the thread writing to `out`; `name` says where, in log lines.
    pub(super) fn spawn(out: Box<dyn Write + Send>, name: String) -> io::Result<Writer> {
        let shared = Arc::new(WriterState {
            name,
            queued: AtomicUsize::new(0),
            limit: AtomicUsize::new(DEFAULT_BUFFER_LIMIT),
            dropped: AtomicU64::new(0),
            drop_logged: AtomicBool::new(false),
            failed: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let thread = shared.clone();
        std::thread::Builder::new()
            .name("panini-record".into())
            .spawn(move || write_lines(rx, BufWriter::new(out), &thread))?;
        Ok(Writer { tx, shared })
    }

    /// Sets the bound on the bytes waiting to be written.
    pub(super) fn set_limit(&self, bytes: usize) {
        self.shared.limit.store(bytes, Ordering::Relaxed);
    }

    /// Queues `line` (one JSON object, without its newline); never blocks.
    pub(super) fn push(&self, line: &Line) {
        if self.shared.has_failed() {
            return;
        }
        let mut text = match serde_json::to_string(line) {
            Ok(text) => text,
            Err(e) => return log_at!(Error, "panini", "recording: cannot encode a line: {e}"),
        };
        text.push('\n');
        let len = text.len();
        let queued = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if queued + len > self.shared.limit.load(Ordering::Relaxed) {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.shared.drop_logged.swap(true, Ordering::Relaxed) {
                log_at!(
                    Warn,
                    "panini",
                    "recording to {}: the writer is behind, lines are dropped (a gap line counts them)",
                    self.shared.name
                );
            }
            return;
        }
        self.gap();
        // The thread is gone only if it panicked; the line is lost with it.
        let _ = self.tx.send(Cmd::Line(text));
    }

    /// Queues a `gap` line for the lines dropped since the last one, if any.
    fn gap(&self) {
        let lines = self.shared.dropped.swap(0, Ordering::Relaxed);
        if lines == 0 {
            return;
        }
        if let Ok(mut text) = serde_json::to_string(&Line::Gap(Gap::new(lines))) {
            text.push('\n');
            self.shared.queued.fetch_add(text.len(), Ordering::AcqRel);
            let _ = self.tx.send(Cmd::Line(text));
        }
    }

    /// Waits until every line queued so far is written and flushed; the first write error
    /// if there was one.
    pub(super) async fn flush(&self) -> io::Result<()> {
        self.gap();
        let (ack, done) = smol::channel::bounded(1);
        if self.tx.send(Cmd::Flush(ack)).is_err() {
            return Err(io::Error::other("the recording's writer thread is gone"));
        }
        match done.recv().await {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the recording's writer thread is gone")),
        }
    }
}

impl WriterState {
    fn has_failed(&self) -> bool {
        crate::client::lock(&self.failed).is_some()
    }

    /// The first error, as a new `io::Error`.
    fn error(&self) -> Option<io::Error> {
        let failed = crate::client::lock(&self.failed);
        failed
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }

    /// Keeps and logs the first error; later ones are the same failure.
    fn fail(&self, e: &io::Error) {
        let mut failed = crate::client::lock(&self.failed);
        if failed.is_none() {
            log_at!(
                Error,
                "panini",
                "recording to {}: cannot write ({e}); recording stops",
                self.name
            );
            *failed = Some((e.kind(), e.to_string()));
        }
    }
}

/// The thread: writes lines as they come, flushes whenever the queue is empty, and ends
/// (flushed) when the last handle is gone.
fn write_lines(
    rx: mpsc::Receiver<Cmd>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    shared: &WriterState,
) {
    while let Ok(cmd) = rx.recv() {
        handle(cmd, &mut out, shared);
        while let Ok(cmd) = rx.try_recv() {
            handle(cmd, &mut out, shared);
        }
        flush(&mut out, shared);
    }
    flush(&mut out, shared);
}

fn handle(cmd: Cmd, out: &mut BufWriter<Box<dyn Write + Send>>, shared: &WriterState) {
    match cmd {
        Cmd::Line(text) => {
            if !shared.has_failed() {
                if let Err(e) = out.write_all(text.as_bytes()) {
                    shared.fail(&e);
                }
            }
            shared.queued.fetch_sub(text.len(), Ordering::AcqRel);
        }
        Cmd::Flush(ack) => {
            flush(out, shared);
            let _ = ack.try_send(shared.error().map_or(Ok(()), Err));
        }
    }
}

fn flush(out: &mut BufWriter<Box<dyn Write + Send>>, shared: &WriterState) {
    if shared.has_failed() {
        return;
    }
    if let Err(e) = out.flush() {
        shared.fail(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps what is written, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A sink that always fails.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::WriteZero, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::WriteZero, "disk full"))
        }
    }

    fn gap(lines: u64) -> Line {
        Line::Gap(Gap::new(lines))
    }

    #[test]
    fn lines_are_written_in_order_and_flushed() {
        let sink = Sink::default();
        let writer = Writer::spawn(Box::new(sink.clone()), "test".into()).unwrap();
        for n in 1..=3 {
            writer.push(&gap(n));
        }
        smol::block_on(writer.flush()).unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "{\"dir\":\"gap\",\"lines\":1}\n{\"dir\":\"gap\",\"lines\":2}\n{\"dir\":\"gap\",\"lines\":3}\n"
        );
    }

    #[test]
    fn past_the_bound_lines_are_dropped_and_counted_by_a_gap_line() {
        let sink = Sink::default();
        let writer = Writer::spawn(Box::new(sink.clone()), "test".into()).unwrap();
        writer.set_limit(0);
        writer.push(&gap(7));
        writer.push(&gap(7));
        writer.set_limit(DEFAULT_BUFFER_LIMIT);
        smol::block_on(writer.flush()).unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"dir\":\"gap\",\"lines\":2}\n");
    }

    #[test]
    fn a_write_error_is_kept_and_returned_by_flush_never_a_panic() {
        let writer = Writer::spawn(Box::new(Full), "test".into()).unwrap();
        writer.push(&gap(1));
        let err = smol::block_on(writer.flush()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
        writer.push(&gap(1));
        let err = smol::block_on(writer.flush()).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WriteZero,
            "the same error, again"
        );
    }
}
