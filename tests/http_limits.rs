//! The HTTP server's limits (431, 413, 400, 408, 503, idle timeout), failures (panics,
//! clients that vanish), graceful shutdown, and regressions, over real TCP connections.

mod common;
#[path = "common/http_app.rs"]
mod http_app;
#[path = "common/http_client.rs"]
mod http_client;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, NatsServer};
use http_app::*;
use http_client::{bounded, get, Client, IO_TIMEOUT};
use panini::http::{Method, Request, Response, View};
use smol::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn a_head_over_8_kib_or_100_headers_is_431() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bighead"), &server).await;
        let head = |value_len: usize| {
            format!(
                "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "a".repeat(value_len)
            )
        };
        assert_eq!(
            get_raw(s.http_addr(), &head(8000)).await.status,
            200,
            "under 8 KiB"
        );
        rejected(s.http_addr(), head(9000).as_bytes(), 431).await;
        rejected(s.http_addr(), head(64 * 1024).as_bytes(), 431).await;

        let headers = |n: usize| {
            let lines: String = (1..n).map(|i| format!("X-H{i}: {i}\r\n")).collect();
            format!("GET /hello HTTP/1.1\r\nHost: t\r\n{lines}\r\n")
        };
        assert_eq!(
            get_raw(s.http_addr(), &headers(100)).await.status,
            200,
            "100 is fine"
        );
        rejected(s.http_addr(), headers(101).as_bytes(), 431).await;
        s.stop().await.unwrap();
    });
}

#[test]
fn a_body_over_max_body_is_413_without_reading_it() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("bigbody");
        app.http().max_body(1024);
        let s = start(app, &server).await;
        let full = "b".repeat(1024);
        let r = get_raw(s.http_addr(), &with_body("POST", "/echo", &full)).await;
        assert_eq!((r.status, r.body.len()), (200, 1024), "exactly the limit");

        // Only the head is sent: the answer must not wait for the body.
        rejected(
            s.http_addr(),
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n",
            413,
        )
        .await;
        let chunked = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             400\r\n{full}\r\n1\r\n"
        );
        rejected(s.http_addr(), chunked.as_bytes(), 413).await;
        let one_big_chunk =
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n";
        rejected(s.http_addr(), one_big_chunk.as_bytes(), 413).await;
        s.stop().await.unwrap();
    });
}

#[test]
fn malformed_requests_are_400_and_unknown_methods_501() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("malformed"), &server).await;
        for raw in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /hello\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET /hello HTTP/1.1\r\nHost : t\r\n\r\n",
            b"GET hello HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            rejected(s.http_addr(), raw, 400).await;
        }
        for raw in [
            "BREW /hello HTTP/1.1\r\n\r\n",
            "get /hello HTTP/1.1\r\n\r\n",
        ] {
            rejected(s.http_addr(), raw.as_bytes(), 501).await;
        }
        s.stop().await.unwrap();
    });
}

#[test]
fn a_head_that_stalls_gets_408_and_the_close() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("slowloris");
        let limit = Duration::from_millis(300);
        app.http().head_timeout(limit);
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let sent = Instant::now();
        c.send("GET /hello HTTP/1.1\r\nHost: t\r\n").await;
        let r = c.response().await;
        assert_eq!(r.status, 408);
        assert_eq!(r.header("connection"), Some("close"));
        c.assert_closed().await;
        assert!(sent.elapsed() >= limit, "not before the limit");
        s.stop().await.unwrap();
    });
}

#[test]
fn a_head_that_trickles_in_gets_408_too() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("trickle");
        app.http().head_timeout(Duration::from_millis(300));
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let mut writer = c.stream();
        // One byte every 50 ms: each read is quick, the head never ends.
        let trickle = smol::spawn(async move {
            let _ = writer.write_all(b"GET /hello HTTP/1.1\r\nX-Slow: ").await;
            while writer.write_all(b"a").await.is_ok() {
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        });
        let r = c.response().await;
        assert_eq!(r.status, 408);
        drop(trickle);
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_its_timeout() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("idle");
        let limit = Duration::from_millis(300);
        app.http().keep_alive_timeout(limit);
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let sent = Instant::now();
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.header("connection"), None, "kept open at first");
        c.assert_closed().await;
        assert!(sent.elapsed() >= limit, "not before the limit");
        s.stop().await.unwrap();
    });
}

/// 503 only when every connection is in the middle of a request: those are never closed
/// for room.
#[test]
fn a_connection_over_max_connections_gets_503_when_all_are_busy() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("maxconn");
        let (entered, release) = held(&mut app, "/held");
        let stats = app.http().max_connections(2).stats();
        let s = start(app, &server).await;
        let mut a = Client::connect(s.http_addr()).await;
        let mut b = Client::connect(s.http_addr()).await;
        a.send(bare("GET", "/held")).await;
        b.send(bare("GET", "/held")).await;
        entered.recv().await.unwrap();
        entered.recv().await.unwrap();

        let mut third = Client::connect(s.http_addr()).await;
        let r = third.response().await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("connection"), Some("close"));
        third.assert_closed().await;
        assert_eq!((stats.refused(503), stats.idle_closed()), (1, 0));

        // Once the requests are answered, their connections are idle: a new client is
        // served again.
        release.send(()).await.unwrap();
        release.send(()).await.unwrap();
        for held in [&mut a, &mut b] {
            let r = held.response().await;
            assert_eq!((r.status, r.text()), (200, "held, then done"));
        }
        assert_eq!(get(s.http_addr(), "/hello").await.status, 200);
        assert_eq!((stats.refused(503), stats.idle_closed()), (1, 1));
        s.stop().await.unwrap();
    });
}

/// Refusals are counted by status (and logged, rate-limited), so an operator can see an
/// attack.
#[test]
fn refusals_are_counted_by_status() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("refusals");
        app.http()
            .max_body(16)
            .head_timeout(Duration::from_millis(200));
        let stats = app.http().stats();
        let s = start(app, &server).await;
        rejected(s.http_addr(), b"GARBAGE\r\n\r\n", 400).await;
        rejected(s.http_addr(), b"GET /hello HTTP/1.1\r\n\r\n", 400).await;
        rejected(
            s.http_addr(),
            with_body("POST", "/echo", &"b".repeat(17)).as_bytes(),
            413,
        )
        .await;
        let big = format!(
            "GET /hello HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        rejected(s.http_addr(), big.as_bytes(), 431).await;
        rejected(s.http_addr(), b"GET /hello HTTP/1.1\r\nHost: t\r\n", 408).await;
        rejected(s.http_addr(), b"BREW /hello HTTP/1.1\r\n\r\n", 501).await;
        let counts: Vec<u64> = [400, 408, 413, 431, 501, 503, 200]
            .iter()
            .map(|status| stats.refused(*status))
            .collect();
        assert_eq!(counts, [2, 1, 1, 1, 1, 0, 0]);
        s.stop().await.unwrap();
    });
}

/// A client that holds every connection slot with idle keep-alive connections must not
/// lock the others out: the connection idle the longest is closed to make room.
#[test]
fn at_the_connection_limit_the_oldest_idle_connection_makes_room() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("idlefull");
        let stats = app.http().max_connections(3).stats();
        let s = start(app, &server).await;
        let mut a = Client::connect(s.http_addr()).await;
        let mut b = Client::connect(s.http_addr()).await;
        let mut c = Client::connect(s.http_addr()).await;
        for (n, client) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
            assert_eq!(
                client.call(bare("GET", &format!("/n/{n}"))).await.status,
                200
            );
        }
        // `a` asks again: `b` is now the one idle the longest.
        assert_eq!(a.call(bare("GET", "/n/0")).await.status, 200);

        let mut d = Client::connect(s.http_addr()).await;
        let r = d.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"), "served, not 503");
        b.assert_closed().await;
        for client in [&mut a, &mut c, &mut d] {
            let r = client.call(bare("GET", "/hello")).await;
            assert_eq!(r.status, 200, "the others stay open");
        }
        assert_eq!((stats.idle_closed(), stats.refused(503)), (1, 0));
        s.stop().await.unwrap();
    });
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("no_reader");
        let limit = Duration::from_millis(300);
        app.http().max_connections(1).write_timeout(limit);
        // Far more than the socket buffers hold, so the write has to wait on the client.
        app.http()
            .get("/big", || async { vec![b'x'; 32 * 1024 * 1024] });
        let s = start(app, &server).await;
        let mut stuck = Client::connect(s.http_addr()).await;
        stuck.send(bare("GET", "/big")).await;
        // The one slot is freed once the write times out: a new connection is served.
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let r = get(s.http_addr(), "/hello").await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503);
            assert!(Instant::now() < deadline, "the stuck client kept its slot");
        }
        drop(stuck);
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

#[test]
fn a_client_gone_mid_body_does_not_reach_the_handler_nor_stop_the_server() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("midbody");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        app.http().post("/count", move |req: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { req.body }
        });
        let s = start(app, &server).await;
        for partial in [
            "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b",
            "POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        ] {
            // Half-close: the server sees the end of the body early and closes quietly.
            let mut c = Client::connect(s.http_addr()).await;
            c.send(partial).await;
            c.stream().shutdown(std::net::Shutdown::Write).unwrap();
            c.assert_closed().await;
        }
        // And an abrupt close.
        let mut c = Client::connect(s.http_addr()).await;
        c.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
            .await;
        drop(c);

        let r = get_raw(s.http_addr(), &with_body("POST", "/count", "whole")).await;
        assert_eq!((r.status, r.text()), (200, "whole"));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "only the whole request");
        s.stop().await.unwrap();
    });
}

#[test]
fn a_handler_that_panics_gives_500_and_the_server_goes_on() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("panics"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let r = c.call(bare("GET", "/panic")).await;
        assert_eq!(r.status, 500);
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"), "same connection");
        let r = get(s.http_addr(), "/panic").await;
        assert_eq!(r.status, 500);
        let r = get(s.http_addr(), "/hello").await;
        assert_eq!((r.status, r.text()), (200, "hello"), "new connection");
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("shutdown");
        let (entered, release) = held(&mut app, "/held");
        let s = start(app, &server).await;
        let addr = s.http_addr();
        let mut idle = Client::connect(addr).await;
        assert_eq!(idle.call(bare("GET", "/hello")).await.status, 200);
        let mut busy = Client::connect(addr).await;
        busy.send(bare("GET", "/held")).await;
        entered.recv().await.unwrap();

        s.handle().shutdown();
        // The idle keep-alive connection is closed at once (its timeout is 15 s); by then
        // the server stopped accepting.
        idle.assert_closed().await;
        let refused = std::net::TcpStream::connect(addr);
        assert!(
            refused.is_err(),
            "a new connection after shutdown: {refused:?}"
        );
        assert!(
            !s.is_finished(),
            "run_until waits for the request in flight"
        );

        release.send(()).await.unwrap();
        let r = busy.response().await;
        assert_eq!((r.status, r.text()), (200, "held, then done"));
        assert_eq!(r.header("connection"), Some("close"));
        busy.assert_closed().await;
        bounded("run_until", s.join()).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Regressions: ordering of pipelined answers, 100-continue, shutdown mid-body, RFC details.
// ---------------------------------------------------------------------------------------

#[test]
fn regression_pipelined_rejection_keeps_response_order() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug1"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        c.send(format!(
            "{}BREW / HTTP/1.1\r\nHost: t\r\n\r\n",
            bare("GET", "/n/1")
        ))
        .await;
        let first = c.response().await;
        let second = c.response().await;
        assert_eq!(
            (first.status, first.text()),
            (200, "response 1"),
            "{first:?}"
        );
        assert_eq!(second.status, 501);
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_pipelined_expect_continue_keeps_response_order() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug2"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        c.send(format!(
            "{}POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            bare("GET", "/n/1")
        ))
        .await;
        let first = c.response().await;
        assert_eq!(
            (first.status, first.text()),
            (200, "response 1"),
            "{first:?}"
        );
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_http_1_0_expect_is_ignored() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug3"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let r = c
            .call("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
            .await;
        assert_eq!((r.status, r.text()), (200, "hi"), "{r:?}");
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_plus_in_a_path_parameter_is_literal() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug4"), &server).await;
        let r = get(s.http_addr(), "/items/a+b").await;
        assert_eq!(r.text(), "item a+b");
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_no_content_length_in_204() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug5"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let r = c.call(bare("DELETE", "/items/1")).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("content-length"), None, "{r:?}");
        s.stop().await.unwrap();
    });
}

struct Partial;
impl View for Partial {
    const METHODS: &'static [Method] = &[Method::Get, Method::Delete, Method::Options];
    async fn get(&self, _req: Request) -> Response {
        Response::text(200, "x")
    }
}

#[test]
fn regression_every_405_has_allow() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("bug6");
        app.http().view("/partial", Partial);
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        // The view lists DELETE but does not implement it: its default answers 405, and
        // the server adds the Allow header (each method once).
        let r = c.call(bare("DELETE", "/partial")).await;
        assert_eq!(r.status, 405, "{r:?}");
        assert_eq!(r.allow(), ["DELETE", "GET", "HEAD", "OPTIONS"], "{r:?}");
        let r = c.call(bare("OPTIONS", "/partial")).await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.allow(), ["DELETE", "GET", "HEAD", "OPTIONS"], "{r:?}");
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_shutdown_keeps_a_request_whose_body_is_coming() {
    let server = NatsServer::start();
    run(async {
        let app = web("bug7");
        let s = start(app, &server).await;
        let addr = s.http_addr();
        let mut c = Client::connect(addr).await;
        c.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await;
        assert_eq!(c.response().await.status, 100);
        let mut idle = Client::connect(addr).await;
        assert_eq!(idle.call(bare("GET", "/hello")).await.status, 200);
        s.handle().shutdown();
        idle.assert_closed().await;
        c.send("hello").await;
        let r = c.response().await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        bounded("run_until", s.join()).await.unwrap();
    });
}

#[test]
fn regression_missing_host_is_400() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug8"), &server).await;
        rejected(s.http_addr(), b"GET /hello HTTP/1.1\r\n\r\n", 400).await;
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_absolute_form_is_accepted() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug9"), &server).await;
        let r = get_raw(
            s.http_addr(),
            "GET http://t/hello HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        s.stop().await.unwrap();
    });
}

/// A closure handler that panics when called (before it returns its future) gets a 500
/// like one that panics inside its future, and the connection goes on.
#[test]
fn regression_a_handler_that_panics_before_its_future_gives_500() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("early_panic");
        app.http().get("/early", |req: Request| {
            if req.path == "/early" {
                panic!("panicked before returning a future");
            }
            async { "unreachable" }
        });
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        assert_eq!(c.call(bare("GET", "/early")).await.status, 500);
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"), "same connection");
        s.stop().await.unwrap();
    });
}

/// An explicit HEAD route answers HEAD even when a GET route was added first; OPTIONS
/// routes appear once in Allow.
#[test]
fn regression_explicit_head_and_options_routes() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("head_route");
        app.http()
            .get("/gh", || async { "from get" })
            .head("/gh", || async {
                Response::new(200).header("X-From", "head")
            })
            .route(Method::Options, "/gh", || async { Response::new(204) });
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        c.send(bare("HEAD", "/gh")).await;
        let r = c.head_response().await;
        assert_eq!((r.status, r.header("x-from")), (200, Some("head")), "{r:?}");
        let r = c.call(bare("DELETE", "/gh")).await;
        assert_eq!(r.status, 405, "{r:?}");
        assert_eq!(r.allow(), ["GET", "HEAD", "OPTIONS"], "{r:?}");
        s.stop().await.unwrap();
    });
}

/// Two Transfer-Encoding headers are refused (a proxy might frame the body by the other
/// one), and a `close` in any Connection header closes the connection.
#[test]
fn regression_repeated_framing_and_connection_headers() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("repeated"), &server).await;
        let two_encodings = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                             Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n";
        rejected(s.http_addr(), two_encodings.as_bytes(), 400).await;

        let mut c = Client::connect(s.http_addr()).await;
        let r = c
            .call("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(
            (r.status, r.header("connection")),
            (200, Some("close")),
            "{r:?}"
        );
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}
