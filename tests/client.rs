//! The client against a real nats-server: publish, subscribe, request/reply, flush,
//! unsubscribe, queue groups, limits, auth.

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{run, wait_for, with_events, within, NatsServer};
use panini::client::{self, ConnectOptions, Event};
use panini::{Error, Headers};
use smol::future::zip;
use smol::stream::StreamExt;

#[test]
fn publish_reaches_a_wildcard_subscriber_with_headers() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let mut sub = client.subscribe("greet.*").await.unwrap();
        client.publish("greet.joe", "hello").await.unwrap();
        let mut h = Headers::new();
        h.append("Trace", "1").append("Trace", "2");
        client
            .publish_with("greet.ann", Some("reply.here"), Some(&h), b"hi")
            .await
            .unwrap();
        let first = sub.next().await.unwrap();
        assert_eq!(
            (first.subject.as_str(), first.payload.as_slice()),
            ("greet.joe", &b"hello"[..])
        );
        assert_eq!(first.headers, None);
        let second = sub.next().await.unwrap();
        assert_eq!(second.subject, "greet.ann");
        assert_eq!(second.reply.as_deref(), Some("reply.here"));
        let got: Vec<_> = second.headers.as_ref().unwrap().get_all("Trace").collect();
        assert_eq!(got, ["1", "2"]);
        let stats = client.statistics();
        assert_eq!((stats.in_msgs, stats.out_msgs), (2, 2));
    });
}

#[test]
fn request_gets_the_reply_and_concurrent_requests_are_matched() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let responder = client.clone();
        let mut sub = client.subscribe("math.double").await.unwrap();
        smol::spawn(async move {
            while let Some(msg) = sub.next().await {
                let n: u64 = msg.text().unwrap().parse().unwrap();
                let reply = msg.reply.unwrap();
                responder
                    .publish(&reply, (n * 2).to_string())
                    .await
                    .unwrap();
            }
        })
        .detach();
        let one = client.request("math.double", "21").await.unwrap();
        assert_eq!(one.payload, b"42");
        let asks = (0..64u64).map(|n| {
            let c = client.clone();
            smol::spawn(async move { (n, c.request("math.double", n.to_string()).await) })
        });
        let tasks: Vec<_> = asks.collect();
        for t in tasks {
            let (n, reply) = t.await;
            assert_eq!(reply.unwrap().text().unwrap(), (n * 2).to_string());
        }
    });
}

#[test]
fn no_responders_is_reported_at_once_not_as_a_timeout() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let started = Instant::now();
        let err = client
            .request_with("nobody.home", None, "x", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NoResponders), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn a_request_nobody_answers_times_out_on_time() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let _silent = client.subscribe("silent").await.unwrap();
        client.flush().await.unwrap();
        let started = Instant::now();
        let err = client
            .request_with("silent", None, "x", Duration::from_millis(300))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, Error::Timeout), "{err:?}");
        // Never early; late by at most the sweeper's 10 ms tick plus scheduling.
        assert!(
            (Duration::from_millis(300)..Duration::from_millis(700)).contains(&took),
            "a 300 ms request timed out after {took:?}"
        );
    });
}

fn fast_reconnect(url: &str) -> ConnectOptions {
    ConnectOptions::new([url])
        .reconnect_wait(Duration::from_millis(50))
        .reconnect_jitter(Duration::from_millis(10))
}

#[test]
fn unsubscribe_explicitly_on_drop_and_after_n_messages() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let mut explicit = client.subscribe("u.explicit").await.unwrap();
        let dropped = client.subscribe("u.dropped").await.unwrap();
        let mut after = client.subscribe("u.after").await.unwrap();
        let mut witness = client.subscribe("u.>").await.unwrap();
        after.unsubscribe_after(3);
        explicit.unsubscribe();
        drop(dropped);
        for subject in ["u.explicit", "u.dropped"] {
            client.publish(subject, "x").await.unwrap();
        }
        for i in 0..5 {
            client.publish("u.after", i.to_string()).await.unwrap();
        }
        // The witness sees all 7 messages, so everything was processed by the server.
        for _ in 0..7 {
            witness.next().await.unwrap();
        }
        assert!(
            explicit.next().await.is_none(),
            "explicit unsubscribe ends the stream"
        );
        let got: Vec<_> = after.map(|m| m.text().unwrap().to_string()).collect().await;
        assert_eq!(got, ["0", "1", "2"]);
    });
}

#[test]
fn queue_group_members_share_the_messages() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let a = client.queue_subscribe("jobs", "workers").await.unwrap();
        let b = client.queue_subscribe("jobs", "workers").await.unwrap();
        let mut all = client.subscribe("jobs").await.unwrap();
        for i in 0..100 {
            client.publish("jobs", i.to_string()).await.unwrap();
        }
        for _ in 0..100 {
            all.next().await.unwrap();
        }
        client.flush().await.unwrap();
        let (na, nb) = (a.pending(), b.pending());
        assert_eq!(
            na + nb,
            100,
            "each message handled exactly once by the group"
        );
        assert!(na > 0 && nb > 0, "both members got work: {na} / {nb}");
    });
}

#[test]
fn max_payload_from_info_is_enforced_before_sending() {
    let server = NatsServer::with_config("max_payload: 1024\n");
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        assert_eq!(client.server_info().max_payload, 1024);
        let err = client.publish("big", vec![0u8; 1025]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::MaxPayload {
                    size: 1025,
                    max: 1024
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_payload"));
        client.publish("big", vec![0u8; 1024]).await.unwrap();
        client.flush().await.unwrap();
        assert!(client.is_connected(), "the server did not close us");
    });
}

#[test]
fn invalid_subjects_are_refused_with_a_clear_error() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        for bad in ["", "a..b", "a b", "a.*", "a.>"] {
            let err = client.publish(bad, "x").await.unwrap_err();
            assert!(matches!(err, Error::InvalidSubject(_)), "{bad:?}: {err:?}");
        }
        for bad in ["a.>.b", "a.", ""] {
            assert!(client.subscribe(bad).await.is_err(), "{bad:?}");
        }
        assert!(client.queue_subscribe("a", "q q").await.is_err());
    });
}

#[test]
fn user_password_and_token_auth_and_wrong_credentials() {
    let users = NatsServer::with_config("authorization { user: bob, password: s3cret }\n");
    let tokens = NatsServer::with_config("authorization { token: t0k3n }\n");
    run(async {
        let url = users.url().replace("nats://", "nats://bob:s3cret@");
        let c = client::connect(url).await.unwrap();
        c.flush().await.unwrap();
        let c = ConnectOptions::new([users.url()])
            .user_and_password("bob", "s3cret")
            .connect()
            .await
            .unwrap();
        c.flush().await.unwrap();
        let c = client::connect(tokens.url().replace("nats://", "nats://t0k3n@"))
            .await
            .unwrap();
        c.flush().await.unwrap();

        let started = Instant::now();
        let err = ConnectOptions::new([users.url()])
            .user_and_password("bob", "wrong")
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Auth(t) if t.contains("Authorization Violation")),
            "{err:?}"
        );
        let err = client::connect(tokens.url()).await.unwrap_err();
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "no retry storm");
    });
}

#[test]
fn restart_mid_traffic_resumes_subscriptions_and_delivers_buffered_publishes() {
    let mut server = NatsServer::start();
    run(async {
        let (opts, events) = with_events(fast_reconnect(&server.url()));
        let client = opts.connect().await.unwrap();
        let mut sub = client.subscribe("orders.*").await.unwrap();
        let mut q = client.queue_subscribe("jobs", "w").await.unwrap();
        client.publish("orders.before", "1").await.unwrap();
        assert_eq!(sub.next().await.unwrap().subject, "orders.before");

        server.stop();
        wait_for(&events, |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        assert!(!client.is_connected());
        // Published during the outage: buffered, sent after the reconnect.
        client.publish("orders.during", "2").await.unwrap();
        client.publish("jobs", "3").await.unwrap();
        server.restart(&[]);
        wait_for(&events, |e| {
            matches!(e, Event::Reconnected(_)).then_some(())
        })
        .await;

        assert_eq!(sub.next().await.unwrap().subject, "orders.during");
        assert_eq!(q.next().await.unwrap().payload, b"3");
        client.publish("orders.after", "4").await.unwrap();
        assert_eq!(sub.next().await.unwrap().subject, "orders.after");
        assert_eq!(client.statistics().reconnects, 1);
    });
}

#[test]
fn a_full_reconnect_buffer_is_an_error_not_a_silent_drop() {
    let mut server = NatsServer::start();
    run(async {
        let (opts, events) = with_events(fast_reconnect(&server.url()).reconnect_buffer_size(1000));
        let client = opts.connect().await.unwrap();
        server.stop();
        wait_for(&events, |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        let mut accepted = 0;
        let err = loop {
            match client.publish("x", [0u8; 100]).await {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::ReconnectBufferFull), "{err:?}");
        assert!(
            (5..10).contains(&accepted),
            "{accepted} publishes fit in 1000 bytes"
        );
    });
}

#[test]
fn exhausted_reconnect_attempts_close_the_client() {
    let mut server = NatsServer::start();
    run(async {
        let (opts, events) =
            with_events(fast_reconnect(&server.url()).max_reconnect_attempts(Some(2)));
        let client = opts.connect().await.unwrap();
        server.stop();
        wait_for(&events, |e| matches!(e, Event::Closed).then_some(())).await;
        client.closed().await;
        assert!(client.is_closed());
        assert!(matches!(client.publish("x", "y").await, Err(Error::Closed)));
    });
}

#[test]
fn reconnect_disabled_means_closed_after_the_first_loss() {
    let mut server = NatsServer::start();
    run(async {
        let (opts, events) = with_events(fast_reconnect(&server.url()).reconnect(false));
        let client = opts.connect().await.unwrap();
        let mut sub = client.subscribe("s").await.unwrap();
        server.stop();
        wait_for(&events, |e| matches!(e, Event::Closed).then_some(())).await;
        assert!(
            sub.next().await.is_none(),
            "subscriptions end when the client closes"
        );
    });
}

#[test]
fn slow_consumer_drops_and_counts_while_others_keep_working() {
    let server = NatsServer::start();
    run(async {
        let (opts, events) =
            with_events(ConnectOptions::new([server.url()]).subscription_capacity(10));
        let client = opts.connect().await.unwrap();
        let slow = client.subscribe("flood").await.unwrap();
        let mut fast = client.subscribe("flood").await.unwrap();
        // The reading subscription takes each message before the next is sent, so only the
        // idle one overflows.
        for i in 0..100 {
            client.publish("flood", i.to_string()).await.unwrap();
            assert_eq!(
                fast.next().await.unwrap().text(),
                Some(i.to_string().as_str())
            );
        }
        client.flush().await.unwrap();
        let sid = wait_for(&events, |e| match e {
            Event::SlowConsumer { sid, .. } => Some(*sid),
            _ => None,
        })
        .await;
        assert_eq!(sid, slow.sid());
        assert_eq!(slow.pending(), 10, "the queue is bounded");
        assert_eq!(client.statistics().dropped_msgs, 90);
        assert!(client.is_connected());
    });
}

#[test]
fn drain_hands_over_pending_messages_then_closes() {
    let server = NatsServer::start();
    run(async {
        let client = client::connect(server.url()).await.unwrap();
        let mut sub = client.subscribe("d").await.unwrap();
        for i in 0..20 {
            client.publish("d", i.to_string()).await.unwrap();
        }
        client.flush().await.unwrap();
        let consumer = smol::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = sub.next().await {
                got.push(m.text().unwrap().to_string());
            }
            got
        });
        client.drain().await.unwrap();
        assert!(client.is_closed());
        let got = consumer.await;
        assert_eq!(got.len(), 20, "every delivered message was handed over");
        assert!(matches!(
            client.publish("d", "late").await,
            Err(Error::Closed)
        ));
    });
}

#[test]
fn flush_waits_for_the_server_to_have_processed_everything() {
    const N: usize = 1000;
    let server = NatsServer::start();
    run(async {
        let publisher = client::connect(server.url()).await.unwrap();
        let other = client::connect(server.url()).await.unwrap();
        let sub = other.subscribe("f").await.unwrap();
        other.flush().await.unwrap(); // SUB is registered on the server
        for i in 0..N {
            publisher.publish("f", i.to_string()).await.unwrap();
        }
        publisher.flush().await.unwrap();
        // The server has processed every PUB, so every MSG for `other` is queued on its
        // side ahead of the PONG to `other`'s own flush: nothing is read before asserting.
        other.flush().await.unwrap();
        assert_eq!(
            sub.pending(),
            N,
            "messages delivered when both flushes returned"
        );
        assert_eq!(publisher.statistics().out_msgs, N as u64);
    });
}

/// A responder that takes its queued requests slowly is drained: `drain` returns only
/// once it has taken every one, and every reply reaches the requester.
#[test]
fn drain_waits_for_a_slow_responder_to_take_every_queued_request() {
    const N: usize = 30;
    let server = NatsServer::start();
    run(async {
        let requester = client::connect(server.url()).await.unwrap();
        let responder = client::connect(server.url()).await.unwrap();
        let mut work = responder.subscribe("work").await.unwrap();
        responder.flush().await.unwrap();
        let inbox = requester.new_inbox();
        let mut replies = requester.subscribe(&format!("{inbox}.*")).await.unwrap();
        for i in 0..N {
            let reply = format!("{inbox}.{i}");
            requester
                .publish_with("work", Some(&reply), None, i.to_string())
                .await
                .unwrap();
        }
        // Every request is routed to the responder's connection before drain's UNSUB.
        requester.flush().await.unwrap();

        let taken = Cell::new(0);
        // Responder and drain share one task: a reply is queued in the very poll that took
        // its request, so drain cannot slip between the two.
        let serve = async {
            let mut sent = Vec::new();
            loop {
                smol::Timer::after(Duration::from_millis(5)).await;
                let Some(msg) = work.next().await else {
                    return sent;
                };
                taken.set(taken.get() + 1);
                let to = msg.reply.clone().unwrap();
                sent.push(responder.publish(&to, &msg.payload).await);
            }
        };
        let drain = async {
            let drained = responder.drain().await;
            (drained, taken.get())
        };
        let (sent, (drained, taken_when_drained)) = zip(serve, drain).await;

        drained.unwrap();
        assert!(responder.is_closed());
        assert_eq!(
            taken_when_drained, N,
            "drain returned before the responder took all"
        );
        let failed: Vec<_> = sent.iter().filter(|r| r.is_err()).collect();
        assert!(failed.is_empty(), "replies refused: {failed:?}");
        assert_eq!(sent.len(), N);
        // drain flushed the replies, so the requester's flush finds them all delivered.
        requester.flush().await.unwrap();
        assert_eq!(replies.pending(), N, "replies that reached the requester");
        for _ in 0..N {
            let reply = replies.next().await.unwrap();
            assert_eq!(reply.subject, format!("{inbox}.{}", reply.text().unwrap()));
        }
    });
}

#[test]
fn connecting_to_nothing_fails_clearly() {
    run(async {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let err = client::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NoServers(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        // Which server, and why.
        let text = err.to_string();
        let url = format!("nats://127.0.0.1:{port}");
        assert!(text.contains(&url) && text.contains("refused"), "{text}");
        let err = client::connect("ws://127.0.0.1:4222").await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl(_)), "{err:?}");
        // No credentials in the error of a URL that cannot be understood.
        let err = client::connect("nats://bob:s3cret@127.0.0.1:port")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
    });
}

/// The request inbox is made at the first request; a drain refuses new subscriptions, but
/// not that one: a handler's first request during a graceful stop still gets its reply.
#[test]
fn the_first_request_made_while_draining_gets_its_reply() {
    let server = NatsServer::start();
    run(async {
        let responder = client::connect(server.url()).await.unwrap();
        let mut svc = responder.subscribe("svc").await.unwrap();
        responder.flush().await.unwrap();
        let _serve = smol::spawn(async move {
            while let Some(msg) = svc.next().await {
                let to = msg.reply.unwrap();
                responder.publish(&to, &msg.payload).await.unwrap();
            }
        });
        let client = client::connect(server.url()).await.unwrap();
        client.drain_subscriptions().await.unwrap();
        assert!(matches!(
            client.subscribe("other").await,
            Err(Error::Draining)
        ));
        let reply = within(
            Duration::from_secs(5),
            "the reply",
            client.request("svc", "ping"),
        )
        .await
        .unwrap();
        assert_eq!(reply.payload, b"ping");
    });
}

/// A subscription that does not read holds at most its byte bound: past it, messages are
/// dropped, counted and reported, and those that fit are still there, in order.
#[test]
fn a_subscription_queue_is_bounded_in_bytes_too() {
    const SIZE: usize = 64 * 1024;
    const BOUND: usize = 1024 * 1024;
    const SENT: usize = 100;
    let server = NatsServer::start();
    run(async {
        let opts = ConnectOptions::new([server.url()]).subscription_capacity_bytes(BOUND);
        let (opts, events) = with_events(opts);
        let client = opts.connect().await.unwrap();
        let mut idle = client.subscribe("big").await.unwrap();
        for i in 0..SENT {
            let mut payload = vec![0u8; SIZE];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            client.publish("big", payload).await.unwrap();
        }
        // Every MSG for us comes before the PONG: all are dispatched when this returns.
        client.flush().await.unwrap();
        let kept = idle.pending();
        assert!(
            idle.pending_bytes() <= BOUND,
            "{} bytes queued past a bound of {BOUND}",
            idle.pending_bytes()
        );
        assert_eq!(kept, BOUND / (SIZE + "big".len()), "the messages that fit");
        let dropped = wait_for(&events, |e| match e {
            Event::SlowConsumer { sid, dropped, .. } if *sid == idle.sid() => Some(*dropped),
            _ => None,
        })
        .await;
        assert!(dropped >= 1, "reported with its count: {dropped}");
        assert_eq!(client.statistics().dropped_msgs, (SENT - kept) as u64);
        for i in 0..kept {
            let msg = idle.next().await.unwrap();
            assert_eq!(msg.payload[..8], (i as u64).to_be_bytes(), "in order");
        }
        assert_eq!(idle.pending_bytes(), 0);
        // Read, it has room again.
        client.publish("big", vec![1u8; SIZE]).await.unwrap();
        assert_eq!(idle.next().await.unwrap().payload.len(), SIZE);
    });
}

/// Reply subjects of requests carry no counter: a responder that sees one cannot tell the
/// next (and answer someone else's request in its place).
#[test]
fn request_reply_tokens_are_not_predictable() {
    const N: usize = 100;
    let server = NatsServer::start();
    run(async {
        let responder = client::connect(server.url()).await.unwrap();
        let mut svc = responder.subscribe("svc").await.unwrap();
        responder.flush().await.unwrap();
        let seen = smol::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < N {
                let msg = svc.next().await.unwrap();
                let to = msg.reply.unwrap();
                responder.publish(&to, "ok").await.unwrap();
                seen.push(to);
            }
            seen
        });
        let client = client::connect(server.url()).await.unwrap();
        for _ in 0..N {
            client.request("svc", "x").await.unwrap();
        }
        let seen = seen.await;
        let tokens: Vec<u64> = seen
            .iter()
            .map(|s| s.rsplit('.').next().unwrap().parse().unwrap())
            .collect();
        let mut distinct = tokens.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), N, "tokens repeat: {tokens:?}");
        let steps: Vec<u64> = tokens.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        let same_step = steps.windows(2).filter(|s| s[0] == s[1]).count();
        assert_eq!(same_step, 0, "tokens in arithmetic steps: {tokens:?}");
        let near = tokens
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1_000_000)
            .count();
        assert_eq!(near, 0, "tokens close to the one before: {tokens:?}");
    });
}
