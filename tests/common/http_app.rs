//! The HTTP tests' app: test routes and views on port 0 beside a real nats-server, started
//! in-process, plus request builders. Shared by `tests/http.rs` and `tests/http_limits.rs`.

#![allow(dead_code)]

use std::net::SocketAddr;

use crate::common::app::RunningApp;
use crate::common::NatsServer;
use crate::http_client::Client;
use panini::http::{Method, Request, Response, View};
use panini::{App, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Harness: an app with the test routes, started in-process on port 0.
// ---------------------------------------------------------------------------------------

/// Starts `app` against `server` with HTTP on a port the OS picks (see
/// [`RunningApp::http_addr`]); returns once the app is ready.
pub async fn start(mut app: App, server: &NatsServer) -> RunningApp {
    app.http().port(0);
    RunningApp::start(app, server).await
}

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub id: u32,
    pub item: String,
}

/// A view answering GET (so HEAD) and PUT. `delete` is written but not listed, so it must
/// never be reached.
pub struct ItemView;

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
pub struct PostOnly;

impl View for PostOnly {
    const METHODS: &'static [Method] = &[Method::Post];

    async fn post(&self, _req: Request) -> Response {
        Response::text(201, "posted")
    }
}

/// An app named `name` with the routes most tests use.
pub fn web(name: &str) -> App {
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

pub fn panics() -> &'static str {
    panic!("a handler panicked on purpose")
}

/// A request with a `Content-Length` body.
pub fn with_body(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request without a body.
pub fn bare(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// Sends `raw` on a fresh connection and reads one response.
pub async fn get_raw(addr: SocketAddr, raw: &str) -> crate::http_client::Resp {
    Client::connect(addr).await.call(raw).await
}

/// Sends `raw` on a fresh connection and expects `status`, then the close.
pub async fn rejected(addr: SocketAddr, raw: &[u8], status: u16) {
    let mut c = Client::connect(addr).await;
    let r = c.call(raw).await;
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(80)]);
    assert_eq!(r.status, status, "for {shown:?}: {r:?}");
    assert_eq!(r.header("connection"), Some("close"), "for {shown:?}");
    c.assert_closed().await;
}

/// A GET handler that reports it started, then waits for `release` before answering.
pub fn held(app: &mut App, path: &str) -> (smol::channel::Receiver<()>, smol::channel::Sender<()>) {
    let (entered_tx, entered) = smol::channel::unbounded();
    let (release, release_rx) = smol::channel::unbounded::<()>();
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
