//! A service on a secured NATS: TLS with a private CA (and a client certificate when the
//! server asks for one) and NKey or JWT credentials, all from the environment, so the code
//! says nothing about where or how it connects and the same binary runs anywhere.
//!
//! ```text
//! export NATS_URL=tls://127.0.0.1:4222 NATS_CA=ca.pem \
//!        NATS_CERT=client.pem NATS_KEY=client-key.pem NATS_NKEY=user.nk
//! cargo run --features tls,nkeys --example secure_app            # serves until Ctrl-C
//! cargo run --features tls,nkeys --example secure_app -- ping    # one request to it
//! ```
//!
//! `NATS_CREDS=user.creds` takes the place of `NATS_NKEY` for JWT credentials. The same
//! settings exist in code: `App::tls_ca_file`, `tls_client_cert`, `creds_file`,
//! `nkey_seed_file`. `scripts/run-secure-example` runs both halves against a nats-server
//! it starts with TLS, mutual TLS and an NKey user (the certificates in `tests/certs`).

use panini::{App, AppHandle, Msg};
use serde_json::{json, Value};

fn main() {
    let ping = std::env::args().nth(1).is_some_and(|arg| arg == "ping");
    let mut app = App::new(if ping { "secure_ping" } else { "secure_app" });

    if ping {
        // One request over the secured connection, its reply printed, then a clean stop.
        app.task(|app: AppHandle| async move {
            let reply = app.request("secure.greet", json!({"name": "alice"})).await;
            match reply {
                Ok(reply) => println!("reply: {reply}"),
                Err(e) => {
                    eprintln!("request failed: {e}");
                    std::process::exit(1);
                }
            }
            app.shutdown();
        });
    } else {
        app.listen("secure.greet", |msg: Msg<Value>| async move {
            println!("greeting {} over TLS", msg.data);
            json!({"greeting": format!("hello, {}", msg.data["name"].as_str().unwrap_or("you"))})
        });
    }

    app.start();
}
