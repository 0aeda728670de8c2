//! The HTTP server over real TCP connections, inside an app that also talks to a real
//! nats-server: routes and views, response types, keep-alive and pipelining, request
//! bodies, HTTP beside NATS. Limits, failures and shutdown are in `http_limits.rs`.
//!
//! Requests are raw bytes (see `common/http_client.rs`), so malformed, pipelined and
//! half-sent requests are as easy to write as good ones. Each test waits for what it
//! expects (a response, the close, an event) with a bound; none sleeps to synchronise.

mod common;
#[path = "common/http_app.rs"]
mod http_app;
#[path = "common/http_client.rs"]
mod http_client;

use common::{run, NatsServer};
use http_app::*;
use http_client::{bounded, get, Client, IO_TIMEOUT};
use panini::client as nats;
use panini::http::Request;
use panini::{Json, Msg};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Routes and views
// ---------------------------------------------------------------------------------------

#[test]
fn each_verb_reaches_its_handler_on_one_connection() {
    let server = NatsServer::start();
    run(async {
        let s = start(web("verbs"), &server).await;
        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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
        let r = get(s.http_addr(), "/items/a%20b%2Fc").await;
        assert_eq!(r.text(), "item a b/c", "%2F decodes after the split");
        let r = get(s.http_addr(), "/items/caf%C3%A9").await;
        assert_eq!(r.text(), "item café");

        let r = get(s.http_addr(), "/query?a=1&b=two%20words&c=x+y&flag&a=2").await;
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
            let r = get(s.http_addr(), path).await;
            assert_eq!(r.status, 404, "{path}");
        }
        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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

        let r = c.call(with_body("POST", "/order", "not json")).await;
        assert_eq!(r.status, 500, "req.json() failed with ?: {r:?}");
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.status, 200, "the connection outlives handler errors");
        s.stop().await.unwrap();
    });
}

/// The error's text is for the service's log, not for whoever sent the request: it can
/// name files, hosts, queries or the JSON decoder's view of the input.
#[test]
fn a_handler_error_answers_a_generic_500_without_its_text() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("errors");
        app.http().get("/unencodable", || async {
            // JSON object keys must be strings: serde_json refuses a tuple key.
            Json(std::collections::BTreeMap::from([((1u8, 2u8), 3u8)]))
        });
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let generic = "500 Internal Server Error\n";
        let r = c.call(bare("GET", "/fail")).await;
        assert_eq!((r.status, r.text()), (500, generic));
        let r = c.call(with_body("POST", "/order", "not json")).await;
        assert_eq!((r.status, r.text()), (500, generic), "no decoder text");
        let r = c.call(bare("GET", "/unencodable")).await;
        assert_eq!((r.status, r.text()), (500, generic), "no encoder text");
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.status, 200, "the connection outlives handler errors");
        s.stop().await.unwrap();
    });
}

/// `request_sync` in a route would block the executor thread the whole app runs on: it is
/// refused at once (a 500) and the server goes on, instead of freezing.
#[test]
fn a_route_calling_request_sync_gets_an_error_not_a_frozen_app() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("sync-in-route");
        app.http()
            .get("/sync", |app: panini::AppHandle| async move {
                match app.request_sync("anything", "x") {
                    Err(panini::Error::SyncInAsync { .. }) => "refused".to_string(),
                    other => format!("{other:?}"),
                }
            });
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let r = c.call(bare("GET", "/sync")).await;
        assert_eq!((r.status, r.text()), (200, "refused"));
        let r = c.call(bare("GET", "/hello")).await;
        assert_eq!(r.status, 200, "the app still serves");
        s.stop().await.unwrap();
    });
}

/// Routes that tell where they run: `/thread` answers the thread's name, then (on Linux)
/// which thread of the process it is (`<pid>/task/<tid>`, from `/proc/thread-self`);
/// `/nats` answers whether the blocking methods were refused, then the reply of an echo
/// endpoint on `echo` (also added) to `{"n": 1}`.
fn where_routes_run(app: &mut panini::App, echo: &'static str) {
    app.http()
        .get("/thread", || async {
            let name = std::thread::current().name().unwrap_or("").to_string();
            let me = std::fs::read_link("/proc/thread-self").unwrap_or_default();
            format!("{name} {}", me.display())
        })
        .get("/nats", move |app: panini::AppHandle| async move {
            let refused = |r| matches!(r, Err(panini::Error::SyncInAsync { .. }));
            let sync = refused(app.request_sync("anything", "x").map(drop))
                && refused(app.publish_sync("anything", "x"));
            let reply = app.request(echo, json!({"n": 1})).await;
            format!(
                "{sync} {}",
                reply.map_or_else(|e| e.to_string(), |v| v.to_string())
            )
        });
    app.listen(echo, |msg: Msg<Value>| async move { Json(msg.data) });
}

/// With `Http::threads(2)` the connections are served on the server's own threads, where
/// a route still reaches NATS and the blocking methods are still refused; the app stops
/// as usual. By default they are served where the app runs.
#[test]
fn http_threads_of_its_own_serve_the_routes_and_stop_with_the_app() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("http-threads");
        where_routes_run(&mut app, "echo.thread");
        app.http().threads(2);
        let s = start(app, &server).await;
        let (mut a, mut b) = (
            Client::connect(s.http_addr()).await,
            Client::connect(s.http_addr()).await,
        );
        for c in [&mut a, &mut b] {
            let r = c.call(bare("GET", "/thread")).await;
            assert!(r.text().starts_with("panini-http-"), "{:?}", r.text());
            let r = c.call(bare("GET", "/nats")).await;
            assert_eq!(r.text(), r#"true {"n":1}"#);
        }
        s.stop().await.unwrap();

        let mut app = web("http-default-threads");
        where_routes_run(&mut app, "echo.thread");
        let s = start(app, &server).await;
        let mut c = Client::connect(s.http_addr()).await;
        let r = c.call(bare("GET", "/thread")).await;
        assert!(!r.text().starts_with("panini-http"), "{:?}", r.text());
        s.stop().await.unwrap();
    });
}

/// With `Http::low_latency(true)` the routes are served on one thread of the server's own
/// (which of the process's threads it is, read from `/proc/thread-self`); a route still
/// reaches NATS, the blocking methods are still refused, and the app stops as usual. When
/// that thread parks and when it waits in the reactor is tested in `app::executor`.
#[cfg(target_os = "linux")]
#[test]
fn http_low_latency_serves_on_one_thread_of_its_own_and_stops_with_the_app() {
    let server = NatsServer::start();
    run(async {
        let mut app = web("http-low-latency");
        where_routes_run(&mut app, "echo.ll");
        app.http().low_latency(true);
        let s = start(app, &server).await;

        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(Client::connect(s.http_addr()).await);
        }
        let mut served_by = std::collections::BTreeSet::new();
        for _ in 0..10 {
            for c in &mut clients {
                let r = c.call(bare("GET", "/thread")).await;
                let text = r.text();
                let (name, task) = text.split_once(' ').expect("name and task");
                assert_eq!(name, "panini-http-1", "served on the server's own thread");
                served_by.insert(task.to_string());
            }
        }
        assert_eq!(served_by.len(), 1, "one thread by default: {served_by:?}");
        let r = clients[0].call(bare("GET", "/nats")).await;
        assert_eq!(r.text(), r#"true {"n":1}"#);

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
        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
        let r = c.call("GET /hello HTTP/1.0\r\n\r\n").await;
        assert_eq!((r.status, r.text()), (200, "hello"));
        assert_eq!(r.header("connection"), Some("close"));
        c.assert_closed().await;

        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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
            rejected(s.http_addr(), raw.as_bytes(), 400).await;
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
        let mut c = Client::connect(s.http_addr()).await;
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
// HTTP and NATS in one app
// ---------------------------------------------------------------------------------------

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

        let r = get(s.http_addr(), "/forward/joe").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, br#"{"greeting":"hello, joe"}"#);

        // An HTTP request held in flight, HTTP traffic going on: NATS still answers.
        let mut held_conn = Client::connect(s.http_addr()).await;
        held_conn.send(bare("GET", "/held")).await;
        entered.recv().await.unwrap();
        let addr = s.http_addr();
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
