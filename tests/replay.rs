//! What the client sends across a reconnect, checked op by op on a fake server: nothing
//! that returned `Ok` is lost or sent twice, and the new connection gets its SUBs first,
//! then each buffered publish once and in order, then one PING per flush still waiting.

mod common;
#[path = "common/fake.rs"]
mod fake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, wait_for, with_events, within};
use fake::{FakeServer, Handshake, Op};
use panini::client::{Client, ConnectOptions, Event};
use panini::proto::{parse_client_op, ClientOp, Limits, Status};
use panini::Error;
use smol::future;

fn options(url: &str) -> ConnectOptions {
    ConnectOptions::new([url])
        .reconnect_wait(Duration::from_millis(50))
        .reconnect_jitter(Duration::ZERO)
        .max_reconnect_attempts(None)
}

#[test]
fn replay_is_subs_then_each_buffered_publish_once_in_order_then_one_ping_per_flush() {
    run(async {
        let fake = FakeServer::start(Handshake::normal()).await;
        let addr = fake.url().trim_start_matches("nats://").to_string();
        // Room for exactly five of these publishes while disconnected.
        let one = {
            let mut wire = Vec::new();
            ClientOp::Pub(panini::proto::Pub {
                subject: b"p",
                reply: None,
                headers: None,
                payload: b"0",
            })
            .encode(&mut wire);
            wire.len()
        };
        let (opts, events) = with_events(options(fake.url()).reconnect_buffer_size(5 * one));
        let client = opts.connect().await.unwrap();
        let mut conn = fake.next_conn().await;
        let _a = client.subscribe("a").await.unwrap();
        let _b = client.queue_subscribe("b", "q").await.unwrap();
        conn.wait_for(
            "SUB b",
            |op| matches!(op, Op::Sub { subject, .. } if subject == "b"),
        )
        .await;

        // The server goes away and does not come back yet.
        fake.stop().await;
        conn.close();
        wait_for(&events, |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        let mut outcomes = Vec::new();
        for i in 0..8u8 {
            outcomes.push(
                client
                    .publish("p", [b'0' + i])
                    .await
                    .map_err(|e| e.to_string()),
            );
        }
        let refused = Err(Error::ReconnectBufferFull.to_string());
        assert_eq!(outcomes[..5], [Ok(()), Ok(()), Ok(()), Ok(()), Ok(())]);
        assert_eq!(outcomes[5..], [refused.clone(), refused.clone(), refused]);
        // Two flushes wait while disconnected: polled once, each has queued its PING.
        let mut flushes = [Box::pin(client.flush()), Box::pin(client.flush())];
        for flush in &mut flushes {
            assert!(future::poll_once(flush.as_mut()).await.is_none());
        }

        let fake = FakeServer::start_at(&addr, Handshake::normal()).await;
        let mut conn = fake.next_conn().await;
        // Byte for byte: the SUBs (in either order), each buffered publish once and in
        // order, one PING per waiting flush, and nothing else.
        let subs = ["SUB a 1\r\n", "SUB b q 2\r\n"];
        let mut publishes = String::new();
        for i in 0..5 {
            publishes.push_str(&format!("PUB p 1\r\n{i}\r\n"));
        }
        let tail = format!("{publishes}PING\r\nPING\r\n");
        let want = [subs.concat() + &tail, subs[1].to_string() + subs[0] + &tail];
        let got = conn.raw_exact(want[0].len()).await;
        let got = String::from_utf8_lossy(&got);
        assert!(want.contains(&got.to_string()), "replayed {got:?}");
        conn.send(b"PONG\r\nPONG\r\n").await;
        for flush in flushes {
            flush.await.unwrap();
        }
        // Nothing else was queued: a new flush's PING is the very next op.
        let again = {
            let c = client.clone();
            smol::spawn(async move { c.flush().await })
        };
        assert_eq!(conn.expect_op().await, Op::Ping);
        conn.send(b"PONG\r\n").await;
        again.await.unwrap();
        assert_eq!(client.statistics().lost_publishes, 0);
        client.close().await;
    });
}

/// Publishes of `size` bytes carrying their index, from a task of their own; returns the
/// task (its output: how many were refused with `ReconnectBufferFull`) and the count
/// published so far.
fn publish_many(client: &Client, n: usize, size: usize) -> (smol::Task<usize>, Arc<AtomicUsize>) {
    let done = Arc::new(AtomicUsize::new(0));
    let count = done.clone();
    let client = client.clone();
    let task = smol::spawn(async move {
        let mut refused = 0;
        for i in 0..n {
            let mut payload = format!("{i:08}").into_bytes();
            payload.resize(size, b'.');
            match client.publish("load", &payload).await {
                Ok(()) => {}
                Err(Error::ReconnectBufferFull) => refused += 1,
                Err(e) => panic!("publish {i}: {e}"),
            }
            count.fetch_add(1, Ordering::SeqCst);
        }
        refused
    });
    (task, done)
}

/// The indexes of the whole PUBs in `bytes` (an op cut at the end is ignored).
fn indexes(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok(Status::Complete((op, used))) = parse_client_op(rest, &Limits::default()) {
        if let ClientOp::Pub(p) = op {
            let text = std::str::from_utf8(&p.payload[..8]).unwrap();
            out.push(text.parse().unwrap());
        }
        rest = &rest[used..];
    }
    out
}

/// The tests that fill a socket run one at a time: their tasks share smol's one executor
/// thread, and one's 40 MB would starve the other's publisher into a false stall.
static FILLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A connection cut while the client's connection task holds a half-written batch.
struct Cut {
    fake: FakeServer,
    client: Client,
    /// Publishes reported lost at the disconnect (`Event::PublishesLost`).
    lost: u64,
    /// The publishing task; its output is how many publishes were refused.
    publisher: smol::Task<usize>,
    /// The indexes the first connection got, in order.
    got: Vec<usize>,
}

/// `N` publishes of 1 KiB against a server that stops reading after the handshake: the
/// client's socket fills, its connection task is left holding a batch it cannot finish,
/// and publishers wait for room. Then the server ends the connection, and reads what the
/// client's socket still delivers.
async fn cut_mid_batch(reconnect_buffer: usize) -> Cut {
    let fake = FakeServer::start(Handshake::normal()).await;
    let (opts, events) = with_events(options(fake.url()).reconnect_buffer_size(reconnect_buffer));
    let client = opts.connect().await.unwrap();
    let mut first = fake.next_conn().await;
    let (publisher, published) = publish_many(&client, N, 1024);
    wait_until_stalled(&published, N).await;
    first.send(b"-ERR 'Unknown Protocol Operation'\r\n").await;
    // Read nothing until the client has handled the loss: a socket drained before that
    // would let it write its outbox out first.
    let mut lost = 0;
    within(Duration::from_secs(5), "the disconnect", async {
        loop {
            match events.recv().await.expect("events") {
                Event::PublishesLost { count, .. } => lost += count,
                Event::Disconnected { .. } => return,
                _ => {}
            }
        }
    })
    .await;
    let got = indexes(&first.raw_until_closed().await);
    assert!(
        got.len() < N,
        "the first connection cannot have taken everything"
    );
    Cut {
        fake,
        client,
        lost,
        publisher,
        got,
    }
}

const N: usize = 40_000;

/// Reads the next connection's publishes into `got` until it holds `until` of them,
/// answering PINGs; returns the connection.
async fn collect(fake: &FakeServer, got: &mut Vec<usize>, until: usize) -> fake::FakeConn {
    let mut conn = fake.next_conn().await;
    while got.len() < until {
        match conn.expect_op().await {
            Op::Pub { payload, .. } => {
                got.push(std::str::from_utf8(&payload[..8]).unwrap().parse().unwrap())
            }
            Op::Ping => conn.send(b"PONG\r\n").await,
            _ => {}
        }
    }
    conn
}

#[test]
fn the_batch_being_written_when_the_connection_dies_is_sent_on_the_next_one() {
    let _one_at_a_time = FILLING.lock().unwrap_or_else(|e| e.into_inner());
    run(async {
        let mut cut = cut_mid_batch(1 << 30).await;
        let on_first = cut.got.len();
        assert_eq!(
            cut.publisher.await,
            0,
            "nothing refused with a large reconnect buffer"
        );
        let _second = collect(&cut.fake, &mut cut.got, N).await;
        let missing = (0..N).filter(|i| cut.got.binary_search(i).is_err()).count();
        assert_eq!(
            cut.got,
            (0..N).collect::<Vec<_>>(),
            "every publish once and in order ({on_first} on the first connection, {missing} missing)"
        );
        assert_eq!(cut.client.statistics().lost_publishes, 0);
        cut.client.close().await;
    });
}

#[test]
fn publishes_past_the_reconnect_buffer_at_a_disconnect_are_counted_and_reported() {
    let _one_at_a_time = FILLING.lock().unwrap_or_else(|e| e.into_inner());
    run(async {
        let mut cut = cut_mid_batch(256 * 1024).await;
        let lost = cut.lost;
        let refused = cut.publisher.await;
        // Everything the publisher got `Ok` for is delivered or reported lost.
        let delivered = N - refused - lost as usize;
        let second = collect(&cut.fake, &mut cut.got, delivered).await;
        assert!(lost > 0, "more was waiting than 256 KiB");
        assert!(
            cut.got.windows(2).all(|w| w[0] < w[1]),
            "in order, none twice"
        );
        assert_eq!(cut.client.statistics().lost_publishes, lost);
        // And nothing more: a flush's PING is the next op.
        let mut second = second;
        let flush = {
            let c = cut.client.clone();
            smol::spawn(async move { c.flush().await })
        };
        let (_, before) = second
            .wait_for("the flush's PING", |op| *op == Op::Ping)
            .await;
        assert!(
            !before.iter().any(|op| matches!(op, Op::Pub { .. })),
            "a publish beyond the {delivered} expected: got + lost + refused must be {N}"
        );
        second.send(b"PONG\r\n").await;
        flush.await.unwrap_or_else(|e| panic!("{e}"));
        cut.client.close().await;
    });
}

/// Waits (bounded) until `cond` holds.
async fn wait_until(cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < until, "condition not met within 5 s");
        smol::Timer::after(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until the publisher stops making progress short of `n`: the client's
/// socket and outbox are full.
async fn wait_until_stalled(published: &AtomicUsize, n: usize) {
    // Publishers wait only once the outbox holds its 4 MiB soft limit (1 KiB each).
    const AT_LEAST: usize = 4 * 1024;
    let until = Instant::now() + Duration::from_secs(20);
    let mut last = (published.load(Ordering::SeqCst), Instant::now());
    loop {
        smol::Timer::after(Duration::from_millis(20)).await;
        let now = published.load(Ordering::SeqCst);
        assert!(
            now < n,
            "the client wrote everything into a server that does not read"
        );
        assert!(
            Instant::now() < until,
            "the publisher never stalled ({now} published)"
        );
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= AT_LEAST && last.1.elapsed() > Duration::from_millis(300) {
            return;
        }
    }
}

#[test]
fn requests_across_a_reconnect_get_their_reply_or_fail_fast_with_connection_lost() {
    run(async {
        let fake = FakeServer::start(Handshake::normal()).await;
        let addr = fake.url().trim_start_matches("nats://").to_string();
        let (opts, events) = with_events(
            options(fake.url())
                .request_timeout(Duration::from_secs(10))
                .reconnect_grace(Duration::from_millis(300)),
        );
        let client = opts.connect().await.unwrap();
        let mut conn = fake.next_conn().await;
        let ask = |subject: &'static str| {
            let c = client.clone();
            smol::spawn(async move {
                let started = Instant::now();
                (c.request(subject, "q").await, started.elapsed())
            })
        };
        // Two requests written on the first connection, which then dies.
        let lost = ask("svc.lost");
        let late = ask("svc.late");
        let mut replies = Vec::new();
        while replies.len() < 2 {
            if let Op::Pub { reply: Some(r), .. } = conn.expect_op().await {
                replies.push(r);
            }
        }
        fake.stop().await;
        conn.close();
        wait_for(&events, |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        // One made while disconnected waits in the reconnect buffer.
        let buffered = ask("svc.buffered");
        wait_until(|| client.statistics().out_msgs == 3).await;

        let fake = FakeServer::start_at(&addr, Handshake::normal()).await;
        let mut conn = fake.next_conn().await;
        let reconnected = Instant::now();
        let (sub, _) = conn
            .wait_for("the inbox SUB", |op| matches!(op, Op::Sub { .. }))
            .await;
        let Op::Sub { sid, .. } = sub else {
            unreachable!()
        };
        let (op, skipped) = conn
            .wait_for("the buffered request", |op| matches!(op, Op::Pub { .. }))
            .await;
        assert!(
            skipped.is_empty(),
            "the SUB comes right before it: {skipped:?}"
        );
        let Op::Pub {
            subject,
            reply: Some(reply),
            ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!(subject, "svc.buffered", "the lost requests are not resent");
        // The late one's reply comes within the grace; the lost one hears nothing; the
        // buffered one (sent on this connection: not at risk) is answered well after the
        // grace, like a slow service, and still gets its reply.
        let answer = |to: &str, text: &str| format!("MSG {to} {sid} {}\r\n{text}\r\n", text.len());
        conn.send(answer(&replies[1], "late").as_bytes()).await;
        let (got, _) = late.await;
        assert_eq!(got.unwrap().payload, b"late");
        let (got, took) = lost.await;
        assert!(matches!(got, Err(Error::ConnectionLost)), "{got:?}");
        let after = reconnected.elapsed();
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(2),
            "failed {after:?} after the reconnect ({took:?} after it was sent)"
        );
        conn.send(answer(&reply, "slow").as_bytes()).await;
        let (got, _) = buffered.await;
        assert_eq!(got.unwrap().payload, b"slow");
        let _keep = conn.serve_pongs();
        client.close().await;
    });
}

/// A request that waits for room in the outbox when the connection dies is sent once, on
/// the next connection, and gets its reply however slow the service. (Before requests
/// registered under the outbox lock, one that got room only after the reconnect could be
/// marked lost; that needs the reconnect to beat the request's task, which this test
/// cannot force: it guards the outcome, it does not reproduce that race.)
#[test]
fn a_request_waiting_for_room_across_a_reconnect_is_not_at_risk() {
    let _one_at_a_time = FILLING.lock().unwrap_or_else(|e| e.into_inner());
    run(async {
        let fake = FakeServer::start(Handshake::normal()).await;
        let (opts, events) = with_events(
            options(fake.url())
                .reconnect_buffer_size(1 << 30)
                .reconnect_grace(Duration::from_millis(200))
                .request_timeout(Duration::from_secs(10)),
        );
        let client = opts.connect().await.unwrap();
        let mut first = fake.next_conn().await;
        let (publisher, published) = publish_many(&client, N, 1024);
        wait_until_stalled(&published, N).await;
        // The outbox is full: this request waits for room. (The pause lets it get there; if
        // it did not, the request is merely queued, and the outcome must be the same.)
        let asked = {
            let c = client.clone();
            smol::spawn(async move { c.request("svc.slow", "q").await })
        };
        smol::Timer::after(Duration::from_millis(50)).await;
        first.send(b"-ERR 'Unknown Protocol Operation'\r\n").await;
        within(Duration::from_secs(5), "the disconnect", async {
            while !matches!(events.recv().await, Ok(Event::Disconnected { .. })) {}
        })
        .await;
        drop(first.raw_until_closed().await);
        let mut second = fake.next_conn().await;
        let mut inbox_sid = None;
        let reply = loop {
            match second.expect_op().await {
                Op::Sub { subject, sid, .. } if subject.starts_with("_INBOX.") => {
                    inbox_sid = Some(sid)
                }
                Op::Pub {
                    subject,
                    reply: Some(reply),
                    ..
                } if subject == "svc.slow" => break reply,
                Op::Ping => second.send(b"PONG\r\n").await,
                _ => {}
            }
        };
        let sid = inbox_sid.expect("the inbox SUB comes first");
        // A slow service: it answers well after the grace. The request was sent once, on
        // this connection, so it is not at risk and gets its reply.
        smol::Timer::after(Duration::from_millis(500)).await;
        second
            .send(format!("MSG {reply} {sid} 4\r\nslow\r\n").as_bytes())
            .await;
        match asked.await {
            Ok(m) => assert_eq!(m.payload, b"slow"),
            Err(e) => panic!("a request sent once on a live connection failed: {e}"),
        }
        let _pongs = second.serve_pongs();
        publisher.await;
        client.close().await;
    });
}
