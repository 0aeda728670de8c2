//! App state (issue #11, "What a new user tripped on"): a value registered with
//! `App::state` is what NATS handlers and HTTP routes take as a `State<S>` argument and what
//! tasks and hooks read with `AppHandle::state`, so they all share one value. A handler
//! asking for a state nobody registered gets a 500 error reply (the log names the type), and
//! its endpoint goes on serving.
//!
//! Each test waits for what it expects (a reply, a response, a value sent by a task) with a
//! bound; none sleeps to synchronise.

mod common;
#[cfg(feature = "http")]
#[path = "common/http_app.rs"]
mod http_app;
#[cfg(feature = "http")]
#[path = "common/http_client.rs"]
mod http_client;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::{App, AppHandle, Error, Msg, State};
use serde_json::{json, Value};

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// The shared value of these tests: a counter behind an `Arc`, so each clone handed to a
/// handler counts on the same number.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl Counter {
    fn bump(&self, by: u64) -> u64 {
        self.0.fetch_add(by, Ordering::SeqCst) + by
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A state type that no test registers.
#[derive(Clone)]
struct Missing;

/// The app of the counter tests: NATS endpoints and HTTP routes over one `Counter`, with
/// one and two arguments each.
#[cfg(feature = "http")]
fn counter_app(counter: Counter) -> App {
    use panini::http::Request;
    use panini::Msg;
    use serde_json::Value;

    let mut app = App::new("counter");
    app.state(counter);
    app.listen("count.bump", |State(c): State<Counter>| async move {
        json!(c.bump(1))
    });
    app.listen(
        "count.add",
        |msg: Msg<Value>, State(c): State<Counter>| async move {
            json!(c.bump(msg.data.as_u64().unwrap_or(0)))
        },
    );
    app.listen(
        "count.get",
        |c: State<Counter>| async move { json!(c.get()) },
    );
    app.http()
        .post("/bump", |State(c): State<Counter>| async move {
            c.bump(1).to_string()
        })
        .post(
            "/add",
            |State(c): State<Counter>, req: Request| async move {
                let by: u64 = req.text().unwrap_or("0").trim().parse().unwrap_or(0);
                c.bump(by).to_string()
            },
        )
        .get("/count", |req: Request, c: State<Counter>| async move {
            format!("{} {}", req.path, c.get())
        });
    app
}

/// Before the fix there was no `State` nor `App::state` (this did not compile); the ways a
/// new user tried instead (cloning an `Arc` into the closures) gave E0525.
#[cfg(feature = "http")]
#[test]
fn a_counter_is_shared_by_nats_handlers_and_http_routes() {
    use http_app::{bare, start as start_web, with_body};
    use http_client::Client;

    let server = NatsServer::start();
    run(async {
        let counter = Counter::default();
        let s = start_web(counter_app(counter.clone()), &server).await;
        let nats = s.handle();
        let mut web = Client::connect(s.http_addr()).await;

        assert_eq!(nats.request("count.bump", json!({})).await.unwrap(), 1);
        let r = web.call(bare("POST", "/bump")).await;
        assert_eq!((r.status, r.text()), (200, "2"), "HTTP sees the NATS bump");
        assert_eq!(nats.request("count.get", json!({})).await.unwrap(), 2);
        assert_eq!(nats.request("count.add", json!(10)).await.unwrap(), 12);
        let r = web.call(with_body("POST", "/add", "30")).await;
        assert_eq!((r.status, r.text()), (200, "42"));
        let r = web.call(bare("GET", "/count")).await;
        assert_eq!((r.status, r.text()), (200, "/count 42"));
        assert_eq!(nats.request("count.get", json!({})).await.unwrap(), 42);
        assert_eq!(
            counter.get(),
            42,
            "the registered value itself was counted on"
        );
        assert_eq!(nats.state::<Counter>().map(|c| c.get()), Some(42));
        s.stop().await.unwrap();
    });
}

/// A `listen` handler asking for a type nobody registered fails the start at once, before
/// connecting (the server named here does not exist): the error names the subject and the
/// type. Before the check, the app started and answered each request with a 500.
#[test]
fn a_state_never_registered_fails_the_start_naming_subject_and_type() {
    run(async {
        for sync in [false, true] {
            let mut app = App::new("missing").servers(["nats://127.0.0.1:1"]);
            app.state(Counter::default());
            app.listen("count.bump", |State(c): State<Counter>| async move {
                json!(c.bump(1))
            });
            if sync {
                app.listen_sync(
                    ["needs.a", "needs.b"],
                    |_: Msg<Value>, _: State<Missing>| "x",
                );
            } else {
                app.listen(["needs.a", "needs.b"], |State(_): State<Missing>| async {
                    "x"
                });
            }
            let ended = within(
                BOUND,
                "the start to fail",
                app.run_until(std::future::pending()),
            )
            .await;
            let Err(e @ Error::Start { .. }) = ended else {
                panic!("expected a failed start, got {ended:?}");
            };
            let text = e.to_string();
            assert!(text.contains("needs.a, needs.b"), "{text}");
            assert!(
                text.contains("no state of type state::Missing was registered"),
                "{text}"
            );
            let source = std::error::Error::source(&e).expect("a source");
            assert!(source.is::<panini::MissingState>(), "{source:?}");
        }
    });
}

/// A handler added at run time asking for a type nobody registered: each request gets a
/// 500 error reply (not a timeout), and the endpoint keeps serving.
#[test]
fn a_runtime_handler_without_its_state_gives_an_error_reply_and_goes_on() {
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("missing");
        app.state(Counter::default());
        app.listen("count.bump", |State(c): State<Counter>| async move {
            json!(c.bump(1))
        });
        let app = RunningApp::start(app, &server).await;
        let nats = app.handle();
        nats.subscribe_new_subject("needs.missing", |State(_): State<Missing>| async {
            "never"
        })
        .await
        .unwrap();
        for _ in 0..2 {
            match within(BOUND, "a reply", nats.request("needs.missing", json!({}))).await {
                Err(Error::Service { code, description }) => {
                    // The service's fault, not the sender's (not "MessageSchemaError"),
                    // and no internals in the reply: the type's name goes to the log.
                    assert_eq!((code, description.as_str()), (500, "internal error"));
                }
                other => panic!("expected an error reply, got {other:?}"),
            }
        }
        assert_eq!(nats.request("count.bump", json!({})).await.unwrap(), 1);
        assert!(nats.state::<Missing>().is_none());
        app.stop().await.unwrap();
    });
}

/// The same for an HTTP route: a generic 500, and the server goes on.
#[cfg(feature = "http")]
#[test]
fn an_http_route_asking_for_a_state_never_registered_gets_500_and_the_server_goes_on() {
    use http_app::{bare, start as start_web};
    use http_client::Client;

    let server = NatsServer::start();
    run(async {
        let mut app = counter_app(Counter::default());
        app.http()
            .get("/missing", |_: State<Missing>| async { "never" });
        let s = start_web(app, &server).await;
        let mut web = Client::connect(s.http_addr()).await;
        let r = web.call(bare("GET", "/missing")).await;
        assert_eq!(r.status, 500);
        assert!(!r.text().contains("Missing"), "no internals: {}", r.text());
        let r = web.call(bare("POST", "/bump")).await;
        assert_eq!((r.status, r.text()), (200, "1"), "same connection, served");
        s.stop().await.unwrap();
    });
}

/// Tasks and hooks read the state through their `AppHandle`; what a task counts, the
/// handlers see.
#[test]
fn tasks_and_hooks_see_the_state() {
    /// How the task tells the test what it saw.
    #[derive(Clone)]
    struct Seen(smol::channel::Sender<Option<u64>>);

    let server = NatsServer::start();
    run(async {
        let (seen, saw) = smol::channel::unbounded();
        let mut app = App::new("tasks");
        app.state(Counter::default()).state(Seen(seen));
        app.on_start(|app: AppHandle| async move {
            let counter = app.state::<Counter>().ok_or("no counter in on_start")?;
            counter.bump(100);
            Ok::<(), &str>(())
        });
        app.task(|app: AppHandle| async move {
            let seen = app.state::<Seen>().expect("the task sees Seen");
            let counted = app.state::<Counter>().map(|c| c.bump(1));
            let _ = seen.0.send(counted).await;
        });
        app.listen(
            "count.get",
            |c: State<Counter>| async move { json!(c.get()) },
        );
        let app = RunningApp::start(app, &server).await;
        let counted = within(BOUND, "the task's report", saw.recv())
            .await
            .unwrap();
        assert_eq!(counted, Some(101), "the task saw on_start's count");
        let now = app.handle().request("count.get", json!({})).await.unwrap();
        assert_eq!(now, 101, "the handler sees the task's count");
        app.stop().await.unwrap();
    });
}

/// Registering a type again replaces its value (the last one wins), as documented.
#[test]
fn registering_a_type_again_replaces_its_value() {
    #[derive(Clone)]
    struct Greeting(&'static str);

    let server = NatsServer::start();
    run(async {
        let mut app = App::new("again");
        app.state(Greeting("first")).state(Greeting("second"));
        app.listen("greet", |g: State<Greeting>| async move { g.0 .0 });
        let app = RunningApp::start(app, &server).await;
        let reply: String = app
            .handle()
            .request_as("greet", "", Default::default())
            .await
            .unwrap();
        assert_eq!(reply, "second");
        app.stop().await.unwrap();
    });
}

/// With the `log` feature the log goes through the facade, where it can be read: the
/// failure names the subject and the type, and says how to fix it.
#[cfg(feature = "log")]
#[test]
fn a_missing_state_is_logged_naming_the_type() {
    use std::sync::Mutex;

    struct Capture(Mutex<Vec<(log::Level, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let server = NatsServer::start();
    run(async {
        #[cfg_attr(not(feature = "http"), allow(unused_mut))]
        let mut app = App::new("logged");
        #[cfg(feature = "http")]
        app.http()
            .port(0)
            .get("/missing", |_: State<Missing>| async { "never" });
        let app = RunningApp::start(app, &server).await;
        let added = app
            .handle()
            .subscribe_new_subject("needs.missing", |_: State<Missing>| async { "never" });
        added.await.unwrap();
        let reply = app.handle().request("needs.missing", json!({})).await;
        assert!(
            matches!(reply, Err(Error::Service { code: 500, .. })),
            "{reply:?}"
        );
        #[cfg(feature = "http")]
        {
            let addr = app.handle().http_addr().unwrap();
            let r = http_client::get(addr, "/missing").await;
            assert_eq!(r.status, 500);
        }
        app.stop().await.unwrap();
    });
    let lines = CAPTURE.0.lock().unwrap().clone();
    let wanted = "no state of type state::Missing was registered with App::state";
    let nats = lines
        .iter()
        .find(|(_, text)| text.contains("needs.missing") && text.contains(wanted));
    assert!(matches!(nats, Some((log::Level::Error, _))), "{lines:#?}");
    #[cfg(feature = "http")]
    {
        let http = lines
            .iter()
            .find(|(_, text)| text.contains("GET /missing") && text.contains(wanted));
        assert!(matches!(http, Some((log::Level::Error, _))), "{lines:#?}");
    }
}
