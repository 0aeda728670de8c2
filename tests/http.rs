//! The HTTP server over real TCP connections, inside an app that also talks to a real
//! nats-server: routes and views, response types, keep-alive and pipelining, request
//! bodies, every limit, failures, HTTP beside NATS, graceful shutdown.
//!
//! Requests are raw bytes (see `common/http_client.rs`), so malformed, pipelined and
//! half-sent requests are as easy to write as good ones. Each test waits for what it
//! expects (a response, the close, an event) with a bound; none sleeps to synchronise.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, NatsServer};
use futures_lite::{AsyncWriteExt, StreamExt};
use http_client::{bounded, get, Client, IO_TIMEOUT};
use panini::client as nats;
use panini::http::{Method, Request, Response, View};
use panini::{App, AppHandle, Json, Msg};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Harness: an app with the test routes, started in-process on port 0.
// ---------------------------------------------------------------------------------------

/// An app running in the background, its HTTP address and its handle.
struct Served {
    addr: SocketAddr,
    handle: AppHandle,
    stop: async_channel::Sender<()>,
    done: smol::Task<panini::Result<()>>,
}

impl Served {
    /// Stops the app as SIGTERM would and returns what `run_until` returned.
    async fn stop(self) -> panini::Result<()> {
        let _ = self.stop.send(()).await;
        self.done.await
    }
}

/// Starts `app` against `server` with HTTP on a port the OS picks; returns once the app
/// published its `started` event, with the address its `on_start` hook saw.
async fn start(mut app: App, server: &NatsServer) -> Served {
    let (handle_tx, handle_rx) = async_channel::bounded(1);
    app.http().port(0);
    app.on_start(move |handle: AppHandle| {
        let handle_tx = handle_tx.clone();
        async move {
            let _ = handle_tx.send(handle).await;
        }
    });
    let probe = nats::connect(server.url()).await.unwrap();
    let mut events = probe.subscribe("panini_events.>").await.unwrap();
    probe.flush().await.unwrap();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let app = app.servers([server.url()]).banner(false);
    let done = smol::spawn(app.run_until(async move {
        let _ = stopped.recv().await;
    }));
    let event = bounded("the started event", events.next()).await.unwrap();
    assert!(event.subject.ends_with(".started"), "{}", event.subject);
    let handle = handle_rx.recv().await.unwrap();
    let addr = handle.http_addr().expect("the app has an HTTP server");
    Served {
        addr,
        handle,
        stop,
        done,
    }
}

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
}

/// A view answering GET (so HEAD) and PUT. `delete` is written but not listed, so it must
/// never be reached.
struct ItemView;

impl View for ItemView {
    const METHODS: &'static [Method] = &[Method::Get, Method::Put];

    async fn get(&self, req: Request) -> Response {
        Response::text(200, format!("view get {}", req.param("id").unwrap_or("?")))
    }

    async fn put(&self, req: Request) -> Response {
        let body = req.text().unwrap_or_default();
        Response::text(
            200,
            format!("view put {} {body}", req.param("id").unwrap_or("?")),
        )
    }

    async fn delete(&self, _req: Request) -> Response {
        Response::text(200, "delete is not in METHODS")
    }
}

/// A view without GET.
struct PostOnly;

impl View for PostOnly {
    const METHODS: &'static [Method] = &[Method::Post];

    async fn post(&self, _req: Request) -> Response {
        Response::text(201, "posted")
    }
}

/// An app named `name` with the routes most tests use.
fn web(name: &str) -> App {
    let mut app = App::new(name);
    app.http()
        .get("/hello", || async { "hello" })
        .get("/n/{n}", |req: Request| async move {
            format!("response {}", req.param("n").unwrap_or_default())
        })
        .get("/items/{id}", |req: Request| async move {
            format!("item {}", req.param("id").unwrap_or_default())
        })
        .post("/items", |req: Request| async move {
            (201, format!("created {}", req.text().unwrap_or_default()))
        })
        .put("/items/{id}", |req: Request| async move {
            let id = req.param("id").unwrap_or_default();
            format!("put {id} {}", req.text().unwrap_or_default())
        })
        .patch("/items/{id}", |req: Request| async move {
            let id = req.param("id").unwrap_or_default();
            format!("patch {id} {}", req.text().unwrap_or_default())
        })
        .delete("/items/{id}", |_req: Request| async {})
        .get("/query", |req: Request| async move {
            json!({"pairs": req.query, "first_a": req.query_param("a")})
        })
        .post("/echo", |req: Request| async move { req.body })
        .post("/order", |req: Request| async move {
            let order: Order = req.json()?;
            Ok::<_, panini::Error>(Json(Order {
                id: order.id + 1,
                item: order.item.to_uppercase(),
            }))
        })
        .get("/value", || async { json!({"a": [1, 2], "b": null}) })
        .get("/bytes", || async { vec![0u8, 1, 255] })
        .get("/fail", || async { Err::<String, _>("the handler failed") })
        .get("/panic", || async { panics() })
        .view("/view/{id}", ItemView)
        .view("/post-only", PostOnly);
    app
}

fn panics() -> &'static str {
    panic!("a handler panicked on purpose")
}

/// A request with a `Content-Length` body.
fn with_body(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request without a body.
fn bare(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Sends `raw` on a fresh connection and reads one response.
async fn get_raw(addr: SocketAddr, raw: &str) -> http_client::Resp {
    Client::connect(addr).await.call(raw).await
}

/// Sends `raw` on a fresh connection and expects `status`, then the close.
async fn rejected(addr: SocketAddr, raw: &[u8], status: u16) {
    let mut c = Client::connect(addr).await;
    let r = c.call(raw).await;
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(80)]);
    assert_eq!(r.status, status, "for {shown:?}: {r:?}");
    assert_eq!(r.header("connection"), Some("close"), "for {shown:?}");
    c.assert_closed().await;
}

// ---------------------------------------------------------------------------------------
// Routes and views
// ---------------------------------------------------------------------------------------

#[test]
fn each_verb_reaches_its_handler_on_one_connection() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("verbs"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let r = c.call(with_body("POST", "/items", "tea")).await;
        assert_eq!((r.status, r.text()), (201, "created tea"));
        let r = c.call(with_body("PUT", "/items/7", "coffee")).await;
        assert_eq!((r.status, r.text()), (200, "put 7 coffee"));
        let r = c.call(with_body("PATCH", "/items/7", "milk")).await;
        assert_eq!((r.status, r.text()), (200, "patch 7 milk"));
        let r = c.call(bare("DELETE", "/items/7")).await;
        assert_eq!((r.status, r.text()), (204, ""));
        s.stop().await.unwrap();
    });
}

#[test]
fn head_is_answered_by_the_get_handler_with_a_length_but_no_body() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("head"), &server).await;
        let mut c = Client::connect(s.addr).await;
        c.send(bare("HEAD", "/items/42")).await;
        let r = c.head_response().await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("7"), "len of 'item 42'");
        // Had a body followed, it would now be read as the start of the next response.
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        s.stop().await.unwrap();
    });
}

#[test]
fn path_parameters_are_percent_decoded_and_queries_parsed() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("params"), &server).await;
        let r = get(s.addr, "/items/a%20b%2Fc").await;
        assert_eq!(r.text(), "item a b/c", "%2F decodes after the split");
        let r = get(s.addr, "/items/caf%C3%A9").await;
        assert_eq!(r.text(), "item café");

        let r = get(s.addr, "/query?a=1&b=two%20words&c=x+y&flag&a=2").await;
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({
                "pairs": [["a", "1"], ["b", "two words"], ["c", "x y"], ["flag", ""], ["a", "2"]],
                "first_a": "1",
            })
        );
        s.stop().await.unwrap();
    });
}

#[test]
fn an_unknown_path_is_404_and_a_wrong_verb_405_with_allow() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("notfound"), &server).await;
        for path in [
            "/nope",
            "/hello/extra",
            "/items/",
            "/items/1/2",
            "/nope?a=1",
        ] {
            let r = get(s.addr, path).await;
            assert_eq!(r.status, 404, "{path}");
        }
        let mut c = Client::connect(s.addr).await;
        let r = c.call(with_body("PUT", "/hello", "x")).await;
        assert_eq!(r.status, 405);
        assert_eq!(r.allow(), ["GET", "HEAD", "OPTIONS"]);
        let r = c.call(bare("OPTIONS", "/items/1")).await;
        assert_eq!(r.status, 204);
        assert_eq!(
            r.allow(),
            ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT"]
        );
        s.stop().await.unwrap();
    });
}

#[test]
fn a_view_answers_its_verbs_and_405_lists_exactly_them() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("views"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let r = c.call(bare("GET", "/view/a%20b")).await;
        assert_eq!((r.status, r.text()), (200, "view get a b"));
        let r = c.call(with_body("PUT", "/view/9", "new")).await;
        assert_eq!((r.status, r.text()), (200, "view put 9 new"));
        c.send(bare("HEAD", "/view/9")).await;
        let r = c.head_response().await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-length"),
            Some("10"),
            "len of 'view get 9'"
        );

        for method in ["POST", "DELETE", "PATCH"] {
            let r = c.call(with_body(method, "/view/9", "x")).await;
            assert_eq!(r.status, 405, "{method}: {r:?}");
            assert_eq!(r.allow(), ["GET", "HEAD", "OPTIONS", "PUT"], "{method}");
        }
        let r = c.call(bare("OPTIONS", "/view/9")).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.allow(), ["GET", "HEAD", "OPTIONS", "PUT"]);

        // Without GET there is no HEAD either.
        let r = c.call(with_body("POST", "/post-only", "")).await;
        assert_eq!((r.status, r.text()), (201, "posted"));
        let r = c.call(bare("GET", "/post-only")).await;
        assert_eq!(r.status, 405);
        assert_eq!(r.allow(), ["OPTIONS", "POST"]);
        c.send(bare("HEAD", "/post-only")).await;
        let r = c.head_response().await;
        assert_eq!(r.status, 405);
        assert_eq!(r.allow(), ["OPTIONS", "POST"]);
        let r = c.call(bare("OPTIONS", "/post-only")).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.allow(), ["OPTIONS", "POST"]);
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Response types
// ---------------------------------------------------------------------------------------

#[test]
fn json_text_bytes_tuples_and_errors_become_responses() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("types"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let r = c
            .call(with_body("POST", "/order", r#"{"id":1,"item":"tea"}"#))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#"{"id":2,"item":"TEA"}"#);

        let r = c.call(bare("GET", "/value")).await;
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#"{"a":[1,2],"b":null}"#);

        let r = c.call(bare("GET", "/bytes")).await;
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(r.body, [0, 1, 255]);

        let r = c.call(with_body("POST", "/items", "x")).await;
        assert_eq!((r.status, r.text()), (201, "created x"), "(status, body)");

        let r = c.call(bare("GET", "/fail")).await;
        assert_eq!((r.status, r.text()), (500, "the handler failed\n"));
        let r = c.call(with_body("POST", "/order", "not json")).await;
        assert_eq!(r.status, 500, "req.json() failed with ?: {r:?}");
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.status, 200, "the connection outlives handler errors");
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Connections: keep-alive, close, pipelining
// ---------------------------------------------------------------------------------------

#[test]
fn http_1_1_keeps_the_connection_and_connection_close_ends_it() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("keepalive"), &server).await;
        let mut c = Client::connect(s.addr).await;
        for n in 1..=2 {
            let r = c.call(bare("GET", &format!("/n/{n}"))).await;
            assert_eq!(r.text(), format!("response {n}"));
            assert_eq!(r.header("connection"), None, "kept open");
        }
        let r = c
            .call("GET /n/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(r.text(), "response 3");
        assert_eq!(r.header("connection"), Some("close"));
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("http10"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let r = c.call("GET /hello HTTP/1.0\r\n\r\n").await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        assert_eq!(r.header("connection"), Some("close"));
        c.assert_closed().await;

        let mut c = Client::connect(s.addr).await;
        for n in 1..=2 {
            let r = c
                .call(format!(
                    "GET /n/{n} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                ))
                .await;
            assert_eq!(r.text(), format!("response {n}"));
            assert_ne!(r.header("connection"), Some("close"));
        }
        let r = c.call("GET /n/3 HTTP/1.0\r\n\r\n").await;
        assert_eq!(r.text(), "response 3");
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("pipeline"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let three = [
            bare("GET", "/n/1"),
            with_body("POST", "/echo", "second"),
            bare("GET", "/n/3"),
        ]
        .concat();
        c.send(three).await;
        assert_eq!(c.response().await.text(), "response 1");
        assert_eq!(c.response().await.text(), "second");
        assert_eq!(c.response().await.text(), "response 3");
        let r = c.call(bare("GET", "/n/4")).await;
        assert_eq!(r.text(), "response 4", "still usable afterwards");
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

#[test]
fn content_length_and_chunked_bodies_are_read_exactly() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bodies"), &server).await;
        let mut c = Client::connect(s.addr).await;
        let r = c.call(with_body("POST", "/echo", "hello, body")).await;
        assert_eq!(r.body, b"hello, body");
        let chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n\
            6\r\n world\r\n\
            0\r\nX-Trailer: yes\r\n\r\n";
        let r = c.call(chunked).await;
        assert_eq!((r.status, r.text()), (200, "hello world"));
        let r = c.call(bare("GET", "/n/2")).await;
        assert_eq!(r.text(), "response 2", "the framing ended where it should");
        s.stop().await.unwrap();
    });
}

#[test]
fn ambiguous_body_framing_is_400() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("framing"), &server).await;
        for raw in [
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ] {
            rejected(s.addr, raw.as_bytes(), 400).await;
        }
        s.stop().await.unwrap();
    });
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("continue");
        app.http().max_body(1024);
        let s = start(app, &server).await;
        let mut c = Client::connect(s.addr).await;
        c.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await;
        let interim = c.response().await;
        assert_eq!(interim.status, 100, "{interim:?}");
        c.send("hello").await;
        let r = c.response().await;
        assert_eq!((r.status, r.text()), (200, "hello"));

        // Too large: the final answer comes at once, without inviting the body.
        let r = c
            .call("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
            .await;
        assert_eq!(r.status, 413);
        c.assert_closed().await;
        s.stop().await.unwrap();
    });
}

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
            get_raw(s.addr, &head(8000)).await.status,
            200,
            "under 8 KiB"
        );
        rejected(s.addr, head(9000).as_bytes(), 431).await;
        rejected(s.addr, head(64 * 1024).as_bytes(), 431).await;

        let headers = |n: usize| {
            let lines: String = (1..n).map(|i| format!("X-H{i}: {i}\r\n")).collect();
            format!("GET /hello HTTP/1.1\r\nHost: t\r\n{lines}\r\n")
        };
        assert_eq!(
            get_raw(s.addr, &headers(100)).await.status,
            200,
            "100 is fine"
        );
        rejected(s.addr, headers(101).as_bytes(), 431).await;
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
        let r = get_raw(s.addr, &with_body("POST", "/echo", &full)).await;
        assert_eq!((r.status, r.body.len()), (200, 1024), "exactly the limit");

        // Only the head is sent: the answer must not wait for the body.
        rejected(
            s.addr,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n",
            413,
        )
        .await;
        let chunked = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             400\r\n{full}\r\n1\r\n"
        );
        rejected(s.addr, chunked.as_bytes(), 413).await;
        let one_big_chunk =
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n";
        rejected(s.addr, one_big_chunk.as_bytes(), 413).await;
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
            rejected(s.addr, raw, 400).await;
        }
        for raw in [
            "BREW /hello HTTP/1.1\r\n\r\n",
            "get /hello HTTP/1.1\r\n\r\n",
        ] {
            rejected(s.addr, raw.as_bytes(), 501).await;
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
        let mut c = Client::connect(s.addr).await;
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
        let mut c = Client::connect(s.addr).await;
        let mut writer = c.stream();
        // One byte every 50 ms: each read is quick, the head never ends.
        let trickle = smol::spawn(async move {
            let _ = writer.write_all(b"GET /hello HTTP/1.1\r\nX-Slow: ").await;
            while writer.write_all(b"a").await.is_ok() {
                async_io::Timer::after(Duration::from_millis(50)).await;
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
        let mut c = Client::connect(s.addr).await;
        let sent = Instant::now();
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.header("connection"), None, "kept open at first");
        c.assert_closed().await;
        assert!(sent.elapsed() >= limit, "not before the limit");
        s.stop().await.unwrap();
    });
}

#[test]
fn a_connection_over_max_connections_gets_503() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("maxconn");
        app.http().max_connections(2);
        let s = start(app, &server).await;
        let mut a = Client::connect(s.addr).await;
        let mut b = Client::connect(s.addr).await;
        assert_eq!(a.call(bare("GET", "/n/1")).await.status, 200);
        assert_eq!(b.call(bare("GET", "/n/2")).await.status, 200);

        let mut third = Client::connect(s.addr).await;
        let r = third.response().await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("connection"), Some("close"));
        third.assert_closed().await;

        // Free a slot: a new connection is served again once the server has let go of it.
        let r = a
            .call("GET /n/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(r.status, 200);
        a.assert_closed().await;
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let r = get(s.addr, "/hello").await;
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503);
            assert!(Instant::now() < deadline, "the slot was never freed");
        }
        assert_eq!(b.call(bare("GET", "/n/2")).await.status, 200);
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
            let mut c = Client::connect(s.addr).await;
            c.send(partial).await;
            c.stream().shutdown(std::net::Shutdown::Write).unwrap();
            c.assert_closed().await;
        }
        // And an abrupt close.
        let mut c = Client::connect(s.addr).await;
        c.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
            .await;
        drop(c);

        let r = get_raw(s.addr, &with_body("POST", "/count", "whole")).await;
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
        let mut c = Client::connect(s.addr).await;
        let r = c.call(bare("GET", "/panic")).await;
        assert_eq!(r.status, 500);
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!((r.status, r.text()), (200, "hello"), "same connection");
        let r = get(s.addr, "/panic").await;
        assert_eq!(r.status, 500);
        let r = get(s.addr, "/hello").await;
        assert_eq!((r.status, r.text()), (200, "hello"), "new connection");
        s.stop().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// HTTP and NATS in one app
// ---------------------------------------------------------------------------------------

/// A GET handler that reports it started, then waits for `release` before answering.
fn held(app: &mut App, path: &str) -> (async_channel::Receiver<()>, async_channel::Sender<()>) {
    let (entered_tx, entered) = async_channel::unbounded();
    let (release, release_rx) = async_channel::unbounded::<()>();
    app.http().get(path, move || {
        let (entered_tx, release_rx) = (entered_tx.clone(), release_rx.clone());
        async move {
            let _ = entered_tx.send(()).await;
            let _ = release_rx.recv().await;
            "held, then done"
        }
    });
    (entered, release)
}

#[test]
fn http_and_nats_endpoints_serve_side_by_side() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("mixed");
        app.listen("greet", |msg: Msg<String>| async move {
            json!({"greeting": format!("hello, {}", msg.data)})
        });
        app.http()
            .get("/forward/{name}", |req: Request| async move {
                let name = req.param("name").unwrap_or_default().to_string();
                let answer: Value = req.app().request("greet", name).await?;
                Ok::<_, panini::Error>(answer)
            });
        let (entered, release) = held(&mut app, "/held");
        let s = start(app, &server).await;

        let r = get(s.addr, "/forward/joe").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#"{"greeting":"hello, joe"}"#);

        // An HTTP request held in flight, HTTP traffic going on: NATS still answers.
        let mut held_conn = Client::connect(s.addr).await;
        held_conn.send(bare("GET", "/held")).await;
        entered.recv().await.unwrap();
        let addr = s.addr;
        let traffic = smol::spawn(async move {
            let mut c = Client::connect(addr).await;
            for n in 0..50 {
                let r = c.call(bare("GET", &format!("/n/{n}"))).await;
                assert_eq!(r.text(), format!("response {n}"));
            }
        });
        let nc = nats::connect(server.url()).await.unwrap();
        for n in 0..50 {
            let m = nc
                .request_with("greet", None, format!("n{n}"), IO_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(
                m.payload,
                format!(r#"{{"greeting":"hello, n{n}"}}"#).as_bytes()
            );
        }
        bounded("the HTTP traffic", traffic).await;
        release.send(()).await.unwrap();
        let r = held_conn.response().await;
        assert_eq!((r.status, r.text()), (200, "held, then done"));
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
        let Served {
            addr,
            handle,
            stop: _keep_running, // dropping it would stop the app
            done,
        } = start(app, &server).await;
        let mut idle = Client::connect(addr).await;
        assert_eq!(idle.call(bare("GET", "/hello")).await.status, 200);
        let mut busy = Client::connect(addr).await;
        busy.send(bare("GET", "/held")).await;
        entered.recv().await.unwrap();

        handle.shutdown();
        // The idle keep-alive connection is closed at once (its timeout is 15 s); by then
        // the server stopped accepting.
        idle.assert_closed().await;
        let refused = std::net::TcpStream::connect(addr);
        assert!(
            refused.is_err(),
            "a new connection after shutdown: {refused:?}"
        );
        assert!(
            !done.is_finished(),
            "run_until waits for the request in flight"
        );

        release.send(()).await.unwrap();
        let r = busy.response().await;
        assert_eq!((r.status, r.text()), (200, "held, then done"));
        assert_eq!(r.header("connection"), Some("close"));
        busy.assert_closed().await;
        bounded("run_until", done).await.unwrap();
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
        let mut c = Client::connect(s.addr).await;
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
        let mut c = Client::connect(s.addr).await;
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
        let mut c = Client::connect(s.addr).await;
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
        let r = get(s.addr, "/items/a+b").await;
        assert_eq!(r.text(), "item a+b");
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_no_content_length_in_204() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug5"), &server).await;
        let mut c = Client::connect(s.addr).await;
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
        let mut c = Client::connect(s.addr).await;
        let r = c.call(bare("DELETE", "/partial")).await;
        println!("DELETE -> {r:?}");
        let r2 = c.call(bare("OPTIONS", "/partial")).await;
        println!("OPTIONS -> {r2:?}");
        assert!(r.status != 405 || r.header("allow").is_some(), "{r:?}");
        assert!(r2.status != 405 || r2.header("allow").is_some(), "{r2:?}");
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_shutdown_keeps_a_request_whose_body_is_coming() {
    let server = NatsServer::start();
    run(async {
        let app = web("bug7");
        let Served {
            addr,
            handle,
            stop: _k,
            done,
        } = start(app, &server).await;
        let mut c = Client::connect(addr).await;
        c.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .await;
        assert_eq!(c.response().await.status, 100);
        let mut idle = Client::connect(addr).await;
        assert_eq!(idle.call(bare("GET", "/hello")).await.status, 200);
        handle.shutdown();
        idle.assert_closed().await;
        c.send("hello").await;
        let r = c.response().await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        bounded("run_until", done).await.unwrap();
    });
}

#[test]
fn regression_missing_host_is_400() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug8"), &server).await;
        rejected(s.addr, b"GET /hello HTTP/1.1\r\n\r\n", 400).await;
        s.stop().await.unwrap();
    });
}

#[test]
fn regression_absolute_form_is_accepted() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("bug9"), &server).await;
        let r = get_raw(s.addr, "GET http://t/hello HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(r.status, 200, "{r:?}");
        s.stop().await.unwrap();
    });
}
