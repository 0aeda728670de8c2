//! Record and replay against a real nats-server: a recorder attached to an app writes
//! what a client drove through it (a request endpoint that calls a service and publishes
//! an event, a stream endpoint, a binary payload) as JSONL linked by `seq`; replaying the
//! recording against the same app matches, and against a deliberately changed app (its
//! reply, its event's subject) the difference is found and described.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::app::{ask, RunningApp};
use common::{run, within, NatsServer};
use panini::client::{self, Client};
use panini::record::{Mismatch, RecordError, Recorder, Recording, Replay, ReplayReport};
use panini::{App, AppHandle, Message, Msg};
use serde_json::{json, Value};
use smol::stream::StreamExt;

/// What is changed in the app under test.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// Nothing.
    Same,
    /// Its reply to `orders.place` (one more in `total`).
    OtherReply,
    /// The subject of the event `orders.place` publishes.
    OtherEventSubject,
}

/// The app: `orders.place` asks `prices.get`, publishes an event stamped with the time,
/// and replies; `audit.log` (no reply) publishes `audit.stored`; `blobs.size` replies with
/// the size of any payload.
fn build_app(variant: Variant) -> App {
    let mut app = App::new("shop");
    app.listen(
        "orders.place",
        move |msg: Msg<Value>, app: AppHandle| async move {
            let price = app
                .request("prices.get", json!({"sku": msg.data["sku"]}))
                .await?;
            let qty = msg.data["qty"].as_u64().unwrap_or(1);
            let mut total = price["price"].as_u64().unwrap_or(0) * qty;
            if variant == Variant::OtherReply {
                total += 1;
            }
            let subject = match variant {
                Variant::OtherEventSubject => "orders.created",
                _ => "orders.placed",
            };
            let event = json!({"sku": msg.data["sku"], "total": total, "at": now_nanos()});
            app.publish(subject, event).await?;
            Ok::<_, panini::Error>(json!({"ok": true, "total": total}))
        },
    );
    app.listen("audit.log", |msg: Msg<Value>, app: AppHandle| async move {
        app.publish("audit.stored", json!({"entry": msg.data}))
            .await
    });
    app.listen("blobs.size", |msg: Message| async move {
        msg.payload.len().to_string()
    });
    app
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A file path in a fresh directory, removed on `Drop`.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "panini-record-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempFile(dir.join(name))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Serves `prices.get` (5 for anything) until the returned task is dropped.
async fn prices_service(client: &Client) -> smol::Task<()> {
    let mut requests = client.subscribe("prices.get").await.unwrap();
    client.flush().await.unwrap();
    let client = client.clone();
    smol::spawn(async move {
        while let Some(msg) = requests.next().await {
            if let Some(reply) = msg.reply {
                client.publish(&reply, r#"{"price":5}"#).await.unwrap();
            }
        }
    })
}

/// Records the unchanged app while a client drives it: two orders, an audit entry (no
/// reply), a binary blob. The prices service runs only while recording.
async fn record(path: &Path) {
    let server = NatsServer::start();
    let client = client::connect(server.url()).await.unwrap();
    let _prices = prices_service(&client).await;
    let mut stored = client.subscribe("audit.stored").await.unwrap();
    client.flush().await.unwrap();

    let recorder = Recorder::to_file(path).unwrap();
    let mut app = build_app(Variant::Same);
    recorder.attach(&mut app);
    let running = RunningApp::start(app, &server).await;

    let reply = ask(&client, "orders.place", br#"{"sku":"tea","qty":2}"#).await;
    assert_eq!(json(&reply.payload), json!({"ok": true, "total": 10}));
    let reply = ask(&client, "orders.place", br#"{"sku":"coffee","qty":3}"#).await;
    assert_eq!(json(&reply.payload), json!({"ok": true, "total": 15}));
    client
        .publish("audit.log", r#"{"who":"ann"}"#)
        .await
        .unwrap();
    within(Duration::from_secs(5), "audit.stored", stored.next()).await;
    let reply = ask(&client, "blobs.size", &[0xff, 0x00, 0xfe]).await;
    assert_eq!(reply.payload, b"3");

    running.stop().await.unwrap(); // its on_stop hook flushes the recording
    recorder.flush().await.unwrap();
}

/// Replays the recording at `path` against `app` (the replay attached to it) on a server
/// of its own, without the prices service.
async fn replay(mut replay: Replay, mut app: App) -> ReplayReport {
    let server = NatsServer::start();
    replay.attach(&mut app);
    let running = RunningApp::start(app, &server).await;
    let client = client::connect(server.url()).await.unwrap();
    let report = replay.run(&client).await.unwrap();
    running.stop().await.unwrap();
    report
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"))
}

/// The JSON payload of a recorded line's `payload` (a string holding JSON).
fn payload_json(line: &Value) -> Value {
    let text = line["payload"].as_str().expect("a text payload");
    json(text.as_bytes())
}

fn mismatch<'a>(report: &'a ReplayReport, seq: u64, what: &str) -> &'a Mismatch {
    report
        .mismatches
        .iter()
        .find(|m| m.seq == seq && m.what == what)
        .unwrap_or_else(|| panic!("no mismatch `{what}` for #{seq} in:\n{report}"))
}

#[test]
fn a_recording_has_every_message_reply_and_send_linked_by_seq() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.ends_with('\n'), "whole lines only");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let dir = |l: &Value| l["dir"].as_str().unwrap().to_string();
        let of = |d: &str| -> Vec<&Value> { lines.iter().filter(|l| dir(l) == d).collect() };

        assert_eq!(dir(&lines[0]), "meta");
        assert_eq!(lines[0]["version"], 1);
        assert!(lines
            .iter()
            .all(|l| ["meta", "in", "reply", "out"].contains(&dir(l).as_str())));

        // each message handled, in order, numbered from 1
        let ins = of("in");
        let seen: Vec<(u64, &str, bool)> = ins
            .iter()
            .map(|l| {
                let seq = l["seq"].as_u64().unwrap();
                (
                    seq,
                    l["subject"].as_str().unwrap(),
                    l["reply"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "orders.place", true),
                (2, "orders.place", true),
                (3, "audit.log", false),
                (4, "blobs.size", true),
            ]
        );
        assert_eq!(payload_json(ins[0]), json!({"sku": "tea", "qty": 2}));
        assert_eq!(
            ins[3]["payload"],
            json!({"b64": "/wD+"}),
            "not UTF-8: base64"
        );
        let times: Vec<f64> = ins.iter().map(|l| l["t_ms"].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

        // a reply line for each request, none for the stream message
        let replies = of("reply");
        let seqs: Vec<u64> = replies.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(payload_json(replies[0]), json!({"ok": true, "total": 10}));
        assert_eq!(replies[2]["payload"], "3");
        assert!(replies
            .iter()
            .all(|l| l["elapsed_ms"].as_f64().unwrap() >= 0.0));

        // each send linked to the message whose handler made it, with a request's response
        let outs = of("out");
        let seen: Vec<(u64, &str, &str)> = outs
            .iter()
            .map(|l| {
                let seq = l["seq"].as_u64().expect("linked to a message");
                (
                    seq,
                    l["kind"].as_str().unwrap(),
                    l["subject"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "request", "prices.get"),
                (1, "publish", "orders.placed"),
                (2, "request", "prices.get"),
                (2, "publish", "orders.placed"),
                (3, "publish", "audit.stored"),
            ]
        );
        assert_eq!(payload_json(&outs[0]["response"]), json!({"price": 5}));
        assert_eq!(payload_json(outs[1])["total"], 10);
        assert_eq!(payload_json(outs[4]), json!({"entry": {"who": "ann"}}));

        // and between its message's `in` and `reply` lines in the file
        let position = |d: &str, seq: u64| {
            lines
                .iter()
                .position(|l| dir(l) == d && l["seq"] == seq)
                .unwrap()
        };
        for out in outs.iter().filter(|l| l["seq"] != 3) {
            let seq = out["seq"].as_u64().unwrap();
            let at = lines.iter().position(|l| std::ptr::eq(l, *out)).unwrap();
            assert!(
                position("in", seq) < at && at < position("reply", seq),
                "{out}"
            );
        }
    });
}

#[test]
fn the_recording_replayed_against_the_same_app_matches() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let recorded = Replay::from_file(file.path()).unwrap().ignore("/at");
        let report = replay(recorded, build_app(Variant::Same)).await;
        report.assert_matches();
        assert_eq!((report.replayed, report.matched), (4, 4), "{report}");
    });
}

#[test]
fn a_changed_reply_is_detected_and_described() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let recorded = Replay::from_file(file.path()).unwrap().ignore("/at");
        let report = replay(recorded, build_app(Variant::OtherReply)).await;
        assert_eq!((report.replayed, report.matched), (4, 2), "{report}");
        let m = mismatch(&report, 1, "reply");
        assert_eq!(
            json(m.expected.as_bytes()),
            json!({"ok": true, "total": 10})
        );
        assert_eq!(json(m.got.as_bytes()), json!({"ok": true, "total": 11}));
        mismatch(&report, 2, "reply");
        mismatch(&report, 1, "out 2 payload"); // the event carries the total too
        let text = report.to_string();
        assert!(
            text.contains(
                r#"#1 reply: expected {"ok":true,"total":10} got {"ok":true,"total":11}"#
            ),
            "{text}"
        );
        let panic = std::panic::catch_unwind(|| report.assert_matches()).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("2 matched, 4 mismatches"), "{message}");
    });
}

#[test]
fn a_changed_event_subject_is_detected_and_described() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let recorded = Replay::from_file(file.path()).unwrap().ignore("/at");
        let report = replay(recorded, build_app(Variant::OtherEventSubject)).await;
        assert_eq!(report.mismatches.len(), 2, "{report}");
        for seq in [1, 2] {
            let m = mismatch(&report, seq, "out 2 subject");
            assert_eq!(
                (m.expected.as_str(), m.got.as_str()),
                ("orders.placed", "orders.created")
            );
        }
        assert!(report
            .to_string()
            .contains("#1 out 2 subject: expected orders.placed got orders.created"));
    });
}

#[test]
fn a_timestamp_is_a_mismatch_unless_ignored() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let recorded = Replay::from_file(file.path()).unwrap();
        let report = replay(recorded, build_app(Variant::Same)).await;
        let whats: Vec<(u64, &str)> = report
            .mismatches
            .iter()
            .map(|m| (m.seq, m.what.as_str()))
            .collect();
        assert_eq!(
            whats,
            [(1, "out 2 payload"), (2, "out 2 payload")],
            "{report}"
        );

        // the same, with the field blanked by a closure instead of a pointer
        let recorded = Replay::from_file(file.path()).unwrap().normalize(|v| {
            if let Some(at) = v.get_mut("at") {
                *at = Value::Null;
            }
        });
        replay(recorded, build_app(Variant::Same))
            .await
            .assert_matches();
    });
}

#[test]
fn live_requests_go_to_nats_and_without_the_service_the_reply_differs() {
    run(async {
        let file = TempFile::new("shop.jsonl");
        record(file.path()).await;
        let recorded = Replay::from_file(file.path())
            .unwrap()
            .ignore("/at")
            .live_requests(true);
        let report = replay(recorded, build_app(Variant::Same)).await;
        // no prices service: the handler fails, so an error reply and no event
        let m = mismatch(&report, 1, "reply");
        assert!(m.got.contains("no responders"), "{report}");
        let m = mismatch(&report, 1, "out 2 missing");
        assert!(m.expected.starts_with("publish orders.placed {"), "{m:?}");
        assert_eq!(m.got, "nothing");
    });
}

#[test]
fn run_before_attach_is_an_error() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let replay = Replay::new(Recording::default());
        assert!(matches!(
            replay.run(&client).await,
            Err(RecordError::NotAttached)
        ));
    });
}

#[test]
fn a_failing_file_stops_the_recording_not_the_app() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("no /dev/full here: skipped");
        return;
    }
    let server = NatsServer::start();
    run(async {
        let recorder = Recorder::to_file(full).unwrap();
        let mut app = build_app(Variant::Same);
        recorder.attach(&mut app);
        let running = RunningApp::start(app, &server).await;
        let client = client::connect(server.url()).await.unwrap();
        for _ in 0..3 {
            let reply = ask(&client, "blobs.size", b"four").await;
            assert_eq!(reply.payload, b"4");
        }
        let err = recorder.flush().await.unwrap_err();
        assert_eq!(err.raw_os_error(), None, "kept as kind and text: {err}");
        assert!(err.to_string().contains("space"), "{err}");
        running.stop().await.unwrap(); // the error was logged once, when it happened
    });
}
