//! Ordered consumers against a real nats-server with `-js` (one per test): every message
//! once and in order, the start policies and filters, and the resets that keep it so
//! when the consumer is deleted under it or the server restarts.

mod common;

use std::time::Duration;

use common::jetstream::{connect, JsServer};
use common::{run, wait_for_within, with_events, within};
use panini::jetstream::{
    Context, DeliverPolicy, JetStreamError, Message, OrderedMessages, StorageType, StreamConfig,
};
use panini::rt::{FutureExt, StreamExt};
use panini::Error;

const API_TIMEOUT: Duration = Duration::from_secs(5);
const QUICK_HEARTBEAT: Duration = Duration::from_millis(300);

async fn memory_stream(js: &Context, n: usize) {
    let config = StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new("S", ["s.>"])
    };
    js.create_stream(&config).await.unwrap();
    publish(js, 1..=n).await;
}

async fn publish(js: &Context, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        js.publish(&format!("s.{}", i % 3), format!("m{i}"))
            .await
            .unwrap();
    }
}

/// The next `n` messages, each within a bound.
async fn take(messages: &mut OrderedMessages, n: usize) -> Vec<Message> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let msg = within(Duration::from_secs(10), "the next message", messages.next()).await;
        got.push(
            msg.expect("the stream ended")
                .expect("an error instead of a message"),
        );
    }
    got
}

fn sequences(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect()
}

fn texts(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.text().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_message_comes_once_in_order_then_the_live_ones() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        memory_stream(&js, 500).await;
        let mut messages = js.ordered("S").batch(64).await.unwrap();
        assert_eq!(messages.initial_pending(), 500);
        let stored = take(&mut messages, 500).await;
        assert_eq!(sequences(&stored), (1..=500).collect::<Vec<_>>());
        assert_eq!(stored[499].text(), Some("m500"));
        publish(&js, 501..=510).await;
        let live = take(&mut messages, 10).await;
        assert_eq!(sequences(&live), (501..=510).collect::<Vec<_>>());
        assert_eq!(messages.resets(), 0);
    });
}

#[test]
fn the_start_policies_filters_and_headers_only_are_honoured() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        // s.1=m1 s.2=m2 s.0=m3 s.1=m4 s.2=m5 s.0=m6
        memory_stream(&js, 6).await;
        let stream = js.stream("S");

        let mut from4 = stream.ordered().start_sequence(4).await.unwrap();
        assert_eq!(sequences(&take(&mut from4, 3).await), [4, 5, 6]);

        let mut last = stream
            .ordered()
            .deliver_policy(DeliverPolicy::Last)
            .await
            .unwrap();
        assert_eq!(texts(&take(&mut last, 1).await), ["m6"]);

        let mut per_subject = stream
            .ordered()
            .filter_subject("s.>")
            .deliver_policy(DeliverPolicy::LastPerSubject)
            .await
            .unwrap();
        assert_eq!(texts(&take(&mut per_subject, 3).await), ["m4", "m5", "m6"]);

        let mut one = stream.ordered().filter_subject("s.1").await.unwrap();
        assert_eq!(texts(&take(&mut one, 2).await), ["m1", "m4"]);

        let mut new = stream
            .ordered()
            .deliver_policy(DeliverPolicy::New)
            .await
            .unwrap();
        let mut heads = stream
            .ordered()
            .headers_only(true)
            .start_sequence(6)
            .await
            .unwrap();
        publish(&js, 7..=7).await;
        assert_eq!(texts(&take(&mut new, 1).await), ["m7"]);
        let head = take(&mut heads, 2).await;
        assert!(head[0].payload.is_empty(), "{:?}", head[0].payload);
        let size = head[0]
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Size"));
        assert_eq!(size, Some("2"));
    });
}

#[test]
fn several_filters_are_refused_on_a_server_before_2_10() {
    let server = JsServer::start();
    run(async {
        let (client, js) = connect(&server.url(), API_TIMEOUT).await;
        memory_stream(&js, 1).await;
        let several = js.ordered("S").filter_subjects(["s.1", "s.2"]).await;
        if client.server_info().version.starts_with("2.9.") {
            let err = several.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::JetStream(JetStreamError::NotSupported { since: "2.10", .. })
                ),
                "{err:?}"
            );
        }
    });
}

#[test]
fn a_consumer_deleted_under_it_is_replaced_without_gap_or_duplicate() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        memory_stream(&js, 10).await;
        let mut messages = js.ordered("S").heartbeat(QUICK_HEARTBEAT).await.unwrap();
        let mut got = take(&mut messages, 4).await;
        let name = messages.consumer_name().expect("a consumer");
        js.delete_consumer("S", &name).await.unwrap();
        publish(&js, 11..=20).await;
        got.extend(take(&mut messages, 16).await);
        assert_eq!(sequences(&got), (1..=20).collect::<Vec<_>>());
        assert!(messages.resets() >= 1, "no reset");
        assert_ne!(messages.consumer_name(), Some(name));
        // Nothing more than the 20 messages.
        let more = messages.next().or(async {
            smol::Timer::after(Duration::from_millis(300)).await;
            None
        });
        assert!(more.await.is_none(), "a message after the last one");
    });
}

/// Waits until the consumer `name` of `S` has `n` pull requests waiting.
async fn waiting(js: &Context, name: &str, n: u64) {
    within(Duration::from_secs(5), "the waiting pulls", async {
        while js.consumer("S", name).info().await.unwrap().num_waiting != n {
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[test]
fn a_gap_in_the_consumer_sequence_resets_and_redelivers_what_was_lost() {
    let server = JsServer::start();
    run(async {
        let (client, js) = connect(&server.url(), API_TIMEOUT).await;
        memory_stream(&js, 0).await;
        // One message per pull, so that another puller can take some in between.
        let mut messages = js.ordered("S").batch(1).await.unwrap();
        let name = messages.consumer_name().unwrap();
        waiting(&js, &name, 1).await;
        let thief_inbox = client.new_inbox();
        let mut thief = client.subscribe(&thief_inbox).await.unwrap();
        let next = format!("$JS.API.CONSUMER.MSG.NEXT.S.{name}");
        let pull = r#"{"batch":5,"expires":20000000000}"#;
        client
            .publish_with(&next, Some(&thief_inbox), None, pull)
            .await
            .unwrap();
        waiting(&js, &name, 2).await;
        // The server shares the messages between the two pulls: the thief takes some
        // (and may then see its pull ended by the reset, which deletes the consumer).
        publish(&js, 1..=12).await;
        let stolen = within(Duration::from_secs(5), "a stolen message", thief.next()).await;
        let stolen = stolen.unwrap();
        assert_eq!(stolen.status, None, "{stolen:?}");
        // A message after those, so that the ordered consumer sees the gap whatever it
        // was given before.
        publish(&js, 13..=13).await;
        let got = take(&mut messages, 13).await;
        assert_eq!(sequences(&got), (1..=13).collect::<Vec<_>>());
        assert!(messages.resets() >= 1, "no reset");
    });
}

#[test]
fn it_resumes_after_a_server_restart() {
    let mut server = JsServer::start();
    run(async {
        let opts = panini::client::ConnectOptions::new([server.url()])
            .reconnect_wait(Duration::from_millis(50))
            .max_reconnect_attempts(None);
        let (opts, events) = with_events(opts);
        let client = opts.connect().await.unwrap();
        let js = Context::new(client).with_timeout(API_TIMEOUT);
        js.create_stream(&StreamConfig::new("F", ["f.>"]))
            .await
            .unwrap();
        for i in 1..=3 {
            js.publish("f.x", format!("m{i}")).await.unwrap();
        }
        let mut messages = js.ordered("F").heartbeat(QUICK_HEARTBEAT).await.unwrap();
        let before = take(&mut messages, 3).await;

        server.restart();
        let reconnected = |ev: &panini::client::Event| {
            matches!(ev, panini::client::Event::Reconnected(_)).then_some(())
        };
        wait_for_within(
            &events,
            Duration::from_secs(10),
            "the reconnect",
            reconnected,
        )
        .await;
        within(Duration::from_secs(10), "the publishes", async {
            let mut i = 4;
            while i <= 6 {
                match js.publish("f.x", format!("m{i}")).await {
                    Ok(_) => i += 1,
                    // JetStream may still be recovering the stream.
                    Err(e) => {
                        eprintln!("publish after restart: {e}");
                        smol::Timer::after(Duration::from_millis(50)).await;
                    }
                }
            }
        })
        .await;
        let after = take(&mut messages, 3).await;
        let all: Vec<Message> = before.into_iter().chain(after).collect();
        assert_eq!(texts(&all), ["m1", "m2", "m3", "m4", "m5", "m6"]);
        assert_eq!(sequences(&all), [1, 2, 3, 4, 5, 6]);
        assert!(messages.resets() >= 1, "no reset");
    });
    drop(server);
}

#[test]
fn dropping_it_deletes_its_consumer() {
    let server = JsServer::start();
    run(async {
        let (_c, js) = connect(&server.url(), API_TIMEOUT).await;
        memory_stream(&js, 1).await;
        let mut messages = js.ordered("S").await.unwrap();
        take(&mut messages, 1).await;
        assert_eq!(js.stream("S").consumer_names().await.unwrap().len(), 1);
        drop(messages);
        within(Duration::from_secs(5), "the consumer's deletion", async {
            while !js.stream("S").consumer_names().await.unwrap().is_empty() {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
    });
}
