//! HTTP benchmark server, ours: a `panini::App` with one HTTP route and no NATS endpoint.
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:PORT http_ours HTTP_PORT
//! ```
//!
//! `App::start` connects to NATS before it serves (as every app does), so `bench/http.sh`
//! starts a `nats-server` and passes `NATS_URL`. The idle keep-alive timeout is raised from
//! 15 s to 120 s so that the 1,000-idle-connections memory test is not racing it; nothing
//! else differs from the defaults (max_connections 1024; `App::threads`: one thread per
//! core unless `PANINI_THREADS` says otherwise, which `bench/http.sh` passes through).

use std::time::Duration;

use panini::App;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut app = App::new("http_bench").banner(false);
    app.http()
        .port(port)
        .keep_alive_timeout(Duration::from_secs(120))
        .get("/get", || async { "Hello, world" });
    app.start();
}
