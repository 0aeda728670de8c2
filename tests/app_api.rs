//! The parts of the app API that had no test (issue #11, "Tests also missing today"), each
//! against a real nats-server: per-endpoint `queue` / `no_queue` / `max_concurrency`,
//! `subscribe_new_subject_queue`, `publish_with` headers and reply-to, `request_message`,
//! request timeouts, `send_any`, `task_sync`, `on_start` order and failure,
//! `reconnect(false)`, `host` / `port`, and `client_nats_name` as the server sees it.
//!
//! Each test is written to fail if its feature were broken; the comment above each says how.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::middleware::{Outgoing, SendKind};
use panini::{App, AppHandle, Headers, Message, Msg, SendOptions};
use serde_json::{json, Value};
use smol::future::FutureExt;
use smol::stream::StreamExt;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// How long a test gives a broken implementation to show itself when it checks that
/// something does *not* happen (a correct one passes whatever this is).
const GRACE: Duration = Duration::from_millis(300);

/// An app running in the background until `stop` is called.
struct Running {
    stop: smol::channel::Sender<()>,
    done: smol::Task<panini::Result<()>>,
}

impl Running {
    /// Stops the app gracefully (handlers in flight finish) and returns how it ended.
    async fn stop(self) -> panini::Result<()> {
        let _ = self.stop.send(()).await;
        within(BOUND * 2, "the app to stop", self.done).await
    }
}

/// Starts `app` against `server` (without its banner) and waits for its start event.
async fn start(app: App, server: &NatsServer) -> Running {
    launch(app.servers([server.url()]), server).await
}

/// Starts `app` as configured (its servers are not set here) and waits for the start event
/// it publishes on `server`.
async fn launch(app: App, server: &NatsServer) -> Running {
    let probe = client::connect(server.url()).await.unwrap();
    let mut started = probe.subscribe("panini_events.>").await.unwrap();
    probe.flush().await.unwrap();
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let mut done = smol::spawn(app.banner(false).run_until(async move {
        let _ = stopped.recv().await;
    }));
    // The start event, or why the app ended without one.
    let event = async { started.next().await.unwrap() }.or(async {
        let ended = (&mut done).await;
        panic!("the app ended before its start event: {ended:?}")
    });
    let event = within(BOUND, "the app's start event", event).await;
    assert!(event.subject.ends_with(".started"), "{}", event.subject);
    Running { stop, done }
}

/// The app's handle, sent out by an on-start hook (hooks run before the start event, so
/// it is there once [`start`] returns).
fn handle_out(app: &mut App) -> smol::channel::Receiver<AppHandle> {
    let (tx, rx) = smol::channel::bounded(1);
    app.on_start(move |app: AppHandle| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(app).await;
        }
    });
    rx
}

async fn ask(client: &Client, subject: &str, payload: &[u8]) -> Message {
    client
        .request_with(subject, None, payload, BOUND)
        .await
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"))
}

/// Who handled what: (instance, subject, payload), in the order handled.
type Seen = Arc<Mutex<Vec<(usize, String, String)>>>;

/// A handler recording into `seen` as instance `i` and announcing each message on `tick`.
fn recorder(
    seen: &Seen,
    i: usize,
    tick: &smol::channel::Sender<()>,
) -> impl Fn(Msg<String>) -> std::future::Ready<()> + Clone + Send + Sync + 'static {
    let (seen, tick) = (seen.clone(), tick.clone());
    move |msg: Msg<String>| {
        seen.lock().unwrap().push((i, msg.subject, msg.data));
        let _ = tick.try_send(());
        std::future::ready(())
    }
}

/// Waits for `n` ticks, naming `what` if they do not come.
async fn ticks(rx: &smol::channel::Receiver<()>, n: usize, what: &str) {
    within(BOUND, what, async {
        for _ in 0..n {
            rx.recv().await.unwrap();
        }
    })
    .await;
}

/// The payloads handled on `subject`, sorted, per instance.
fn handled_on(seen: &Seen, subject: &str) -> BTreeMap<usize, Vec<u32>> {
    let mut by: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (i, s, data) in seen.lock().unwrap().iter() {
        if s == subject {
            by.entry(*i).or_default().push(data.parse().unwrap());
        }
    }
    by.values_mut().for_each(|v| v.sort_unstable());
    by
}

/// Every payload handled on `subject` by any instance, sorted.
fn all_handled_on(seen: &Seen, subject: &str) -> Vec<u32> {
    let mut all: Vec<u32> = handled_on(seen, subject).into_values().flatten().collect();
    all.sort_unstable();
    all
}

async fn publish_numbers(c: &Client, subject: &str, n: u32) {
    for k in 0..n {
        c.publish(subject, k.to_string()).await.unwrap();
    }
    c.flush().await.unwrap();
}

const N: u32 = 40;

/// `.queue("g")` on an endpoint puts every instance's endpoint in group `g`, whatever the
/// app-wide group: one instance has none, the other has "other". If `.queue` were ignored
/// the first would subscribe plainly and the second in "other", and each message would be
/// handled twice.
#[test]
fn an_endpoint_queue_overrides_the_app_group_so_each_message_is_handled_once() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for (i, group) in [None, Some("other")].into_iter().enumerate() {
            let mut app = App::new("q");
            if let Some(group) = group {
                app = app.allocation_queue_group(group);
            }
            app.listen("q.jobs", recorder(&seen, i, &tick)).queue("g");
            instances.push(start(app, &server).await);
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "q.jobs", N).await;
        ticks(&ticked, N as usize, "every job handled").await;
        // The stop drains: whatever the server sent is handled before it returns, so a
        // second delivery of any job would be counted now.
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "q.jobs"),
            (0..N).collect::<Vec<_>>(),
            "each job handled exactly once"
        );
        let by = handled_on(&seen, "q.jobs");
        assert_eq!(by.len(), 2, "both instances took a share: {by:?}");
    });
}

/// `.no_queue()` subscribes an endpoint plainly even when the app has a queue group: two
/// instances both get every message on it, while their other endpoint (no override) shares
/// its messages in the app's group. If `.no_queue` were ignored, the two would split the
/// events and the first wait would time out.
#[test]
fn no_queue_on_an_endpoint_gives_every_instance_every_message_despite_the_app_group() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for i in 0..2 {
            let mut app = App::new("nq").allocation_queue_group("workers");
            app.listen("nq.events", recorder(&seen, i, &tick))
                .no_queue();
            app.listen("nq.jobs", recorder(&seen, i, &tick));
            instances.push(start(app, &server).await);
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "nq.events", N).await;
        ticks(&ticked, 2 * N as usize, "every event handled by both").await;
        let all: Vec<u32> = (0..N).collect();
        let by = handled_on(&seen, "nq.events");
        assert_eq!(by.get(&0), Some(&all), "instance 0 got every event");
        assert_eq!(by.get(&1), Some(&all), "instance 1 got every event");

        publish_numbers(&c, "nq.jobs", N).await;
        ticks(&ticked, N as usize, "every job handled").await;
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "nq.jobs"),
            all,
            "the app's group still applies where no_queue was not asked"
        );
    });
}

/// Handlers that hold until released, counting how many run at once.
#[derive(Clone)]
struct Gate {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    started: (
        smol::channel::Sender<String>,
        smol::channel::Receiver<String>,
    ),
    release: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
    done: (smol::channel::Sender<()>, smol::channel::Receiver<()>),
}

impl Gate {
    fn new() -> Self {
        Gate {
            running: Default::default(),
            most: Default::default(),
            started: smol::channel::unbounded(),
            release: smol::channel::unbounded(),
            done: smol::channel::unbounded(),
        }
    }

    /// The handler: its body counts itself in, says it started, waits for a release.
    fn handler(
        &self,
    ) -> impl Fn(Msg<String>) -> smol::future::Boxed<()> + Clone + Send + Sync + 'static {
        let gate = self.clone();
        move |msg: Msg<String>| {
            let gate = gate.clone();
            Box::pin(async move {
                let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
                gate.most.fetch_max(now, Ordering::SeqCst);
                gate.started.0.send(msg.data).await.unwrap();
                gate.release.1.recv().await.unwrap();
                gate.running.fetch_sub(1, Ordering::SeqCst);
                gate.done.0.send(()).await.unwrap();
            })
        }
    }

    /// Waits for `n` handler bodies to start.
    async fn wait_started(&self, n: usize, what: &str) {
        within(BOUND, what, async {
            for _ in 0..n {
                self.started.1.recv().await.unwrap();
            }
        })
        .await;
    }

    /// A handler body that starts within [`GRACE`], if any.
    async fn another_start(&self) -> Option<String> {
        async { self.started.1.recv().await.ok() }
            .or(async {
                smol::Timer::after(GRACE).await;
                None
            })
            .await
    }

    /// Releases `n` handlers and waits until `n` have finished.
    async fn finish(&self, n: usize) {
        for _ in 0..n {
            self.release.0.send(()).await.unwrap();
        }
        within(BOUND, "the released handlers to finish", async {
            for _ in 0..n {
                self.done.1.recv().await.unwrap();
            }
        })
        .await;
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// An endpoint's `.max_concurrency(3)` wins over the app's `max_concurrency(1)`: three
/// handlers held at once all start. If the endpoint's setting were ignored, at most one (or
/// two, with the n+1 bug) would start and the wait would time out.
#[test]
fn an_endpoint_max_concurrency_overrides_the_apps() {
    let server = NatsServer::start();
    run(async {
        let gate = Gate::new();
        let mut app = App::new("mc").max_concurrency(1);
        app.listen("mc.wide", gate.handler()).max_concurrency(3);
        let running = start(app, &server).await;
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "mc.wide", 3).await;
        gate.wait_started(3, "three handlers running at once").await;
        assert_eq!(gate.most(), 3);
        gate.finish(3).await;
        running.stop().await.unwrap();
    });
}

/// `.max_concurrency(n)` lets exactly `n` handler bodies run at once: with `n + 1`
/// messages waiting, `n` start, the next one does not start until one of them finishes.
async fn max_concurrency_caps_handlers_at(n: usize) {
    let server = NatsServer::start();
    let gate = Gate::new();
    let mut app = App::new("mc").max_concurrency(64);
    app.listen("mc.capped", gate.handler()).max_concurrency(n);
    let running = start(app, &server).await;
    let c = client::connect(server.url()).await.unwrap();
    publish_numbers(&c, "mc.capped", n as u32 + 1).await;
    gate.wait_started(n, "the first handlers to start").await;
    let extra = gate.another_start().await;
    assert!(
        extra.is_none(),
        "max_concurrency({n}): message {extra:?} started while {n} handlers were still \
         running ({} at once)",
        gate.most()
    );
    gate.finish(1).await;
    gate.wait_started(1, "the held-back handler once a slot is free")
        .await;
    gate.finish(n).await;
    assert_eq!(gate.most(), n, "never more than {n} at once");
    running.stop().await.unwrap();
}

#[test]
fn max_concurrency_one_runs_one_handler_at_a_time() {
    run(max_concurrency_caps_handlers_at(1));
}

#[test]
fn max_concurrency_two_runs_two_handlers_at_a_time() {
    run(max_concurrency_caps_handlers_at(2));
}

/// `subscribe_new_subject_queue` at run time: `Some("g")` puts the endpoints of three
/// instances in group `g` although their app groups differ (two in "w", one in "other"):
/// each message once. `None` subscribes plainly although the app has a group: every
/// instance gets every message. Either mixed up with the app's group fails a count.
#[test]
fn subscribe_new_subject_queue_uses_the_group_given_not_the_apps() {
    let server = NatsServer::start();
    run(async {
        let seen: Seen = Default::default();
        let (tick, ticked) = smol::channel::unbounded();
        let mut instances = Vec::new();
        for (i, group) in ["w", "w", "other"].into_iter().enumerate() {
            let mut app = App::new("rt").allocation_queue_group(group);
            let handle = handle_out(&mut app);
            instances.push(start(app, &server).await);
            let handle = handle.recv().await.unwrap();
            handle
                .subscribe_new_subject_queue("rt.shared", Some("g"), recorder(&seen, i, &tick))
                .await
                .unwrap();
            handle
                .subscribe_new_subject_queue("rt.all", None, recorder(&seen, i, &tick))
                .await
                .unwrap();
        }
        let c = client::connect(server.url()).await.unwrap();
        publish_numbers(&c, "rt.all", N).await;
        ticks(&ticked, 3 * N as usize, "every instance got every message").await;
        let all: Vec<u32> = (0..N).collect();
        let by = handled_on(&seen, "rt.all");
        for i in 0..3 {
            assert_eq!(by.get(&i), Some(&all), "instance {i} got every message");
        }

        publish_numbers(&c, "rt.shared", N).await;
        ticks(&ticked, N as usize, "every shared message handled").await;
        for app in instances {
            app.stop().await.unwrap();
        }
        assert_eq!(
            all_handled_on(&seen, "rt.shared"),
            all,
            "each shared message handled exactly once"
        );
    });
}

/// `publish_with` through an `AppHandle` sends its headers and reply subject (and a plain
/// `publish` sends neither), with and without a send middleware in the way.
#[test]
fn publish_with_sends_headers_and_reply_to_through_the_app_handle() {
    let server = NatsServer::start();
    run(async {
        let c = client::connect(server.url()).await.unwrap();
        let mut out = c.subscribe("pw.out").await.unwrap();
        c.flush().await.unwrap();
        for with_middleware in [false, true] {
            let mut app = App::new("pw");
            if with_middleware {
                app.send_publish(|out, next| async move { next.run(out).await });
            }
            let (tx, rx) = smol::channel::bounded(1);
            app.task(move |app: AppHandle| {
                let tx = tx.clone();
                async move {
                    let mut headers = Headers::new();
                    headers.insert("X-Trace", "abc-123");
                    headers.append("X-Tag", "one").append("X-Tag", "two");
                    let opts = SendOptions {
                        headers: Some(headers),
                        reply_to: Some("pw.back".into()),
                        ..Default::default()
                    };
                    let first = app.publish_with("pw.out", json!({"k": 1}), opts).await;
                    let second = app.publish("pw.out", "plain").await;
                    let _ = tx.send((first, second)).await;
                }
            });
            let running = start(app, &server).await;
            let (first, second) = within(BOUND, "the task's publishes", rx.recv())
                .await
                .unwrap();
            first.unwrap();
            second.unwrap();
            let msg = within(BOUND, "the published message", out.next())
                .await
                .unwrap();
            assert_eq!(msg.payload, br#"{"k":1}"#, "middleware: {with_middleware}");
            assert_eq!(msg.reply.as_deref(), Some("pw.back"));
            let h = msg.headers.expect("headers sent");
            assert_eq!(h.get("X-Trace"), Some("abc-123"));
            assert_eq!(h.get_all("X-Tag").collect::<Vec<_>>(), ["one", "two"]);
            let plain = within(BOUND, "the plain message", out.next())
                .await
                .unwrap();
            assert_eq!(plain.payload, b"plain");
            assert_eq!(plain.reply, None);
            assert!(plain.headers.is_none(), "{:?}", plain.headers);
            running.stop().await.unwrap();
        }
    });
}

/// `request_message` returns the whole response, headers included, and sends the request's
/// headers; a handler's error reply comes back as a message (where `request` gives
/// `Error::Service`).
#[test]
fn request_message_returns_the_whole_response_and_error_replies_as_messages() {
    let server = NatsServer::start();
    run(async {
        // A responder that echoes a request header back in a response header.
        let c = client::connect(server.url()).await.unwrap();
        let mut asked = c.subscribe("rm.headers").await.unwrap();
        c.flush().await.unwrap();
        let responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = asked.next().await.unwrap();
                let mut h = Headers::new();
                let got = req.headers.as_ref().and_then(|h| h.get("X-Req"));
                h.insert("X-Echo", got.unwrap_or("none"));
                c.publish_with(req.reply.as_deref().unwrap(), None, Some(&h), "body")
                    .await
                    .unwrap();
            })
        };
        let mut app = App::new("rm");
        app.listen("rm.fails", |_: Msg| async {
            Err::<Value, _>("out of stock")
        });
        let handle = handle_out(&mut app);
        let running = start(app, &server).await;
        let app = handle.recv().await.unwrap();

        let mut headers = Headers::new();
        headers.insert("X-Req", "r-1");
        let opts = SendOptions {
            headers: Some(headers),
            ..Default::default()
        };
        let msg = app.request_message("rm.headers", "q", opts).await.unwrap();
        responder.await;
        assert_eq!(msg.payload, b"body");
        let h = msg.headers.expect("the response's headers");
        assert_eq!(h.get("X-Echo"), Some("r-1"), "request headers went out");

        let msg = app
            .request_message("rm.fails", json!({}), SendOptions::default())
            .await
            .expect("an error reply is a message");
        let h = msg.headers.expect("error headers");
        assert_eq!(h.get("Nats-Service-Error"), Some("out of stock"));
        assert_eq!(h.get("Nats-Service-Error-Code"), Some("500"));
        let err = app.request("rm.fails", json!({})).await.unwrap_err();
        assert!(
            matches!(&err, panini::Error::Service { code: 500, .. }),
            "{err:?}"
        );
        drop(app);
        running.stop().await.unwrap();
    });
}

/// Request timeouts through an `AppHandle`: `App::request_timeout` bounds `request` and
/// `request_message` when nobody answers (a subscriber that never replies, so not "no
/// responders"), and `SendOptions::timeout` overrides it both ways: shorter (times out
/// early) and longer (waits for a late reply the app's timeout would have missed).
#[test]
fn request_timeouts_come_from_the_app_and_from_send_options() {
    let server = NatsServer::start();
    run(async {
        let c = client::connect(server.url()).await.unwrap();
        let _silent = c.subscribe("to.silent").await.unwrap();
        let mut slow = c.subscribe("to.slow").await.unwrap();
        c.flush().await.unwrap();
        let late = Duration::from_millis(700);
        let slow_responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = slow.next().await.unwrap();
                smol::Timer::after(late).await;
                c.publish(req.reply.as_deref().unwrap(), "late")
                    .await
                    .unwrap();
            })
        };
        let app_timeout = Duration::from_millis(300);
        let mut app = App::new("to").request_timeout(app_timeout);
        let handle = handle_out(&mut app);
        let running = start(app, &server).await;
        let app = handle.recv().await.unwrap();

        let t = Instant::now();
        let r = app.request("to.silent", "x").await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(
            took >= app_timeout && took < BOUND,
            "request timed out after {took:?}, the app's timeout is {app_timeout:?}"
        );
        let t = Instant::now();
        let r = app
            .request_message("to.silent", "x", SendOptions::default())
            .await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(took >= app_timeout && took < BOUND, "{took:?}");

        let shorter = Duration::from_millis(100);
        let opts = SendOptions {
            timeout: Some(shorter),
            ..Default::default()
        };
        let t = Instant::now();
        let r: panini::Result<Value> = app.request_as("to.silent", "x", opts).await;
        let took = t.elapsed();
        assert!(matches!(r, Err(panini::Error::Timeout)), "{r:?}");
        assert!(
            took >= shorter && took < app_timeout,
            "the per-call {shorter:?} timed out after {took:?}"
        );

        let opts = SendOptions {
            timeout: Some(BOUND),
            ..Default::default()
        };
        let r: String = app
            .request_as("to.slow", "x", opts)
            .await
            .expect("a reply after the app's timeout but within the per-call one");
        assert_eq!(r, "late");
        slow_responder.await;
        drop(app);
        running.stop().await.unwrap();
    });
}

/// `send_any` wraps both `publish` and `request` (what it adds reaches the wire for both),
/// runs outermost when added after `send_publish` (last added runs first), and does not
/// wrap handler replies or the start event.
#[test]
fn send_any_wraps_every_publish_and_request() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("sa");
        let l = log.clone();
        app.send_publish(move |out: Outgoing, next| {
            l.lock()
                .unwrap()
                .push(format!("send_publish {}", out.subject));
            next.run(out)
        });
        let l = log.clone();
        app.send_any(move |mut out: Outgoing, next| {
            let kind = match out.kind {
                SendKind::Publish => "publish",
                SendKind::Request => "request",
            };
            l.lock()
                .unwrap()
                .push(format!("send_any {kind} {}", out.subject));
            out.headers
                .get_or_insert_with(Headers::new)
                .insert("X-Via", "send_any");
            next.run(out)
        });
        app.listen("sa.echo", |msg: Msg<String>| async move { msg.data });
        let (tx, rx) = smol::channel::bounded(1);
        app.task(move |app: AppHandle| {
            let tx = tx.clone();
            async move {
                let mut h = Headers::new();
                h.insert("X-Orig", "1");
                let opts = SendOptions {
                    headers: Some(h),
                    reply_to: Some("sa.r".into()),
                    ..Default::default()
                };
                let published = app.publish_with("sa.pub", "p", opts).await;
                let answered: panini::Result<String> =
                    app.request_as("sa.req", "q", Default::default()).await;
                let _ = tx.send((published, answered)).await;
            }
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut published = c.subscribe("sa.pub").await.unwrap();
        let mut requests = c.subscribe("sa.req").await.unwrap();
        c.flush().await.unwrap();
        let responder = {
            let c = c.clone();
            smol::spawn(async move {
                let req = requests.next().await.unwrap();
                c.publish(req.reply.as_deref().unwrap(), "answer")
                    .await
                    .unwrap();
                req
            })
        };
        let running = start(app, &server).await;
        // A handler's reply is not a send: send_any must not see it.
        assert_eq!(ask(&c, "sa.echo", b"e").await.payload, b"e");
        let (p, a) = within(BOUND, "the task's sends", rx.recv()).await.unwrap();
        p.unwrap();
        assert_eq!(a.unwrap(), "answer");

        let msg = within(BOUND, "the publish", published.next())
            .await
            .unwrap();
        let h = msg.headers.expect("headers");
        assert_eq!(h.get("X-Via"), Some("send_any"), "send_any saw the publish");
        assert_eq!(h.get("X-Orig"), Some("1"), "the caller's headers kept");
        assert_eq!(msg.reply.as_deref(), Some("sa.r"));
        let req = responder.await;
        assert_eq!(
            req.headers.as_ref().and_then(|h| h.get("X-Via")),
            Some("send_any"),
            "send_any saw the request"
        );
        running.stop().await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "send_any publish sa.pub",
                "send_publish sa.pub",
                "send_any request sa.req",
            ]
        );
    });
}

/// `task_sync` runs a blocking closure once, on the thread pool: while it blocks, the app
/// still answers requests; then it can use `publish_sync`. Run on the executor's thread,
/// it would freeze the app and the request would time out.
#[test]
fn task_sync_runs_once_on_the_thread_pool_and_can_publish_sync() {
    let server = NatsServer::start();
    run(async {
        let runs = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = smol::channel::bounded(1);
        let (go, go_rx) = smol::channel::bounded::<()>(1);
        let mut app = App::new("ts");
        app.listen("ts.ping", |_: Msg| async { "pong" });
        let r = runs.clone();
        app.task_sync(move |app: AppHandle| {
            r.fetch_add(1, Ordering::SeqCst);
            entered_tx.send_blocking(()).unwrap();
            // Blocks this thread until the test says go.
            go_rx.recv_blocking().unwrap();
            app.publish_sync("ts.done", "done")
        });
        let c = client::connect(server.url()).await.unwrap();
        let mut done = c.subscribe("ts.done").await.unwrap();
        c.flush().await.unwrap();
        let running = start(app, &server).await;
        within(BOUND, "the sync task to run", entered.recv())
            .await
            .unwrap();
        // The bound is the test's own timer: a frozen app would freeze its client's
        // request timeouts too.
        let pong = within(
            BOUND,
            "the app to answer while the sync task blocks",
            ask(&c, "ts.ping", b"{}"),
        )
        .await;
        assert_eq!(pong.payload, b"pong");
        go.send(()).await.unwrap();
        let msg = within(BOUND, "the sync task's publish", done.next())
            .await
            .unwrap();
        assert_eq!(msg.payload, b"done");
        running.stop().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "a task_sync runs once");
    });
}

/// `on_start` hooks run one after another in registration order (each finishes, across
/// its awaits, before the next begins), before the endpoints subscribe (a hook's request
/// to the app's own endpoint finds no responder), and all before the start event and the
/// tasks.
#[test]
fn on_start_hooks_run_in_order_before_endpoints_serve_and_before_the_start_event() {
    let server = NatsServer::start();
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("os");
        app.listen("os.echo", |msg: Msg<String>| async move { msg.data });
        for i in 1..=3 {
            let l = log.clone();
            app.on_start(move |app: AppHandle| {
                let l = l.clone();
                async move {
                    l.lock().unwrap().push(format!("{i} begins"));
                    // An await that goes to the server and back: hooks running at once
                    // would interleave here.
                    let r = app.request("os.echo", "x").await;
                    let what = match r {
                        Err(panini::Error::NoResponders) => "no endpoint yet".to_string(),
                        other => format!("unexpected {other:?}"),
                    };
                    l.lock().unwrap().push(format!("{i} {what}"));
                    l.lock().unwrap().push(format!("{i} ends"));
                }
            });
        }
        let (task_ran, ran) = smol::channel::bounded(1);
        let l = log.clone();
        app.task(move |_| {
            l.lock().unwrap().push("task".into());
            let _ = task_ran.try_send(());
            async {}
        });
        let running = start(app, &server).await;
        let at_start_event = log.lock().unwrap().clone();
        let hooks: Vec<String> = (1..=3)
            .flat_map(|i| {
                [
                    format!("{i} begins"),
                    format!("{i} no endpoint yet"),
                    format!("{i} ends"),
                ]
            })
            .collect();
        assert_eq!(
            at_start_event[..hooks.len().min(at_start_event.len())],
            hooks[..],
            "hooks in order, one at a time, all done before the start event"
        );
        let c = client::connect(server.url()).await.unwrap();
        assert_eq!(ask(&c, "os.echo", b"hi").await.payload, b"hi");
        within(BOUND, "the task", ran.recv()).await.unwrap();
        running.stop().await.unwrap();
        let mut want = hooks;
        want.push("task".into());
        assert_eq!(*log.lock().unwrap(), want);
    });
}

/// A failing `on_start` hook stops the start: `run_until` returns its error, the hooks
/// after it and the tasks never run, no endpoint serves, no start event is published, and
/// the app's connection is closed.
#[test]
fn a_failing_on_start_hook_stops_the_start_and_run_until_returns_its_error() {
    let server = NatsServer::start_with_args(&["-m", "-1"]);
    run(async {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut app = App::new("osf")
            .client_nats_name("osf-conn")
            .servers([server.url()])
            .banner(false);
        app.listen("osf.echo", |msg: Msg<String>| async move { msg.data });
        for (i, fails) in [(1, false), (2, true), (3, false)] {
            let l = log.clone();
            app.on_start(move |_| {
                l.lock().unwrap().push(format!("hook {i}"));
                async move {
                    if fails {
                        return Err("the database is unreachable");
                    }
                    Ok(())
                }
            });
        }
        let l = log.clone();
        app.task(move |_| {
            l.lock().unwrap().push("task".into());
            async {}
        });
        let probe = client::connect(server.url()).await.unwrap();
        let mut started = probe.subscribe("panini_events.>").await.unwrap();
        probe.flush().await.unwrap();

        let result = within(
            BOUND,
            "run_until to return after the failed hook",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("the start fails");
        let text = err.to_string();
        assert!(
            text.contains("the database is unreachable") && text.contains("on_start"),
            "the error names the hook and its reason: {text}"
        );
        assert_eq!(*log.lock().unwrap(), ["hook 1", "hook 2"]);

        wait_until(&server, "the app's connection to close", |conns| {
            !conns.iter().any(|c| c["name"] == "osf-conn")
        })
        .await;
        let r = probe
            .request_with("osf.echo", None, "x", Duration::from_secs(2))
            .await;
        assert!(matches!(r, Err(panini::Error::NoResponders)), "{r:?}");
        // The app's connection is gone, so anything it published was routed before this
        // round trip's answer.
        probe.flush().await.unwrap();
        let event = smol::future::poll_once(started.next()).await;
        assert!(event.is_none(), "no start event: {event:?}");
    });
}

/// With `reconnect(false)`, losing the server ends `run_until` at once with
/// `Error::Closed` (with the default it would retry 60 times, 2 s apart), and a server
/// that is not there at start fails the start at once instead of being retried.
#[test]
fn reconnect_false_gives_up_at_once() {
    let mut server = NatsServer::start();
    run(async {
        let mut app = App::new("rc").reconnect(false);
        app.listen("rc.echo", |msg: Msg<String>| async move { msg.data });
        let running = start(app, &server).await;
        server.stop();
        let ended = within(
            BOUND,
            "run_until to end once the server is gone",
            running.done,
        )
        .await;
        assert!(matches!(ended, Err(panini::Error::Closed)), "{ended:?}");

        // The server is gone: nothing listens on its port any more.
        let app = App::new("rc")
            .reconnect(false)
            .servers([server.url()])
            .banner(false);
        let t = Instant::now();
        let result = within(
            BOUND,
            "run_until to fail without retrying",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("no server, no start");
        assert!(err.to_string().contains("connect"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

/// `host` and `port` locate the server when neither `servers` nor `NATS_URL` is set: the
/// app connects to that server (the same server id as a client of it sees) and serves.
/// With `reconnect(false)` an app that ignored them would fail fast on 127.0.0.1:4222,
/// and one that reached another server there would show a different server id.
#[test]
fn host_and_port_locate_the_server_without_nats_url() {
    if let Some(url) = std::env::var_os("NATS_URL") {
        eprintln!(
            "skipped: NATS_URL is set ({url:?}) and wins over host/port; \
             run this test without it"
        );
        return;
    }
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("hp")
            .host("127.0.0.1")
            .port(server.port())
            .reconnect(false);
        app.listen("hp.echo", |msg: Msg<String>| async move { msg.data });
        let handle = handle_out(&mut app);
        let running = launch(app, &server).await;
        let app = handle.recv().await.unwrap();
        let c = client::connect(server.url()).await.unwrap();
        assert_eq!(
            app.client().server_info().server_id,
            c.server_info().server_id,
            "the app is connected to the server at host:port"
        );
        assert_eq!(ask(&c, "hp.echo", b"hi").await.payload, b"hi");
        drop(app);
        running.stop().await.unwrap();
    });
}

/// `client_nats_name` is the connection name the server shows (its monitoring `/connz`),
/// and `AppHandle::client_name` returns it; without it the server sees Panini's default
/// `{service}__...` name.
#[test]
fn client_nats_name_is_the_name_the_server_sees() {
    let server = NatsServer::start_with_args(&["-m", "-1"]);
    run(async {
        let mut named = App::new("billing").client_nats_name("billing-eu-7");
        let named_handle = handle_out(&mut named);
        let mut unnamed = App::new("shipping");
        let unnamed_handle = handle_out(&mut unnamed);
        let named = start(named, &server).await;
        let unnamed = start(unnamed, &server).await;
        let (named_handle, unnamed_handle) = (
            named_handle.recv().await.unwrap(),
            unnamed_handle.recv().await.unwrap(),
        );
        assert_eq!(named_handle.client_name(), "billing-eu-7");
        let default_name = unnamed_handle.client_name().to_string();
        assert!(default_name.starts_with("shipping__"), "{default_name}");

        let names = connection_names(&server).await;
        assert!(
            names.iter().any(|n| n == "billing-eu-7"),
            "the server sees the name given: {names:?}"
        );
        assert!(
            names.contains(&default_name),
            "the server sees the default name {default_name}: {names:?}"
        );
        drop((named_handle, unnamed_handle));
        named.stop().await.unwrap();
        unnamed.stop().await.unwrap();
    });
}

/// The HTTP monitoring address of a server started with `-m -1`, from its log line
/// "Starting http monitor on 127.0.0.1:PORT" (written before the ports file that
/// `NatsServer` waits for).
fn monitor_addr(server: &NatsServer) -> String {
    let log = server.log();
    let marker = "Starting http monitor on ";
    let line = log.lines().find_map(|l| {
        l.split_once(marker)
            .map(|(_, addr)| addr.trim().to_string())
    });
    line.unwrap_or_else(|| panic!("no monitoring port (start with -m -1); log:\n{log}"))
}

/// The server's `/connz` connections (HTTP/1.0, so the body is not chunked).
async fn connz(server: &NatsServer) -> Vec<Value> {
    let addr = monitor_addr(server);
    let body = smol::unblock(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        common::set_io_timeouts(&stream, common::IO_TIMEOUT);
        stream
            .write_all(b"GET /connz?limit=1024 HTTP/1.0\r\nHost: monitor\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_string()
    })
    .await;
    let json: Value = serde_json::from_str(&body).unwrap();
    json["connections"].as_array().cloned().unwrap_or_default()
}

async fn connection_names(server: &NatsServer) -> Vec<String> {
    connz(server)
        .await
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Polls `/connz` until `ok` holds (the server's view has no event to wait on), up to
/// [`BOUND`]; panics naming `what` otherwise.
async fn wait_until(server: &NatsServer, what: &str, ok: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + BOUND;
    loop {
        let conns = connz(server).await;
        if ok(&conns) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {BOUND:?}: {conns:?}"
        );
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}
