//! JetStream in the App, against a real nats-server with `-js` (one per test): durable
//! endpoints (`listen_stream`) ack, nak with a back-off, terminate what cannot decode, keep
//! long runs alive with `in_progress`, and survive a stop and a new start with nothing
//! lost; `publish_js` goes through the send middlewares; `declare_stream` is idempotent; a
//! server without JetStream fails the start clearly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::RunningApp;
use common::jetstream::JsServer;
use common::{run, within, NatsServer};
use panini::jetstream::{ConsumerInfo, JetStreamError, PublishOptions, StreamConfig};
use panini::middleware::{Outgoing, SendKind};
use panini::{App, AppHandle, Error, Json, Msg, StartStage, State};
use serde_json::{json, Value};

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(10);

/// What the handlers saw, shared through the app state.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<BTreeMap<u64, u32>>>);

impl Seen {
    /// Counts one run for `id`; returns how many runs it has had.
    fn add(&self, id: u64) -> u32 {
        let mut seen = self.0.lock().unwrap();
        let n = seen.entry(id).or_insert(0);
        *n += 1;
        *n
    }

    fn runs(&self, id: u64) -> u32 {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn ids(&self) -> BTreeSet<u64> {
        self.0.lock().unwrap().keys().copied().collect()
    }
}

/// The stream of these tests: `orders.>`, file storage.
fn orders() -> StreamConfig {
    StreamConfig {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    }
}

/// Waits until `check` holds, polling every 20 ms, up to `BOUND`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    within(BOUND, what, async {
        while !check() {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The consumer's state as the server has it.
async fn consumer(app: &AppHandle, durable: &str) -> ConsumerInfo {
    let js = app.jetstream().expect("JetStream enabled");
    js.consumer("ORDERS", durable).info().await.unwrap()
}

/// Waits until the server has every delivery of `durable` acknowledged (or terminated).
async fn all_acked(app: &AppHandle, durable: &str, stream_seq: u64) -> ConsumerInfo {
    within(BOUND, "every delivery acknowledged", async {
        loop {
            let info = consumer(app, durable).await;
            if info.num_ack_pending == 0 && info.ack_floor.stream_seq >= stream_seq {
                return info;
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// A handler that fails twice then succeeds: three deliveries, one ack; the back-off
/// comes from the endpoint's settings. A panicking handler is redelivered the same way.
#[test]
fn a_failing_handler_is_redelivered_until_it_succeeds_then_acked_once() {
    let js = JsServer::start();
    run(async {
        let seen = Seen::default();
        let mut app = App::new("billing");
        app.state(seen.clone());
        app.declare_stream(orders());
        app.listen_stream(
            "ORDERS",
            "billing",
            |msg: Msg<Json<Value>>, State(seen): State<Seen>| async move {
                let id = msg.data.0["id"].as_u64().unwrap_or(0);
                let n = seen.add(id);
                if id == 2 && n < 3 {
                    panic!("a panic on delivery {n}");
                }
                if n < 3 {
                    return Err(format!("failure on delivery {n}"));
                }
                Ok(())
            },
        )
        .backoff([Duration::from_millis(50), Duration::from_millis(100)]);
        let app = RunningApp::start(app, js.server()).await;
        let h = app.handle();
        for id in [1, 2] {
            let ack = h.publish_js("orders.created", json!({ "id": id })).await;
            assert_eq!(ack.unwrap().seq, id);
        }
        until("three runs of each", || {
            seen.runs(1) == 3 && seen.runs(2) == 3
        })
        .await;
        let info = all_acked(h, "billing", 2).await;
        assert_eq!(info.delivered.stream_seq, 2);
        assert_eq!(info.delivered.consumer_seq, 6, "three deliveries each");
        assert_eq!(info.num_redelivered, 0, "none waiting for redelivery");
        assert_eq!((seen.runs(1), seen.runs(2)), (3, 3), "acked: no fourth run");
        app.stop().await.unwrap();
    });
}

/// A payload that does not decode as the handler asks is terminated (never redelivered)
/// without running the handler; the next message is handled.
#[test]
fn a_payload_that_does_not_decode_is_terminated_not_redelivered() {
    #[derive(serde::Deserialize)]
    struct Order {
        id: u64,
    }

    let js = JsServer::start();
    run(async {
        let seen = Seen::default();
        let mut app = App::new("billing");
        app.state(seen.clone());
        app.declare_stream(orders());
        app.listen_stream(
            "ORDERS",
            "strict",
            |msg: Msg<Json<Order>>, State(seen): State<Seen>| async move {
                seen.add(msg.data.0.id);
            },
        )
        .ack_wait(Duration::from_secs(1))
        .backoff([Duration::ZERO]);
        let app = RunningApp::start(app, js.server()).await;
        let h = app.handle();
        h.publish_js("orders.created", "not json").await.unwrap();
        h.publish_js("orders.created", json!({"id": 7}))
            .await
            .unwrap();
        until("the good message handled", || seen.runs(7) == 1).await;
        let info = all_acked(h, "strict", 2).await;
        assert_eq!(info.num_redelivered, 0);
        assert_eq!(info.delivered.consumer_seq, 2, "each delivered once");
        assert_eq!(seen.ids(), BTreeSet::from([7]));
        app.stop().await.unwrap();
    });
}

/// A run longer than the ack wait is kept alive with `in_progress`: delivered once.
#[test]
fn a_long_run_is_not_redelivered_under_it() {
    let js = JsServer::start();
    run(async {
        let seen = Seen::default();
        let mut app = App::new("slow");
        app.state(seen.clone());
        app.declare_stream(orders());
        app.listen_stream("ORDERS", "slow", |State(seen): State<Seen>| async move {
            seen.add(1);
            // The handler's own work: longer than the ack wait.
            smol::Timer::after(Duration::from_millis(2500)).await;
        })
        .ack_wait(Duration::from_secs(1));
        let app = RunningApp::start(app, js.server()).await;
        let h = app.handle();
        h.publish_js("orders.created", "{}").await.unwrap();
        let info = all_acked(h, "slow", 1).await;
        assert_eq!(info.delivered.consumer_seq, 1, "delivered once");
        assert_eq!(seen.runs(1), 1);
        app.stop().await.unwrap();
    });
}

/// Stopped mid-stream and started again: every message is handled at least once, none is
/// lost; runs in flight at the stop finish and ack.
#[test]
fn a_stop_mid_stream_and_a_new_start_lose_nothing() {
    const N: u64 = 200;
    let js = JsServer::start();
    run(async {
        let seen = Seen::default();
        let make = |seen: Seen| {
            let mut app = App::new("worker");
            app.state(seen);
            app.declare_stream(orders());
            app.listen_stream(
                "ORDERS",
                "worker",
                |msg: Msg<Value>, State(seen): State<Seen>| async move {
                    smol::Timer::after(Duration::from_millis(20)).await;
                    seen.add(msg.data["id"].as_u64().unwrap_or(0));
                },
            )
            .max_in_flight(8)
            // What was on its way to the stopped worker comes back after this.
            .ack_wait(Duration::from_secs(2));
            app
        };
        // The messages are in the stream before any worker starts.
        let (_client, ctx) = common::jetstream::connect(&js.url(), BOUND).await;
        ctx.create_or_update_stream(&orders()).await.unwrap();
        for id in 1..=N {
            let opts = PublishOptions::new().msg_id(format!("order-{id}"));
            ctx.publish_with("orders.created", json!({ "id": id }).to_string(), &opts)
                .await
                .unwrap();
        }
        let first = RunningApp::start(make(seen.clone()), js.server()).await;
        until("some handled", || seen.ids().len() >= 20).await;
        first.stop().await.unwrap();
        let handled_before = seen.ids().len() as u64;
        assert!(handled_before < N, "stopped mid-stream ({handled_before})");

        let second = RunningApp::start(make(seen.clone()), js.server()).await;
        until("every message handled", || seen.ids().len() as u64 == N).await;
        all_acked(second.handle(), "worker", N).await;
        assert_eq!(seen.ids(), (1..=N).collect());
        second.stop().await.unwrap();
    });
}

/// `publish_js` goes through the send middlewares (`send_publish` sees a JetStream
/// publish), returns the ack (a duplicate id is reported as such), and fails at once with
/// `NoStream` when no stream has the subject.
#[test]
fn publish_js_goes_through_send_middlewares_and_reports_no_stream_at_once() {
    let js = JsServer::start();
    run(async {
        let kinds = Arc::new(Mutex::new(Vec::new()));
        let mut app = App::new("publisher");
        app.declare_stream(orders());
        let k = kinds.clone();
        app.send_publish(move |out: Outgoing, next| {
            k.lock().unwrap().push((out.kind, out.subject.clone()));
            next.run(out)
        });
        let app = RunningApp::start(app, js.server()).await;
        let h = app.handle();
        let opts = PublishOptions::new().msg_id("one");
        let first = h.publish_js_with("orders.x", "{}", &opts).await.unwrap();
        let again = h.publish_js_with("orders.x", "{}", &opts).await.unwrap();
        assert_eq!((first.seq, first.duplicate), (1, false));
        assert_eq!((again.seq, again.duplicate), (1, true));
        let seen = kinds.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen
            .iter()
            .all(|(k, s)| *k == SendKind::JsPublish && s == "orders.x"));

        let t = std::time::Instant::now();
        let none = h.publish_js("nowhere.x", "{}").await;
        assert!(
            matches!(none, Err(Error::JetStream(JetStreamError::NoStream { .. }))),
            "{none:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        app.stop().await.unwrap();
    });
}

/// Two instances declaring one stream: the second start updates it (idempotent), and a
/// changed setting takes effect.
#[test]
fn declaring_a_stream_is_idempotent_and_updates_it() {
    let js = JsServer::start();
    run(async {
        let first = RunningApp::start(
            {
                let mut app = App::new("a");
                app.declare_stream(orders());
                app
            },
            js.server(),
        )
        .await;
        let second = RunningApp::start(
            {
                let mut app = App::new("b");
                app.declare_stream(StreamConfig {
                    max_msgs: 1000,
                    ..orders()
                });
                app
            },
            js.server(),
        )
        .await;
        let info = second
            .handle()
            .jetstream()
            .unwrap()
            .stream("ORDERS")
            .info()
            .await
            .unwrap();
        assert_eq!(info.config.max_msgs, 1000);
        first.stop().await.unwrap();
        second.stop().await.unwrap();
    });
}

/// A server without JetStream: the start fails at once, saying so.
#[test]
fn a_server_without_jetstream_fails_the_start_clearly() {
    let server = NatsServer::start();
    run(async {
        let app = App::new("js")
            .enable_js(true)
            .servers([server.url()])
            .banner(false);
        let ended = within(
            BOUND,
            "the start to fail",
            app.run_until(std::future::pending()),
        )
        .await;
        let Err(e @ Error::Start { .. }) = ended else {
            panic!("expected a failed start, got {ended:?}");
        };
        assert!(
            matches!(
                &e,
                Error::Start {
                    stage: StartStage::JetStream(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("-js"), "{e}");
    });
}

/// A bucket declared by the app is created at start (updated at the next start, as a
/// stream is) and reached from handlers with `AppHandle::key_value`.
#[test]
fn a_declared_bucket_is_created_or_updated_and_reached_from_handlers() {
    use panini::jetstream::kv::KvConfig;

    let js = JsServer::start();
    run(async {
        let make = |history: u8| {
            let mut app = App::new("states");
            app.declare_key_value(KvConfig {
                history,
                ..KvConfig::new("order_states")
            });
            app.listen("state.set", |msg: Msg<Value>, app: AppHandle| async move {
                let states = app.key_value("order_states").await?;
                let id = msg.data["id"].as_str().unwrap_or_default().to_string();
                let rev = states.put(&id, msg.data["state"].to_string()).await?;
                Ok::<_, panini::Error>(json!(rev))
            });
            app
        };
        let first = RunningApp::start(make(1), js.server()).await;
        let h = first.handle();
        assert_eq!(
            h.request("state.set", json!({"id": "o1", "state": "accepted"}))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            h.request("state.set", json!({"id": "o1", "state": "fulfilled"}))
                .await
                .unwrap(),
            2
        );
        let store = h.key_value("order_states").await.unwrap();
        assert_eq!(
            store.get("o1").await.unwrap().unwrap().value,
            br#""fulfilled""#
        );
        assert_eq!(store.history("o1").await.unwrap().len(), 1, "history 1");
        first.stop().await.unwrap();

        let second = RunningApp::start(make(5), js.server()).await;
        let status = second
            .handle()
            .key_value("order_states")
            .await
            .unwrap()
            .status()
            .await
            .unwrap();
        assert_eq!(status.history, 5, "updated at the second start");
        let missing = second.handle().key_value("nope").await;
        assert!(missing.is_err());
        second.stop().await.unwrap();
    });
}
