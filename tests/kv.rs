//! Key-Value buckets against a real nats-server with `-js` (one per test): buckets made,
//! bound and deleted; put, get, create, update, delete and purge with their revisions and
//! typed conflicts; history, keys and watches; key checks; reads through direct get and
//! through `STREAM.MSG.GET` on a bucket that does not allow direct get.

mod common;

use std::time::{Duration, SystemTime};

use common::jetstream::{connect, JsServer};
use common::{run, within};
use panini::jetstream::kv::{Entry, KvConfig, KvError, Operation, Store, Watch, WatchEvent};
use panini::jetstream::{
    Context, DiscardPolicy, ErrorCode, JetStreamError, StorageType, StreamConfig,
};
use panini::rt::StreamExt;
use panini::Error;

const API_TIMEOUT: Duration = Duration::from_secs(5);

fn memory(bucket: &str, history: u8) -> KvConfig {
    KvConfig {
        history,
        storage: StorageType::Memory,
        ..KvConfig::new(bucket)
    }
}

async fn bucket(js: &Context, name: &str, history: u8) -> Store {
    js.create_key_value(&memory(name, history)).await.unwrap()
}

fn kv_error(err: &Error) -> &KvError {
    err.kv_error()
        .unwrap_or_else(|| panic!("not a KvError: {err:?}"))
}

fn values(entries: &[Entry]) -> Vec<(String, Operation)> {
    entries
        .iter()
        .map(|e| (e.text().unwrap_or_default().to_string(), e.operation))
        .collect()
}

async fn next_event(watch: &mut Watch) -> WatchEvent {
    let event = within(Duration::from_secs(10), "a watch event", watch.next()).await;
    event.expect("the watch ended").expect("a watch error")
}

/// The next event, which must be an entry: its key, value and operation.
async fn next_entry(watch: &mut Watch) -> (String, String, Operation) {
    match next_event(watch).await {
        WatchEvent::Entry(e) => (
            e.key.clone(),
            e.text().unwrap_or_default().into(),
            e.operation,
        ),
        other => panic!("not an entry: {other:?}"),
    }
}

fn entry(key: &str, value: &str, op: Operation) -> (String, String, Operation) {
    (key.into(), value.into(), op)
}

#[test]
fn buckets_are_created_bound_and_deleted() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let config = KvConfig {
            ttl: Duration::from_secs(60),
            ..memory("cfg", 5)
        };
        let kv = js.create_key_value(&config).await.unwrap();
        assert_eq!(kv.bucket(), "cfg");
        assert!(kv.uses_direct_get());
        let stream = js.stream("KV_cfg").info().await.unwrap().config;
        assert_eq!(stream.subjects, ["$KV.cfg.>"]);
        assert_eq!(stream.max_msgs_per_subject, 5);
        assert_eq!(stream.discard, DiscardPolicy::New);
        assert!(stream.allow_rollup_hdrs && stream.deny_delete && stream.allow_direct);
        assert_eq!(stream.max_age, Duration::from_secs(60));

        // The same configuration again is fine; another one is not.
        js.create_key_value(&config).await.unwrap();
        let err = js.create_key_value(&memory("cfg", 2)).await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::BucketExists("cfg".into()));

        let bound = js.key_value("cfg").await.unwrap();
        bound.put("a", "1").await.unwrap();
        let status = kv.status().await.unwrap();
        assert_eq!((status.values, status.history), (1, 5));
        assert_eq!(status.ttl, Duration::from_secs(60));

        js.delete_key_value("cfg").await.unwrap();
        let err = js.key_value("cfg").await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::BucketNotFound("cfg".into()));
        let err = js.delete_key_value("cfg").await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::BucketNotFound("cfg".into()));

        let plain = StreamConfig {
            storage: StorageType::Memory,
            ..StreamConfig::new("KV_plain", ["plain.>"])
        };
        js.create_stream(&plain).await.unwrap();
        let err = js.key_value("plain").await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::NotABucket("plain".into()));
    });
}

#[test]
fn put_then_get_gives_the_entry() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 3).await;
        let before = SystemTime::now() - Duration::from_secs(1);
        let r1 = kv.put("users.42", "ann").await.unwrap();
        let r2 = kv.put("users.42", [0u8, 255, 1]).await.unwrap();
        assert!(r2 > r1, "{r1} then {r2}");
        let got = kv.get("users.42").await.unwrap().expect("a value");
        assert_eq!((got.bucket.as_str(), got.key.as_str()), ("b", "users.42"));
        assert_eq!(
            (got.value.as_slice(), got.revision),
            (&[0u8, 255, 1][..], r2)
        );
        assert_eq!((got.operation, got.delta), (Operation::Put, 0));
        assert!(got.created > before && got.created < SystemTime::now() + Duration::from_secs(1));
        assert_eq!(kv.get("users.43").await.unwrap(), None);

        let old = kv.get_revision("users.42", r1).await.unwrap().unwrap();
        assert_eq!((old.text(), old.revision), (Some("ann"), r1));
        let other = kv.put("other", "x").await.unwrap();
        assert_eq!(kv.get_revision("users.42", other).await.unwrap(), None);
        assert_eq!(kv.get_revision("users.42", 999).await.unwrap(), None);
    });
}

#[test]
fn create_only_when_absent_and_again_after_a_delete_or_purge() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 5).await;
        let first = kv.create("k", "1").await.unwrap();
        let err = kv.create("k", "2").await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::KeyExists { key: "k".into() });
        assert!(kv_error(&err).is_conflict());
        assert_eq!(kv.get("k").await.unwrap().unwrap().revision, first);

        kv.delete("k").await.unwrap();
        let again = kv.create("k", "3").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().unwrap().text(), Some("3"));
        assert!(again > first);

        kv.purge("k").await.unwrap();
        kv.create("k", "4").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().unwrap().text(), Some("4"));
    });
}

#[test]
fn update_needs_the_current_revision() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 5).await;
        let r1 = kv.update("k", "new", 0).await.unwrap();
        let r2 = kv.update("k", "second", r1).await.unwrap();

        let err = kv.update("k", "stale", r1).await.unwrap_err();
        match kv_error(&err) {
            KvError::WrongRevision {
                key,
                expected,
                error,
            } => {
                assert_eq!((key.as_str(), *expected), ("k", r1));
                assert_eq!(error.err_code, ErrorCode::WRONG_LAST_SEQUENCE);
            }
            other => panic!("{other:?}"),
        }
        assert!(kv_error(&err).is_conflict());
        assert_eq!(kv.get("k").await.unwrap().unwrap().text(), Some("second"));

        let r3 = kv.update("k", "third", r2).await.unwrap();
        assert_eq!(kv.get("k").await.unwrap().unwrap().revision, r3);
        let err = kv.delete_expecting("k", r2).await.unwrap_err();
        assert!(matches!(kv_error(&err), KvError::WrongRevision { .. }));
        kv.delete_expecting("k", r3).await.unwrap();
        assert_eq!(kv.get("k").await.unwrap(), None);
    });
}

#[test]
fn delete_leaves_a_marker_in_the_history_and_purge_only_the_marker() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 10).await;
        kv.put("d", "1").await.unwrap();
        kv.put("d", "2").await.unwrap();
        let marker = kv.delete("d").await.unwrap();
        assert_eq!(kv.get("d").await.unwrap(), None);
        let last = kv.entry("d").await.unwrap().expect("the marker");
        assert_eq!((last.operation, last.revision), (Operation::Delete, marker));
        assert!(last.value.is_empty());
        let history = kv.history("d").await.unwrap();
        assert_eq!(
            values(&history),
            [
                ("1".into(), Operation::Put),
                ("2".into(), Operation::Put),
                (String::new(), Operation::Delete)
            ]
        );

        kv.put("p", "1").await.unwrap();
        kv.put("p", "2").await.unwrap();
        let marker = kv.purge("p").await.unwrap();
        let history = kv.history("p").await.unwrap();
        assert_eq!(values(&history), [(String::new(), Operation::Purge)]);
        assert_eq!(history[0].revision, marker);
        assert_eq!(kv.get("p").await.unwrap(), None);
        assert!(kv.history("never").await.unwrap().is_empty());
    });
}

#[test]
fn history_keeps_as_many_revisions_as_configured() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "h", 3).await;
        for i in 1..=5 {
            kv.put("k", format!("v{i}")).await.unwrap();
        }
        let history = kv.history("k").await.unwrap();
        let texts: Vec<_> = history.iter().map(|e| e.text().unwrap()).collect();
        assert_eq!(texts, ["v3", "v4", "v5"]);
        let deltas: Vec<_> = history.iter().map(|e| e.delta).collect();
        assert_eq!(deltas, [2, 1, 0]);
        assert!(history.windows(2).all(|w| w[0].revision < w[1].revision));

        let one = bucket(&js, "one", 0).await;
        one.put("k", "a").await.unwrap();
        one.put("k", "b").await.unwrap();
        assert_eq!(
            values(&one.history("k").await.unwrap()),
            [("b".into(), Operation::Put)]
        );
    });
}

#[test]
fn keys_lists_the_live_keys_only() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 5).await;
        assert!(kv.keys().await.unwrap().is_empty());
        for key in ["c", "a", "b.x", "d", "e"] {
            kv.put(key, "v").await.unwrap();
        }
        kv.put("a", "again").await.unwrap();
        kv.delete("d").await.unwrap();
        kv.purge("e").await.unwrap();
        assert_eq!(kv.keys().await.unwrap(), ["a", "b.x", "c"]);
    });
}

#[test]
fn a_watch_gives_the_last_values_a_marker_then_changes_in_order() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "w", 5).await;
        kv.put("a", "1").await.unwrap();
        kv.put("b", "1").await.unwrap();
        kv.put("a", "2").await.unwrap();
        kv.put("gone", "1").await.unwrap();
        kv.delete("gone").await.unwrap();

        let mut all = kv.watch_all().await.unwrap();
        let mut only_a = kv.watch("a").await.unwrap();
        assert_eq!(next_entry(&mut all).await, entry("b", "1", Operation::Put));
        assert_eq!(next_entry(&mut all).await, entry("a", "2", Operation::Put));
        assert_eq!(
            next_entry(&mut all).await,
            entry("gone", "", Operation::Delete)
        );
        assert_eq!(next_event(&mut all).await, WatchEvent::InitialDone);
        assert_eq!(
            next_entry(&mut only_a).await,
            entry("a", "2", Operation::Put)
        );
        assert_eq!(next_event(&mut only_a).await, WatchEvent::InitialDone);

        kv.put("b", "2").await.unwrap();
        kv.delete("a").await.unwrap();
        kv.put("c", "1").await.unwrap();
        kv.purge("b").await.unwrap();
        assert_eq!(next_entry(&mut all).await, entry("b", "2", Operation::Put));
        assert_eq!(
            next_entry(&mut all).await,
            entry("a", "", Operation::Delete)
        );
        assert_eq!(next_entry(&mut all).await, entry("c", "1", Operation::Put));
        assert_eq!(next_entry(&mut all).await, entry("b", "", Operation::Purge));
        assert_eq!(
            next_entry(&mut only_a).await,
            entry("a", "", Operation::Delete)
        );
    });
}

#[test]
fn a_watch_of_nothing_says_so_at_once_then_sees_what_comes() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "w", 1).await;
        kv.put("other.x", "1").await.unwrap();
        let mut users = kv.watch("users.*").await.unwrap();
        assert_eq!(next_event(&mut users).await, WatchEvent::InitialDone);
        kv.put("users.deep.no", "1").await.unwrap();
        kv.put("users.1", "ann").await.unwrap();
        assert_eq!(
            next_entry(&mut users).await,
            entry("users.1", "ann", Operation::Put)
        );
    });
}

#[test]
fn bad_names_and_keys_are_refused_before_anything_is_sent() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "b", 1).await;
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a.>", "ü"] {
            let err = kv.put(bad, "v").await.unwrap_err();
            assert_eq!(kv_error(&err), &KvError::InvalidKey(bad.into()), "{bad:?}");
            assert!(kv.get(bad).await.is_err(), "{bad:?}");
            assert!(kv.create(bad, "v").await.is_err(), "{bad:?}");
            assert!(kv.delete(bad).await.is_err(), "{bad:?}");
            assert!(kv.history(bad).await.is_err(), "{bad:?}");
        }
        for bad in ["a..b", "a.>.b", ""] {
            let err = kv.watch(bad).await.unwrap_err();
            assert!(matches!(kv_error(&err), KvError::InvalidKey(_)), "{bad:?}");
        }
        for bad in ["", "a.b", "a b", "KV*"] {
            let err = js.create_key_value(&KvConfig::new(bad)).await.unwrap_err();
            assert!(
                matches!(kv_error(&err), KvError::InvalidBucket(_)),
                "{bad:?}"
            );
            assert!(js.key_value(bad).await.is_err());
        }
        let err = js.create_key_value(&memory("deep", 65)).await.unwrap_err();
        assert_eq!(kv_error(&err), &KvError::InvalidHistory(65));
        assert!(kv.keys().await.unwrap().is_empty(), "nothing was written");
    });
}

#[test]
fn a_bucket_without_direct_get_is_read_through_msg_get() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        // A bucket as clients made them before nats-server 2.9: no allow_direct.
        let old = StreamConfig {
            storage: StorageType::Memory,
            max_msgs_per_subject: 3,
            discard: DiscardPolicy::New,
            allow_rollup_hdrs: true,
            deny_delete: true,
            ..StreamConfig::new("KV_old", ["$KV.old.>"])
        };
        js.create_stream(&old).await.unwrap();
        let kv = js.key_value("old").await.unwrap();
        assert!(!kv.uses_direct_get());
        let r1 = kv.put("k", "1").await.unwrap();
        kv.put("k", "2").await.unwrap();
        let got = kv.get("k").await.unwrap().unwrap();
        assert_eq!((got.text(), got.key.as_str()), (Some("2"), "k"));
        assert!(got.created > SystemTime::now() - Duration::from_secs(10));
        assert_eq!(
            kv.get_revision("k", r1).await.unwrap().unwrap().text(),
            Some("1")
        );
        assert_eq!(kv.get("none").await.unwrap(), None);
        kv.delete("k").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap(), None);
        assert_eq!(
            kv.entry("k").await.unwrap().unwrap().operation,
            Operation::Delete
        );
        let err = kv.create("k", "x").await;
        assert!(err.is_ok(), "{err:?}");
    });
}

#[test]
fn a_bucket_in_a_domain() {
    let server = JsServer::with_domain("hub");
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let js = js.with_domain("hub");
        let kv = bucket(&js, "d", 1).await;
        let rev = kv.put("k", "v").await.unwrap();
        let got = kv.get("k").await.unwrap().unwrap();
        assert_eq!((got.text(), got.revision), (Some("v"), rev));
        assert_eq!(kv.keys().await.unwrap(), ["k"]);
    });
}

#[test]
fn a_deleted_bucket_ends_its_watch_with_an_error() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        let kv = bucket(&js, "gone", 1).await;
        let mut watch = kv.watch_all().await.unwrap();
        assert_eq!(next_event(&mut watch).await, WatchEvent::InitialDone);
        // Once its pull waits, the server answers it when the stream goes (without one,
        // only the missed heartbeats would tell, after 10 s).
        within(Duration::from_secs(5), "the watch's pull", async {
            loop {
                let consumers = js.stream("KV_gone").consumers().await.unwrap();
                if consumers.iter().any(|c| c.num_waiting > 0) {
                    break;
                }
                smol::Timer::after(Duration::from_millis(10)).await;
            }
        })
        .await;
        js.delete_key_value("gone").await.unwrap();
        let end = within(Duration::from_secs(10), "the watch's end", watch.next()).await;
        match end {
            Some(Err(Error::JetStream(JetStreamError::Api(api)))) => {
                assert_eq!(api.err_code, ErrorCode::STREAM_NOT_FOUND)
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_watch_resumes_after_a_server_restart() {
    let mut server = JsServer::start();
    run(async {
        let opts = panini::client::ConnectOptions::new([server.url()])
            .reconnect_wait(Duration::from_millis(50))
            .max_reconnect_attempts(None);
        let (opts, events) = common::with_events(opts);
        let client = opts.connect().await.unwrap();
        let js = Context::new(client).with_timeout(API_TIMEOUT);
        let kv = js.create_key_value(&KvConfig::new("file")).await.unwrap();
        kv.put("a", "1").await.unwrap();
        let mut watch = kv.watch_all().await.unwrap();
        assert_eq!(
            next_entry(&mut watch).await,
            entry("a", "1", Operation::Put)
        );
        assert_eq!(next_event(&mut watch).await, WatchEvent::InitialDone);

        server.restart();
        let reconnected = |ev: &panini::client::Event| {
            matches!(ev, panini::client::Event::Reconnected(_)).then_some(())
        };
        common::wait_for_within(
            &events,
            Duration::from_secs(10),
            "the reconnect",
            reconnected,
        )
        .await;
        within(Duration::from_secs(10), "the put", async {
            // JetStream may still be recovering the stream.
            while let Err(e) = kv.put("a", "2").await {
                eprintln!("put after restart: {e}");
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(
            next_entry(&mut watch).await,
            entry("a", "2", Operation::Put)
        );
        assert_eq!(kv.get("a").await.unwrap().unwrap().text(), Some("2"));
    });
    drop(server);
}
