//! HTTP benchmark server, axum: the same route and body as `http_ours`, on tokio's default
//! multi-thread runtime (`#[tokio::main]`: one worker per core) and axum's default features.
//!
//! ```text
//! http_axum HTTP_PORT
//! ```

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let app = Router::new().route("/get", get(|| async { "Hello, world" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
