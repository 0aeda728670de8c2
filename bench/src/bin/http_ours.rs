//! HTTP benchmark server, ours: a `panini::App` with an HTTP route (`/get`), and a route
//! (`/nats`) that requests a NATS endpoint of the same app (`http_bench.echo`).
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:PORT http_ours HTTP_PORT
//! ```
//!
//! `App::start` connects to NATS before it serves (as every app does), so `bench/http.sh`
//! starts a `nats-server` and passes `NATS_URL`. The idle keep-alive timeout is raised from
//! 15 s to 120 s so that the 1,000-idle-connections memory test is not racing it; nothing
//! else differs from the defaults (max_connections 1024; `App::threads` 1 unless
//! `PANINI_THREADS` says otherwise; `Http::threads` as `HTTP_THREADS` says, else the
//! default: where the app runs; `Http::low_latency(true)` when `HTTP_LOW_LATENCY=1`).

use std::time::Duration;

use panini::{App, AppHandle, Json, Msg};
use serde_json::{json, Value};

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut app = App::new("http_bench").banner(false);
    if let Ok(n) = std::env::var("HTTP_THREADS") {
        let Ok(n) = n.trim().parse() else {
            eprintln!("http_ours: HTTP_THREADS={n:?} is not a number of threads");
            std::process::exit(2);
        };
        app.http().threads(n);
    }
    if std::env::var("HTTP_LOW_LATENCY").is_ok_and(|v| v == "1") {
        app.http().low_latency(true);
    }
    app.http()
        .port(port)
        .keep_alive_timeout(Duration::from_secs(120))
        .get("/get", || async { "Hello, world" })
        // A route that asks a NATS endpoint of the same app: the request goes out through
        // nats-server and back, whichever threads the route and the endpoint run on. A
        // failed request is a 500, which wrk counts (bench/http.sh reports it).
        .get("/nats", |app: AppHandle| async move {
            let reply: Value = app.request("http_bench.echo", json!({"n": 1})).await?;
            Ok::<_, panini::Error>(reply.to_string())
        });
    app.listen("http_bench.echo", |msg: Msg<Value>| async move { Json(msg.data) });
    app.start();
}
