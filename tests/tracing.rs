//! Tracing (issue #13): a W3C `traceparent` on an incoming message carries over to the
//! publishes and requests its handler makes (same trace id, the run's own span id as their
//! parent), through two apps; a message without one, or with a malformed one, gets none;
//! the caller's own `traceparent` wins; the handler's log lines carry the trace id; with
//! the feature `tracing`, each run is a `panini.handle` span.
//!
//! Each test waits for what it expects (a reply, a message) with a bound; none sleeps to
//! synchronise.

mod common;

use std::time::Duration;

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::{Client, Subscription};
use panini::rt::StreamExt;
use panini::{App, AppHandle, Error, Headers, Message, SendOptions, Trace};
use serde_json::{json, Value};

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A `traceparent` split into (trace id, parent id, flags), checking its shape.
fn fields(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert_eq!(parts[1].len(), 32, "{value}");
    assert_eq!(parts[2].len(), 16, "{value}");
    assert_ne!(parts[2], "0000000000000000", "{value}");
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(parts.iter().all(|p| lower_hex(p)), "{value}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn header<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    msg.headers.as_ref().and_then(|h| h.get(name))
}

async fn next(sub: &mut Subscription, what: &str) -> Message {
    within(BOUND, what, sub.next())
        .await
        .expect("subscription open")
}

/// A probe client watching `subjects`, its subscriptions known to the server.
async fn probe(server: &NatsServer, subjects: &[&str]) -> (Client, Vec<Subscription>) {
    let client = panini::client::connect(server.url()).await.unwrap();
    let mut subs = Vec::new();
    for subject in subjects {
        subs.push(client.subscribe(subject).await.unwrap());
    }
    client.flush().await.unwrap();
    (client, subs)
}

/// App A: `a.in` requests `b.work` (on app B), then replies with what its `Trace` says.
fn app_a() -> App {
    let mut a = App::new("trace_a");
    a.listen("a.in", |trace: Trace, app: AppHandle| async move {
        let b: Value = app.request("b.work", json!({})).await?;
        Ok::<_, Error>(json!({
            "b": b,
            "trace_id": trace.trace_id(),
            "span_id": trace.span_id(),
            "parent_id": trace.parent_id(),
        }))
    });
    a
}

/// App B: `b.work` publishes `b.done`, then replies with what its `Trace` says; on two
/// threads, so each run goes to a task of its own.
fn app_b() -> App {
    let mut b = App::new("trace_b").threads(2);
    b.listen("b.work", |trace: Trace, app: AppHandle| async move {
        app.publish("b.done", "done").await?;
        Ok::<_, Error>(json!({
            "trace_id": trace.trace_id(),
            "span_id": trace.span_id(),
            "parent_id": trace.parent_id(),
        }))
    });
    b
}

fn traced_headers(traceparent: &str) -> Headers {
    Headers::from_iter([("traceparent", traceparent), ("tracestate", "vendor=abc")])
}

#[test]
fn a_traceparent_goes_round_through_two_apps() {
    let server = NatsServer::start();
    run(async {
        let b = RunningApp::start(app_b(), &server).await;
        let a = RunningApp::start(app_a(), &server).await;
        let (client, mut subs) = probe(&server, &["b.work", "b.done"]).await;

        let headers = traced_headers(TRACEPARENT);
        let reply = client.request_with("a.in", Some(&headers), "go", BOUND);
        let reply = within(BOUND, "a.in's reply", reply).await.unwrap();
        let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
        let work = next(&mut subs[0], "the b.work request").await;
        let done = next(&mut subs[1], "the b.done publish").await;

        // A's run: the incoming trace, the sender's span as parent, a span of its own.
        assert_eq!(reply["trace_id"], TRACE_ID, "{reply}");
        assert_eq!(reply["parent_id"], PARENT_ID, "{reply}");
        let a_span = reply["span_id"].as_str().unwrap();
        assert_ne!(a_span, PARENT_ID);
        // Its request to B: the same trace, A's span as parent, the flags and tracestate.
        let (trace, parent, flags) = fields(header(&work, "traceparent").unwrap());
        assert_eq!((trace.as_str(), parent.as_str()), (TRACE_ID, a_span));
        assert_eq!(flags, "01");
        assert_eq!(header(&work, "tracestate"), Some("vendor=abc"));
        // B's run: parented on A's span, a span of its own, which B's publish names.
        let b_run = &reply["b"];
        assert_eq!(b_run["trace_id"], TRACE_ID, "{reply}");
        assert_eq!(b_run["parent_id"], a_span, "{reply}");
        let b_span = b_run["span_id"].as_str().unwrap();
        assert!(b_span != a_span && b_span != PARENT_ID, "{reply}");
        let (trace, parent, _) = fields(header(&done, "traceparent").unwrap());
        assert_eq!((trace.as_str(), parent.as_str()), (TRACE_ID, b_span));
        assert_eq!(header(&done, "tracestate"), Some("vendor=abc"));

        client.close().await;
        a.stop().await.unwrap();
        b.stop().await.unwrap();
    });
}

/// Sends `a.in` with `headers` and checks that neither B's request nor its publish carries
/// a trace, nor do the runs see one.
async fn no_trace_is_added(client: &Client, subs: &mut [Subscription], headers: Option<&Headers>) {
    let reply = client.request_with("a.in", headers, "go", BOUND);
    let reply = within(BOUND, "a.in's reply", reply).await.unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    let work = next(&mut subs[0], "the b.work request").await;
    let done = next(&mut subs[1], "the b.done publish").await;
    for msg in [&work, &done] {
        assert_eq!(header(msg, "traceparent"), None, "{headers:?}: {msg:?}");
        assert_eq!(header(msg, "tracestate"), None, "{headers:?}: {msg:?}");
    }
    assert_eq!(work.headers, None, "no header block at all: {work:?}");
    assert_eq!(reply["trace_id"], Value::Null, "{reply}");
    assert_eq!(reply["b"]["trace_id"], Value::Null, "{reply}");
}

#[test]
fn a_message_without_traceparent_starts_no_trace() {
    let server = NatsServer::start();
    run(async {
        let b = RunningApp::start(app_b(), &server).await;
        let a = RunningApp::start(app_a(), &server).await;
        let (client, mut subs) = probe(&server, &["b.work", "b.done"]).await;
        no_trace_is_added(&client, &mut subs, None).await;
        let other = Headers::from_iter([("X-Request-Id", "7"), ("tracestate", "vendor=abc")]);
        no_trace_is_added(&client, &mut subs, Some(&other)).await;
        client.close().await;
        a.stop().await.unwrap();
        b.stop().await.unwrap();
    });
}

#[test]
fn a_malformed_traceparent_is_ignored() {
    let server = NatsServer::start();
    run(async {
        let b = RunningApp::start(app_b(), &server).await;
        let a = RunningApp::start(app_a(), &server).await;
        let (client, mut subs) = probe(&server, &["b.work", "b.done"]).await;
        let malformed = [
            TRACEPARENT.to_uppercase(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".to_string(),
            format!("ff{}", &TRACEPARENT[2..]),
            format!("{TRACEPARENT}-extra"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".to_string(),
            "not a traceparent".to_string(),
        ];
        for value in &malformed {
            let headers = traced_headers(value);
            no_trace_is_added(&client, &mut subs, Some(&headers)).await;
        }
        client.close().await;
        a.stop().await.unwrap();
        b.stop().await.unwrap();
    });
}

#[test]
fn the_callers_own_traceparent_wins() {
    let own = "00-11111111111111111111111111111111-2222222222222222-00";
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("trace_own");
        app.listen("own.in", move |app: AppHandle| async move {
            let headers = Headers::from_iter([("Traceparent", own)]);
            let opts = SendOptions {
                headers: Some(headers),
                ..SendOptions::default()
            };
            app.publish_with("own.out", "mine", opts).await?;
            app.publish("own.out", "ours").await
        });
        let app = RunningApp::start(app, &server).await;
        let (client, mut subs) = probe(&server, &["own.out"]).await;
        let headers = traced_headers(TRACEPARENT);
        client
            .publish_with("own.in", None, Some(&headers), "go")
            .await
            .unwrap();
        let mine = next(&mut subs[0], "the publish with its own traceparent").await;
        let h = mine.headers.as_ref().unwrap();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("Traceparent", own)],
            "{h:?}"
        );
        let ours = next(&mut subs[0], "the plain publish").await;
        let (trace, _, _) = fields(header(&ours, "traceparent").unwrap());
        assert_eq!(trace, TRACE_ID);
        client.close().await;
        app.stop().await.unwrap();
    });
}

#[test]
fn middlewares_and_sync_handlers_run_in_the_trace() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("trace_sync");
        // A middleware that lets its handler start in a later poll, from a task of its own.
        app.listen_any(|msg, next| async move {
            smol::future::yield_now().await;
            next.run(msg).await
        });
        app.listen_sync("sync.in", |app: AppHandle| {
            app.publish_sync("sync.out", "from a pool thread")
        });
        let app = RunningApp::start(app, &server).await;
        let (client, mut subs) = probe(&server, &["sync.out"]).await;
        let headers = traced_headers(TRACEPARENT);
        client
            .publish_with("sync.in", None, Some(&headers), "go")
            .await
            .unwrap();
        let out = next(&mut subs[0], "the sync handler's publish").await;
        let (trace, parent, _) = fields(header(&out, "traceparent").unwrap());
        assert_eq!(trace, TRACE_ID);
        assert_ne!(parent, PARENT_ID);
        client.close().await;
        app.stop().await.unwrap();
    });
}

#[cfg(feature = "jetstream")]
#[test]
fn a_durable_endpoints_run_is_in_the_trace() {
    use common::jetstream::JsServer;
    use panini::jetstream::StreamConfig;

    let js = JsServer::start();
    run(async {
        let mut app = App::new("trace_durable").enable_js(true);
        app.declare_stream(StreamConfig {
            name: "TRACED".into(),
            subjects: vec!["traced.>".into()],
            ..Default::default()
        });
        app.listen_stream("TRACED", "worker", |app: AppHandle| async move {
            app.publish("durable.out", "done").await
        });
        let app = RunningApp::start(app, js.server()).await;
        let (client, mut subs) = probe(js.server(), &["durable.out"]).await;
        let headers = traced_headers(TRACEPARENT);
        let stored = client.request_with("traced.in", Some(&headers), "go", BOUND);
        within(BOUND, "the stream's ack", stored).await.unwrap();
        let out = next(&mut subs[0], "the durable handler's publish").await;
        let (trace, parent, _) = fields(header(&out, "traceparent").unwrap());
        assert_eq!(trace, TRACE_ID);
        assert_ne!(parent, PARENT_ID);
        client.close().await;
        app.stop().await.unwrap();
    });
}

#[cfg(feature = "log")]
mod logs {
    //! The handler's log lines through the `log` facade carry the trace id.

    use std::sync::Mutex;

    use super::*;
    use panini::log::{log, Level};

    /// Keeps every line it is given.
    struct Capture(Mutex<Vec<String>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn the_handlers_log_lines_carry_the_trace_id() {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Info);
        let server = NatsServer::start();
        run(async {
            let mut app = App::new("trace_logs");
            app.listen("logs.in", |msg: Message| async move {
                let n = msg.text().unwrap_or("?").to_string();
                log(Level::Info, "logs", format_args!("before the await {n}"));
                smol::future::yield_now().await; // the rest in a task of its own
                log(Level::Info, "logs", format_args!("after the await {n}"));
                Err::<(), _>(Error::Service {
                    code: 500,
                    description: format!("failing {n}"),
                })
            });
            let app = RunningApp::start(app, &server).await;
            let client = panini::client::connect(server.url()).await.unwrap();
            let headers = traced_headers(TRACEPARENT);
            let traced = client.request_with("logs.in", Some(&headers), "traced", BOUND);
            within(BOUND, "the traced reply", traced).await.unwrap();
            let plain = client.request_with("logs.in", None, "plain", BOUND);
            within(BOUND, "the plain reply", plain).await.unwrap();
            client.close().await;
            app.stop().await.unwrap();
        });
        let lines = CAPTURE.0.lock().unwrap().clone();
        let suffix = format!(" trace_id={TRACE_ID}");
        for wanted in ["before the await traced", "after the await traced"] {
            let line = format!("{wanted}{suffix}");
            assert!(lines.contains(&line), "{line:?} not in {lines:#?}");
        }
        // panini's own line about the failure, written as the run ends, has it too.
        let failed = lines
            .iter()
            .find(|l| l.contains("failing traced"))
            .unwrap_or_else(|| panic!("no failure line in {lines:#?}"));
        assert!(failed.ends_with(&suffix), "{failed}");
        for plain in lines.iter().filter(|l| l.contains("plain")) {
            assert!(!plain.contains("trace_id="), "{plain}");
        }
        assert!(
            lines.iter().any(|l| l == "after the await plain"),
            "{lines:#?}"
        );
    }
}

#[cfg(feature = "tracing")]
mod spans {
    //! With the feature `tracing`, each handler run is a `panini.handle` span with its
    //! subject and trace id, entered while the handler runs.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::*;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// A span's or an event's fields, as (name, value) text.
    type FieldList = Vec<(String, String)>;

    /// Records each span's fields, and the fields of the spans events happened in.
    #[derive(Default)]
    struct Spans {
        next: AtomicU64,
        fields: Mutex<Vec<(u64, String, FieldList)>>,
        /// Span ids entered on each thread, innermost last.
        entered: Mutex<Vec<(std::thread::ThreadId, u64)>>,
        /// For each event: its message and its span's fields.
        events: Mutex<Vec<(String, FieldList)>>,
    }

    struct Fields<'a>(&'a mut FieldList);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .push((field.name().to_string(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_string(), value.to_string()));
        }
    }

    impl Subscriber for &'static Spans {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
            let mut fields = Vec::new();
            span.record(&mut Fields(&mut fields));
            let name = span.metadata().name().to_string();
            self.fields.lock().unwrap().push((id, name, fields));
            Id::from_u64(id)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut all = self.fields.lock().unwrap();
            if let Some((_, _, fields)) = all.iter_mut().find(|(id, ..)| *id == span.into_u64()) {
                values.record(&mut Fields(fields));
            }
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Vec::new();
            event.record(&mut Fields(&mut message));
            let me = std::thread::current().id();
            let span = self
                .entered
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(t, _)| *t == me)
                .map(|(_, id)| *id);
            let fields = span
                .and_then(|s| {
                    let all = self.fields.lock().unwrap();
                    all.iter()
                        .find(|(id, ..)| *id == s)
                        .map(|(_, _, f)| f.clone())
                })
                .unwrap_or_default();
            let text = message.into_iter().map(|(_, v)| v).collect::<String>();
            self.events.lock().unwrap().push((text, fields));
        }
        fn enter(&self, span: &Id) {
            let me = std::thread::current().id();
            self.entered.lock().unwrap().push((me, span.into_u64()));
        }
        fn exit(&self, span: &Id) {
            let me = std::thread::current().id();
            let mut entered = self.entered.lock().unwrap();
            if let Some(i) = entered.iter().rposition(|e| *e == (me, span.into_u64())) {
                entered.remove(i);
            }
        }
    }

    #[test]
    fn each_run_is_a_panini_handle_span() {
        static SPANS: std::sync::OnceLock<Spans> = std::sync::OnceLock::new();
        let spans: &'static Spans = SPANS.get_or_init(Spans::default);
        tracing::subscriber::set_global_default(spans).unwrap();
        let server = NatsServer::start();
        run(async {
            let mut app = App::new("trace_spans");
            app.listen("spans.in", |msg: Message| async move {
                smol::future::yield_now().await;
                tracing::info!("handling {}", msg.text().unwrap_or("?"));
                "ok"
            });
            let app = RunningApp::start(app, &server).await;
            let client = panini::client::connect(server.url()).await.unwrap();
            let headers = traced_headers(TRACEPARENT);
            let traced = client.request_with("spans.in", Some(&headers), "traced", BOUND);
            within(BOUND, "the traced reply", traced).await.unwrap();
            let plain = client.request_with("spans.in", None, "plain", BOUND);
            within(BOUND, "the plain reply", plain).await.unwrap();
            client.close().await;
            app.stop().await.unwrap();
        });
        let events = spans.events.lock().unwrap().clone();
        let field = |fields: &FieldList, name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let in_span = |text: &str| {
            events
                .iter()
                .find(|(t, _)| t == text)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| panic!("no event {text:?} in {events:#?}"))
        };
        let traced = in_span("handling traced");
        assert_eq!(field(&traced, "subject").as_deref(), Some("spans.in"));
        assert_eq!(field(&traced, "trace_id").as_deref(), Some(TRACE_ID));
        let plain = in_span("handling plain");
        assert_eq!(field(&plain, "subject").as_deref(), Some("spans.in"));
        assert_eq!(field(&plain, "trace_id"), None);
        let names = spans.fields.lock().unwrap();
        assert!(names.iter().all(|(_, name, _)| name == "panini.handle"));
    }
}
