//! [`Replay`]: drives an app under test with a [`Recording`], one recorded message at a
//! time, and compares the app's reply and sends with the recorded ones. A probe (a
//! recorder kept in memory) attached to the app sees what its handlers send, says when
//! each handling ended, and answers the handlers' requests with the recorded responses,
//! so the app is replayed without the services it calls.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use smol::future::FutureExt;
use smol::stream::StreamExt;

use super::compare::{show_reply, show_sent, Mismatch, ReplayReport, Rules};
use super::error::RecordError;
use super::line::{self, Line, Received, Sent, SentKind};
use super::recorder::{Recorder, Sink};
use super::recording::{Case, Recording};
use crate::app::builder::App;
use crate::app::middleware::{ListenResult, Middleware, Next, Outgoing, SendResult};
use crate::client::{Client, Subscription};
use crate::message::Message;

/// Lines the probe keeps for the replay; past that (an app flooded by other traffic
/// while it is replayed) they are lost, and the message they belong to times out.
const PROBE_CAPACITY: usize = 1 << 16;

/// Replays a [`Recording`] against an app under test and reports every difference.
///
/// Each recorded incoming message, in order, is published by a test client to the app
/// (with a reply subject for a request), once the previous one was handled; the app's
/// reply is compared with the recorded reply, and the publishes and requests its handler
/// made (seen by a probe, [`attach`](Replay::attach)ed to the app) with the recorded
/// ones: kind, subject and payload, in order. Payloads are compared as JSON when both
/// are JSON, without the [`ignore`](Replay::ignore)d fields, else byte for byte. A
/// request the handler makes is answered with the recorded response, without NATS
/// (unless [`live_requests`](Replay::live_requests)). As fast as possible: the recorded
/// times are not reproduced, and messages the recorded app handled concurrently are
/// replayed one after the other.
///
/// ```no_run
/// use panini::record::Replay;
/// use panini::App;
///
/// # fn build_app() -> App { App::new("orders") }
/// # panini::rt::block_on(async {
/// let mut replay = Replay::from_file("orders.jsonl")?.ignore("/at");
/// let mut app = build_app();
/// replay.attach(&mut app);
/// // ... run the app against a test server, then:
/// let client = panini::client::connect("nats://127.0.0.1:4222").await?;
/// let report = replay.run(&client).await?;
/// report.assert_matches();
/// # Ok::<(), Box<dyn std::error::Error>>(()) });
/// ```
pub struct Replay {
    recording: Recording,
    rules: Rules,
    timeout: Duration,
    live_requests: bool,
    probe: Option<Probe>,
}

/// The replay's end of its probe.
struct Probe {
    events: smol::channel::Receiver<Line>,
    stubs: Arc<Mutex<Vec<Sent>>>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("lines", &self.recording.lines().len())
            .field("ignore", &self.rules.ignore)
            .field("timeout", &self.timeout)
            .field("live_requests", &self.live_requests)
            .field("attached", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// A replay of `recording`.
    pub fn new(recording: Recording) -> Replay {
        Replay {
            recording,
            rules: Rules::default(),
            timeout: Duration::from_secs(5),
            live_requests: false,
            probe: None,
        }
    }

    /// A replay of the recording at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Replay, RecordError> {
        Ok(Replay::new(Recording::read(path)?))
    }

    /// Leaves the value at `pointer` (a JSON pointer, RFC 6901: `/at`, `/order/id`,
    /// `/items/0/ts`) out of every JSON payload compared: timestamps, generated ids.
    ///
    /// # Panics
    /// If `pointer` is neither empty (the whole payload) nor starts with `/`.
    ///
    /// ```
    /// # use panini::record::{Recording, Replay};
    /// let replay = Replay::new(Recording::default()).ignore("/at").ignore("/order/id");
    /// ```
    pub fn ignore(mut self, pointer: impl Into<String>) -> Replay {
        let pointer = pointer.into();
        assert!(
            pointer.is_empty() || pointer.starts_with('/'),
            "Replay::ignore: `{pointer}` is not a JSON pointer (RFC 6901: `/field/sub`)"
        );
        self.rules.ignore.push(pointer);
        self
    }

    /// Runs `f` on both JSON payloads before they are compared (after the ignored
    /// pointers are taken out): to round numbers, sort lists, blank ids in arrays.
    ///
    /// ```
    /// # use panini::record::{Recording, Replay};
    /// use serde_json::Value;
    ///
    /// // every payload is compared, not only objects: look before you index
    /// let replay = Replay::new(Recording::default()).normalize(|v| {
    ///     let items = v.get_mut("items").and_then(Value::as_array_mut);
    ///     for id in items.into_iter().flatten().filter_map(|item| item.get_mut("id")) {
    ///         *id = Value::Null;
    ///     }
    /// });
    /// ```
    pub fn normalize(mut self, f: impl Fn(&mut Value) + Send + Sync + 'static) -> Replay {
        self.rules.normalize = Some(Arc::new(f));
        self
    }

    /// How long one message may take: to be handled, and its reply to arrive (default
    /// 5 s). Past it the message is a mismatch, and the replay goes on.
    pub fn timeout(mut self, timeout: Duration) -> Replay {
        self.timeout = timeout;
        self
    }

    /// Whether the requests the app's handlers make go to NATS (`true`) or are answered
    /// with the recorded responses (`false`, the default: the app is replayed without the
    /// services it calls). Only requests recorded with a response, matched by subject in
    /// order within one handling, are answered; any other goes to NATS.
    pub fn live_requests(mut self, on: bool) -> Replay {
        self.live_requests = on;
        self
    }

    /// Adds the replay's probe to the app under test, as a middleware (the outermost so
    /// far: attach it after the app's own middlewares to see the sends as the handlers
    /// made them). Call it before the app starts; [`run`](Replay::run) needs it.
    pub fn attach(&mut self, app: &mut App) -> &mut Replay {
        let (tx, events) = smol::channel::bounded(PROBE_CAPACITY);
        let stubs = Arc::new(Mutex::new(Vec::new()));
        app.add_middleware(ProbeHooks {
            recorder: Recorder::new(Sink::Probe(tx)),
            stubs: stubs.clone(),
        });
        self.probe = Some(Probe { events, stubs });
        self
    }

    /// Replays the recording against the running app, through `client` (connected to
    /// the app's NATS), and reports the differences. An error only when the replay itself
    /// cannot go on (the client fails, or the replay is not attached).
    pub async fn run(&self, client: &Client) -> Result<ReplayReport, RecordError> {
        let probe = self.probe.as_ref().ok_or(RecordError::NotAttached)?;
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(&format!("{inbox}.*")).await?;
        client.flush().await?;
        let mut report = ReplayReport::default();
        for case in self.recording.cases() {
            let mismatches = self
                .replay_one(client, probe, &mut replies, &inbox, &case)
                .await?;
            report.replayed += 1;
            if mismatches.is_empty() {
                report.matched += 1;
            }
            report.mismatches.extend(mismatches);
        }
        Ok(report)
    }

    /// Sends one recorded message, waits for its handling (and reply), and compares.
    async fn replay_one(
        &self,
        client: &Client,
        probe: &Probe,
        replies: &mut Subscription,
        inbox: &str,
        case: &Case<'_>,
    ) -> Result<Vec<Mismatch>, RecordError> {
        let received = case.received;
        *crate::client::lock(&probe.stubs) = self.stubs(case);
        while probe.events.try_recv().is_ok() {}
        let reply_to = received.reply.then(|| format!("{inbox}.{}", received.seq));
        let headers = line::headers(received.headers.as_deref());
        client
            .publish_with(
                &received.subject,
                reply_to.as_deref(),
                headers.as_ref(),
                received.payload.as_bytes(),
            )
            .await?;
        client.flush().await?;
        let deadline = Instant::now() + self.timeout;
        let Some(handled) = before(deadline, handled(&probe.events, received)).await else {
            return Ok(vec![Mismatch {
                seq: received.seq,
                what: "handling".into(),
                expected: "handled by the app".into(),
                got: format!("not handled within {:?}", self.timeout),
            }]);
        };
        let reply = match (&reply_to, handled.replied) {
            (Some(to), true) => before(deadline, reply_on(replies, to)).await,
            _ => None,
        };
        let mut mismatches = Vec::new();
        self.compare_reply(case, reply.as_ref(), &mut mismatches);
        self.compare_outs(case, &handled.outs, &mut mismatches);
        Ok(mismatches)
    }

    /// The recorded requests of `case` the probe answers.
    fn stubs(&self, case: &Case<'_>) -> Vec<Sent> {
        if self.live_requests {
            return Vec::new();
        }
        case.outs
            .iter()
            .filter(|sent| sent.kind == SentKind::Request && sent.response.is_some())
            .map(|sent| (*sent).clone())
            .collect()
    }

    fn compare_reply(&self, case: &Case<'_>, got: Option<&Message>, out: &mut Vec<Mismatch>) {
        // A stream message has no reply; a request whose reply line was lost, nothing to
        // compare with.
        let (true, Some(recorded)) = (case.received.reply, case.reply) else {
            return;
        };
        let seq = case.received.seq;
        let mismatch = |expected, got| Mismatch {
            seq,
            what: "reply".into(),
            expected,
            got,
        };
        match (&recorded.payload, got) {
            (None, None) => {}
            (Some(expected), Some(got)) => {
                if let Some((e, g)) = self.rules.differ(expected.as_bytes(), &got.payload) {
                    out.push(mismatch(e, g));
                }
            }
            (expected, got) => {
                let got = got.map(|m| line::Payload(m.payload.clone()));
                out.push(mismatch(
                    show_reply(expected.as_ref()),
                    show_reply(got.as_ref()),
                ));
            }
        }
    }

    fn compare_outs(&self, case: &Case<'_>, got: &[Sent], out: &mut Vec<Mismatch>) {
        let seq = case.received.seq;
        let n = case.outs.len().max(got.len());
        for i in 0..n {
            let mismatch = |what: &str, expected: String, got: String| Mismatch {
                seq,
                what: format!("out {} {what}", i + 1),
                expected,
                got,
            };
            match (case.outs.get(i), got.get(i)) {
                (Some(e), Some(g)) => {
                    if e.kind != g.kind {
                        out.push(mismatch(
                            "kind",
                            e.kind.as_str().into(),
                            g.kind.as_str().into(),
                        ));
                    }
                    if e.subject != g.subject {
                        out.push(mismatch("subject", e.subject.clone(), g.subject.clone()));
                    }
                    let payloads = self
                        .rules
                        .differ(e.payload.as_bytes(), g.payload.as_bytes());
                    if let Some((ep, gp)) = payloads {
                        out.push(mismatch("payload", ep, gp));
                    }
                }
                (Some(e), None) => out.push(mismatch("missing", show_sent(e), "nothing".into())),
                (None, Some(g)) => out.push(mismatch("unexpected", "nothing".into(), show_sent(g))),
                (None, None) => {}
            }
        }
    }
}

/// What the probe saw of one handling.
struct Handled {
    /// Whether the handler gave a reply.
    replied: bool,
    /// The sends its handler made, in order.
    outs: Vec<Sent>,
}

/// The handling of `received` by the app: its `in` line (same subject, payload and
/// kind), the sends linked to it, until its end. `None` if the app went away.
async fn handled(events: &smol::channel::Receiver<Line>, received: &Received) -> Option<Handled> {
    let mut mine = None;
    let mut outs = Vec::new();
    loop {
        match events.recv().await.ok()? {
            Line::In(got)
                if mine.is_none()
                    && got.subject == received.subject
                    && got.reply == received.reply
                    && got.payload == received.payload =>
            {
                mine = Some(got.seq);
            }
            Line::Out(sent) if sent.seq.is_some() && sent.seq == mine => outs.push(sent),
            Line::Reply(end) if Some(end.seq) == mine => {
                return Some(Handled {
                    replied: end.payload.is_some(),
                    outs,
                })
            }
            _ => {}
        }
    }
}

/// The first message on `subject` (earlier replies, late ones of a message that timed
/// out, are skipped).
async fn reply_on(replies: &mut Subscription, subject: &str) -> Option<Message> {
    while let Some(msg) = replies.next().await {
        if msg.subject == subject {
            return Some(msg);
        }
    }
    None
}

/// `fut`'s output, or `None` at `deadline`.
async fn before<T>(deadline: Instant, fut: impl Future<Output = Option<T>>) -> Option<T> {
    fut.or(async {
        smol::Timer::at(deadline).await;
        None
    })
    .await
}

/// The probe in the app under test: a recorder to memory that also answers the handlers'
/// requests with the recorded responses of the message being replayed.
struct ProbeHooks {
    recorder: Recorder,
    /// The recorded requests (with responses) of the message being replayed, not yet made.
    stubs: Arc<Mutex<Vec<Sent>>>,
}

impl ProbeHooks {
    async fn request(&self, out: Outgoing, next: Next<Outgoing, SendResult>) -> SendResult {
        // Only the handler's own requests: the mark is on while its future is polled.
        if self.recorder.current().is_some() {
            let stub = {
                let mut stubs = crate::client::lock(&self.stubs);
                let found = stubs.iter().position(|s| s.subject == out.subject);
                found.map(|i| stubs.remove(i))
            };
            if let Some(body) = stub.and_then(|s| s.response) {
                let sent = self.recorder.sent(&out);
                let result = Ok(Some(body.to_message(&out.subject)));
                self.recorder.emit_sent(sent, &result);
                return result;
            }
        }
        self.recorder.send(out, next).await
    }
}

impl Middleware for ProbeHooks {
    fn send_publish(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        self.recorder.send(out, next)
    }

    fn send_request(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        self.request(out, next)
    }

    fn listen_publish(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        self.recorder.listen(msg, next)
    }

    fn listen_request(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        self.recorder.listen(msg, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::record::recording::tests::RECORDING;

    #[test]
    fn only_recorded_requests_with_a_response_are_answered() {
        let recording = Recording::parse(RECORDING).unwrap();
        let cases = recording.cases();
        let replay = Replay::new(recording.clone());
        let stubs = replay.stubs(&cases[0]);
        assert_eq!(stubs.len(), 1);
        assert_eq!(stubs[0].subject, "d");
        assert!(replay.stubs(&cases[1]).is_empty());
        assert!(Replay::new(recording.clone())
            .live_requests(true)
            .stubs(&cases[0])
            .is_empty());
    }

    #[test]
    #[should_panic(expected = "not a JSON pointer")]
    fn an_ignore_that_is_not_a_pointer_panics_at_once() {
        let _ = Replay::new(Recording::default()).ignore("at");
    }
}
