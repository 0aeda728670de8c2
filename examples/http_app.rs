//! HTTP endpoints and NATS endpoints together in one service, as in Panini's introduction:
//! a single GET endpoint, a class-style REST view, an endpoint that forwards to a NATS
//! request, and a NATS listener.
//!
//! `cargo run --example http_app`, then `curl localhost:8080/get`,
//! `curl -X POST localhost:8080/path/to/rest/endpoints`,
//! `curl localhost:8080/forward/joe`. `HTTP_APP_DEMO=1` runs those calls itself and stops.

use panini::http::{Method, Request, Response, View};
use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

fn main() {
    let mut app = App::new("http_app").host("127.0.0.1").port(4222);

    app.listen("some.publish.subject", |msg: Msg<Value>| async move {
        println!("NATS: {} on {}", msg.data, msg.subject);
    });

    app.listen("greet.request", |msg: Msg<String>| async move {
        json!({"greeting": format!("hello, {}", msg.data)})
    });

    app.http().get("/get", || async { "Hello, world" });

    app.http().view("/path/to/rest/endpoints", MyView);

    // An HTTP endpoint that forwards to a NATS request and returns its answer.
    app.http()
        .get("/forward/{name}", |req: Request| async move {
            let name = req.param("name").unwrap_or("nobody").to_string();
            let answer: Value = req.app().request("greet.request", name).await?;
            Ok::<_, panini::Error>(answer)
        });

    if std::env::var("HTTP_APP_DEMO").is_ok() {
        app.task(demo);
    }
    app.start();
}

/// HTTP endpoints for a REST schema: one type, one method per verb.
struct MyView;

impl View for MyView {
    const METHODS: &'static [Method] = &[Method::Get, Method::Post];

    async fn get(&self, _req: Request) -> Response {
        Response::text(200, "Hello, REST world")
    }

    async fn post(&self, req: Request) -> Response {
        let body = req.text().unwrap_or_default().to_string();
        Response::json(201, &json!({"created": body}))
    }
}

/// Calls the endpoints over real HTTP, prints the answers, then stops the app.
async fn demo(app: AppHandle) -> panini::Result<()> {
    let addr = app.http_addr().expect("the app has an HTTP server");
    for (method, path) in [
        ("GET", "/get"),
        ("GET", "/path/to/rest/endpoints"),
        ("POST", "/path/to/rest/endpoints"),
        ("DELETE", "/path/to/rest/endpoints"),
        ("GET", "/forward/joe"),
    ] {
        let answer = smol::unblock(move || http_call(addr, method, path)).await?;
        println!("{method} {path} -> {answer}");
    }
    app.publish("some.publish.subject", json!({"from": "demo"}))
        .await?;
    app.client().flush().await?;
    app.shutdown();
    Ok(())
}

/// A minimal blocking HTTP/1.1 client for the demo: status line and body.
fn http_call(addr: std::net::SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: demo\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndata")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok(format!("{status} {body}"))
}
