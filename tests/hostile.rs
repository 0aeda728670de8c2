//! Our client against a fake server that sends hostile bytes: it never panics, always
//! reports what went wrong (an event with a reason, or an error from the call), and
//! reconnects when the connection cannot be trusted any more, restoring subscriptions.
//!
//! Each test waits for what it expects (an event, the next accepted connection, an op the
//! client sends) with a bound; none sleeps to synchronise.

mod common;
#[path = "common/fake.rs"]
mod fake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use fake::{FakeConn, FakeServer, Handshake, Op, BOUND, INFO};
use panini::client::{Client, ConnectOptions, Event, Subscription};
use panini::{Error, Message};
use smol::channel::Receiver;
use smol::future::zip;
use smol::future::FutureExt;
use smol::stream::StreamExt;

// ---------------------------------------------------------------------------------------
// Harness: panics on the executor, events, setup.
// ---------------------------------------------------------------------------------------

/// Panics seen on smol's executor threads, where the client's tasks run.
static TASK_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Runs a test body under the common timeout, then fails if any task on smol's executor
/// panicked meanwhile (a panicking client task would otherwise die silently).
fn hostile<F: std::future::Future>(body: F) -> F::Output {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_executor = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("smol-"));
            if on_executor {
                TASK_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    let out = common::run(body);
    assert_eq!(
        TASK_PANICS.load(Ordering::SeqCst),
        0,
        "a task on smol's executor panicked (see the output above)"
    );
    out
}

/// The events the client reported, and those still to come.
struct Events {
    rx: Receiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    /// Waits (bounded) for an event matching `want`, keeping every event seen.
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = async { Some(self.rx.recv().await) }.or(async {
                smol::Timer::after(left).await;
                None
            });
            match next.await {
                Some(Ok(ev)) => {
                    self.seen.push(ev.clone());
                    if want(&ev) {
                        return ev;
                    }
                }
                Some(Err(_)) => panic!(
                    "events ended while waiting for {what}; seen {:?}",
                    self.seen
                ),
                None => panic!("no {what} within {BOUND:?}; seen {:?}", self.seen),
            }
        }
    }

    /// Every event so far (without waiting).
    fn so_far(&mut self) -> &[Event] {
        while let Ok(ev) = self.rx.try_recv() {
            self.seen.push(ev);
        }
        &self.seen
    }

    fn count(&mut self, want: impl Fn(&Event) -> bool) -> usize {
        self.so_far().iter().filter(|e| want(e)).count()
    }
}

fn is_disconnected(e: &Event) -> bool {
    matches!(e, Event::Disconnected { .. })
}

fn is_reconnected(e: &Event) -> bool {
    matches!(e, Event::Reconnected(_))
}

/// Options for one fake server: fast, deterministic reconnects and an event channel.
fn options(url: &str) -> (ConnectOptions, Events) {
    let (tx, rx) = smol::channel::unbounded();
    let opts = ConnectOptions::new([url])
        .reconnect_wait(Duration::from_millis(50))
        .reconnect_jitter(Duration::ZERO)
        .event_callback(move |ev| {
            let _ = tx.try_send(ev);
        });
    (
        opts,
        Events {
            rx,
            seen: Vec::new(),
        },
    )
}

/// Connects and takes the fake's side of that first connection.
async fn connect(server: &FakeServer, opts: ConnectOptions) -> (Client, FakeConn) {
    let (client, conn) = zip(opts.connect(), server.next_conn()).await;
    (client.expect("connecting to the fake server"), conn)
}

/// Subscribes and checks the fake receives the SUB.
async fn subscribe(client: &Client, conn: &mut FakeConn, subject: &str, sid: &str) -> Subscription {
    let sub = client.subscribe(subject).await.expect("subscribe");
    assert_eq!(conn.expect_op().await, Op::sub(subject, None, sid));
    sub
}

/// A flush round trip over `conn`: the fake reads the PING and answers it. Proves the
/// connection task is alive and reading this connection.
async fn round_trip(client: &Client, conn: &mut FakeConn) {
    let answer = async {
        conn.wait_for("the flush PING", |op| *op == Op::Ping).await;
        conn.send(b"PONG\r\n").await;
    };
    let (flushed, ()) = zip(client.flush_timeout(BOUND), answer).await;
    flushed.expect("flush round trip through the fake server");
}

/// The next message on `sub`, within the bound.
async fn next_msg(sub: &mut Subscription) -> Message {
    let next = async { sub.next().await };
    let got = next.or(async {
        smol::Timer::after(BOUND).await;
        panic!("no message within {BOUND:?}")
    });
    got.await.expect("the subscription ended")
}

/// Subscribes to `foo` (sid 1), lets the fake send `bytes` on the first connection (then
/// close it when `then_close`), and checks that the client reports a disconnect whose
/// reason contains `reason`, reconnects (second accepted connection, `Reconnected`),
/// re-sends its SUB, and delivers a good message on the new connection as the first
/// message of the subscription. Returns every event seen.
fn hostile_bytes_force_reconnect(
    handshake: Handshake,
    bytes: &[u8],
    then_close: bool,
    reason: &str,
) -> Vec<Event> {
    hostile(async {
        let server = FakeServer::start(handshake).await;
        let (opts, mut events) = options(server.url());
        let (client, mut first) = connect(&server, opts).await;
        let mut sub = subscribe(&client, &mut first, "foo", "1").await;

        // The client may hang up while we write: that is fine, it is the point.
        let _ = first.try_send(bytes).await;
        if then_close {
            first.close();
        } else {
            let after = first.until_closed().await;
            assert_eq!(
                after,
                [],
                "the client sent ops after the hostile bytes, before hanging up"
            );
        }

        let gone = events.wait_for("Disconnected", is_disconnected).await;
        let Event::Disconnected {
            reason: why,
            server: from,
        } = &gone
        else {
            unreachable!()
        };
        assert!(
            why.to_lowercase().contains(&reason.to_lowercase()),
            "disconnect reason {why:?} does not mention {reason:?}"
        );
        assert_eq!(from, server.url());

        let mut second = server.next_conn().await;
        assert_eq!(second.index, 2);
        events.wait_for("Reconnected", is_reconnected).await;
        assert_eq!(
            second.expect_op().await,
            Op::sub("foo", None, "1"),
            "SUB not restored"
        );

        second.send(b"MSG foo 1 2\r\nok\r\n").await;
        let msg = next_msg(&mut sub).await;
        assert_eq!(
            (msg.subject.as_str(), msg.payload.as_slice()),
            ("foo", &b"ok"[..])
        );
        round_trip(&client, &mut second).await;

        assert_eq!(server.accepted(), 2);
        assert_eq!(events.count(is_disconnected), 1, "{:?}", events.seen);
        assert_eq!(events.count(is_reconnected), 1, "{:?}", events.seen);
        assert_eq!(client.statistics().reconnects, 1);
        assert!(!client.is_closed());
        events.so_far().to_vec()
    })
}

fn normal() -> Handshake {
    Handshake::normal()
}

// ---------------------------------------------------------------------------------------
// Bytes that make the connection untrustworthy: disconnect, report, reconnect.
// ---------------------------------------------------------------------------------------

#[test]
fn garbage_bytes_force_a_reconnect() {
    hostile_bytes_force_reconnect(
        normal(),
        b"\x00\xffGARBAGE\r\n",
        false,
        "unknown protocol operation",
    );
}

#[test]
fn over_long_control_line_forces_a_reconnect() {
    let mut line = b"MSG foo 1 ".to_vec();
    line.resize(5000, b'a');
    hostile_bytes_force_reconnect(normal(), &line, false, "control line too long");
}

#[test]
fn msg_with_a_non_numeric_sid_forces_a_reconnect() {
    hostile_bytes_force_reconnect(
        normal(),
        b"MSG foo notanumber 5\r\nhello\r\n",
        false,
        "protocol error: invalid",
    );
}

#[test]
fn msg_with_a_negative_size_forces_a_reconnect() {
    hostile_bytes_force_reconnect(normal(), b"MSG foo 1 -1\r\n", false, "invalid number");
}

#[test]
fn payload_not_followed_by_crlf_forces_a_reconnect() {
    hostile_bytes_force_reconnect(
        normal(),
        b"MSG foo 1 3\r\nhelloXY",
        false,
        "not followed by CRLF",
    );
}

#[test]
fn msg_larger_than_info_max_payload_forces_a_reconnect() {
    // The client's own default would accept 2048 bytes: only INFO's limit refuses them.
    let info = INFO
        .windows(b"1048576".len())
        .position(|w| w == b"1048576")
        .map(|at| [&INFO[..at], b"1024", &INFO[at + 7..]].concat())
        .expect("INFO has a max_payload");
    let mut msg = b"MSG foo 1 2048\r\n".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 2048));
    msg.extend_from_slice(b"\r\n");
    hostile_bytes_force_reconnect(Handshake::Normal { info }, &msg, false, "payload too large");
}

// ---------------------------------------------------------------------------------------
// -ERR
// ---------------------------------------------------------------------------------------

/// `-ERR` text that ends the connection: a `ServerError` with `text`, then a reconnect.
fn err_forces_reconnect(line: &[u8], text: &str) {
    let events = hostile_bytes_force_reconnect(normal(), line, false, "server error");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::ServerError(_)))
            .collect::<Vec<_>>(),
        [&Event::ServerError(text.into())],
        "{events:?}"
    );
    let first_error = events
        .iter()
        .position(|e| matches!(e, Event::ServerError(_)));
    assert!(
        first_error < events.iter().position(is_disconnected),
        "{events:?}"
    );
}

#[test]
fn eof_in_mid_payload_forces_a_reconnect() {
    hostile_bytes_force_reconnect(normal(), b"MSG foo 1 10\r\nhel", true, "end of file");
}

#[test]
fn server_closing_the_connection_forces_a_reconnect() {
    hostile_bytes_force_reconnect(normal(), b"", true, "end of file");
}

#[test]
fn err_stale_connection_forces_a_reconnect() {
    err_forces_reconnect(b"-ERR 'Stale Connection'\r\n", "Stale Connection");
}

#[test]
fn bare_err_is_tolerated() {
    err_forces_reconnect(b"-ERR\r\n", "");
}

#[test]
fn err_with_empty_quotes_is_tolerated() {
    err_forces_reconnect(b"-ERR ''\r\n", "");
}

#[test]
fn err_without_quotes_is_tolerated() {
    err_forces_reconnect(b"-ERR noquotes\r\n", "noquotes");
}

#[test]
fn permissions_violation_is_reported_and_the_connection_stays() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let (client, mut conn) = connect(&server, opts).await;
        conn.send(b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n")
            .await;
        let ev = events
            .wait_for("ServerError", |e| matches!(e, Event::ServerError(_)))
            .await;
        assert_eq!(
            ev,
            Event::ServerError("Permissions Violation for Publish to \"x\"".into())
        );
        round_trip(&client, &mut conn).await;
        assert_eq!(events.count(is_disconnected), 0, "{:?}", events.seen);
        assert_eq!(server.accepted(), 1);
        assert!(client.is_connected());
    });
}

// ---------------------------------------------------------------------------------------
// Bad data the client reports but survives on the same connection.
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_info_json_mid_stream_is_reported_not_a_disconnect() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let (client, mut conn) = connect(&server, opts).await;
        conn.send(b"INFO {bad \r\n").await;
        let ev = events
            .wait_for("ClientError", |e| matches!(e, Event::ClientError(_)))
            .await;
        let Event::ClientError(text) = ev else {
            unreachable!()
        };
        assert!(text.contains("INFO"), "{text:?}");
        round_trip(&client, &mut conn).await;
        assert_eq!(events.count(is_disconnected), 0, "{:?}", events.seen);
        assert_eq!(server.accepted(), 1);
        // The last good INFO still stands.
        let info = client.server_info();
        assert_eq!(
            (info.server_id.as_str(), info.max_payload),
            ("FAKE", 1_048_576)
        );
    });
}

#[test]
fn malformed_header_block_drops_one_message_and_the_next_is_delivered() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let (client, mut conn) = connect(&server, opts).await;
        let mut sub = subscribe(&client, &mut conn, "foo", "1").await;
        let block = b"NATS/1.0 5\r\n\r\n"; // a status must be three digits
        let mut wire = format!("HMSG foo 1 {} {}\r\n", block.len(), block.len() + 2).into_bytes();
        wire.extend_from_slice(block);
        wire.extend_from_slice(b"hi\r\nMSG foo 1 2\r\nok\r\n");
        conn.send(&wire).await;

        let msg = next_msg(&mut sub).await;
        assert_eq!(
            (msg.payload.as_slice(), msg.headers.as_ref()),
            (&b"ok"[..], None)
        );
        assert_eq!(client.statistics().bad_msgs, 1);
        let ev = events
            .wait_for("ClientError", |e| matches!(e, Event::ClientError(_)))
            .await;
        let Event::ClientError(text) = ev else {
            unreachable!()
        };
        assert!(text.contains("foo"), "{text:?}");
        round_trip(&client, &mut conn).await;
        assert_eq!(events.count(is_disconnected), 0, "{:?}", events.seen);
        assert_eq!(server.accepted(), 1);
    });
}

// ---------------------------------------------------------------------------------------
// Silence and timing.
// ---------------------------------------------------------------------------------------

#[test]
fn unanswered_pings_make_the_connection_stale_and_the_client_reconnects() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let opts = opts
            .ping_interval(Duration::from_millis(100))
            .max_pings_out(2);
        let (client, mut first) = connect(&server, opts).await;
        // Read everything, answer nothing.
        // Exactly max_pings_out PINGs, then the client hangs up (one task writes and
        // decides, so the last PING is out before it gives up on the connection).
        let sent = first.until_closed().await;
        assert_eq!(sent, [Op::Ping, Op::Ping]);
        let gone = events.wait_for("Disconnected", is_disconnected).await;
        let Event::Disconnected { reason, .. } = gone else {
            unreachable!()
        };
        assert!(reason.contains("stale"), "{reason:?}");

        let second = server.next_conn().await;
        events.wait_for("Reconnected", is_reconnected).await;
        let _pongs = second.serve_pongs();
        client
            .flush_timeout(BOUND)
            .await
            .expect("flush on the second connection");
        assert_eq!(server.accepted(), 2);
        assert!(!client.is_closed());
    });
}

#[test]
fn flush_is_a_real_round_trip() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, _events) = options(server.url());
        let (client, mut conn) = connect(&server, opts).await;

        // The fake reads the flush's PING and withholds the PONG.
        let started = Instant::now();
        let (flushed, _) = zip(
            client.flush_timeout(Duration::from_millis(200)),
            conn.wait_for("PING", |op| *op == Op::Ping),
        )
        .await;
        assert!(matches!(flushed, Err(Error::Timeout)), "{flushed:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Late PONG for that PING, then an answered flush: only now does flush succeed.
        conn.send(b"PONG\r\n").await;
        round_trip(&client, &mut conn).await;
        assert_eq!(server.accepted(), 1);
    });
}

// ---------------------------------------------------------------------------------------
// Connecting.
// ---------------------------------------------------------------------------------------

#[test]
fn authorization_violation_fails_connect_at_once_without_retrying() {
    hostile(async {
        let refusing = FakeServer::start(Handshake::RejectAuth).await;
        let spare = FakeServer::start(normal()).await;
        let opts = ConnectOptions::new([refusing.url(), spare.url()]);
        let started = Instant::now();
        let (result, _conn) = zip(opts.connect(), refusing.next_conn()).await;
        match result {
            Err(Error::Auth(text)) => assert_eq!(text, "Authorization Violation"),
            other => panic!("expected Error::Auth, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // One attempt, and not on to the next server either: wrong credentials stay wrong.
        assert_eq!((refusing.accepted(), spare.accepted()), (1, 0));
    });
}

#[test]
fn server_that_never_sends_info_times_out_within_connect_timeout() {
    hostile(async {
        let server = FakeServer::start(Handshake::Mute).await;
        let (opts, _events) = options(server.url());
        let opts = opts.connect_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let result = opts.connect().await;
        let took = started.elapsed();
        match result {
            Err(Error::NoServers(failures)) => {
                assert!(
                    matches!(failures[..], [(_, Error::Timeout)]),
                    "{failures:?}"
                )
            }
            Err(Error::Timeout) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(server.accepted(), 1);
    });
}

// ---------------------------------------------------------------------------------------
// Reconnect restores state.
// ---------------------------------------------------------------------------------------

#[test]
fn subscriptions_are_resent_after_a_reconnect() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let (client, mut first) = connect(&server, opts).await;
        let mut orders = subscribe(&client, &mut first, "orders.*", "1").await;
        let _work = client.queue_subscribe("work", "pool").await.unwrap();
        assert_eq!(first.expect_op().await, Op::sub("work", Some("pool"), "2"));

        first.close();
        events.wait_for("Disconnected", is_disconnected).await;
        let mut second = server.next_conn().await;
        events.wait_for("Reconnected", is_reconnected).await;
        // Both SUBs, in whatever order the client keeps its table.
        let mut resent = vec![second.expect_op().await, second.expect_op().await];
        resent.sort_by_key(|op| format!("{op:?}"));
        assert_eq!(
            resent,
            [
                Op::sub("orders.*", None, "1"),
                Op::sub("work", Some("pool"), "2")
            ]
        );

        second.send(b"MSG orders.new 1 1\r\nA\r\n").await;
        assert_eq!(next_msg(&mut orders).await.subject, "orders.new");
        round_trip(&client, &mut second).await;
        assert_eq!(server.accepted(), 2);
    });
}

/// `max_reconnect_attempts(Some(3))` on a one-server pool: each attempt is one pass over
/// the pool, so the server sees exactly 1 + 3 connections (the first, then three that it
/// hangs up on), and then the client is closed for good.
#[test]
fn a_server_gone_for_good_gets_exactly_one_plus_max_attempts_then_closed() {
    hostile(async {
        let server = FakeServer::start(normal()).await;
        let (opts, mut events) = options(server.url());
        let (client, first) = connect(&server, opts.max_reconnect_attempts(Some(3))).await;
        server.refuse_from_now();
        first.close();
        events
            .wait_for("Closed", |e| matches!(e, Event::Closed))
            .await;
        assert!(client.is_closed());
        assert_eq!(server.accepted(), 1 + 3, "connection attempts");
        assert_eq!(events.count(is_disconnected), 1, "{:?}", events.so_far());
        assert_eq!(events.count(is_reconnected), 0, "{:?}", events.so_far());
        assert!(matches!(client.publish("x", "y").await, Err(Error::Closed)));
    });
}
