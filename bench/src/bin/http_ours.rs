//! HTTP benchmark server, ours: a `panini::App` with one HTTP route and no NATS endpoint.
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

use panini::App;

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
        .get("/get", || async { "Hello, world" });
    app.start();
}
