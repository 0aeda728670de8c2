//! How an app finds and names its NATS connection, against a real nats-server (issue #11,
//! "Tests also missing today"): `reconnect(false)`, `host` / `port` without `NATS_URL`, and
//! `client_nats_name` as the server sees it.
//!
//! Each test is written to fail if its feature were broken; the comment above each says how.

mod common;

use std::time::{Duration, Instant};

use common::app::{ask, RunningApp};
use common::monitor::connection_names;
use common::{run, within, NatsServer};
use panini::client;
use panini::{App, Msg};

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// With `reconnect(false)`, losing the server ends `run_until` at once with
/// `Error::Closed` (with the default it would retry 60 times, 2 s apart), and a server
/// that is not there at start fails the start at once instead of being retried.
#[test]
fn reconnect_false_gives_up_at_once() {
    let mut server = NatsServer::start();
    run(async {
        let mut app = App::new("rc").reconnect(false);
        app.listen("rc.echo", |msg: Msg<String>| async move { msg.data });
        let running = RunningApp::start(app, &server).await;
        server.stop();
        let ended = within(
            BOUND,
            "run_until to end once the server is gone",
            running.join(),
        )
        .await;
        assert!(matches!(ended, Err(panini::Error::Closed)), "{ended:?}");

        // The server is gone: nothing listens on its port any more.
        let app = App::new("rc")
            .reconnect(false)
            .servers([server.url()])
            .banner(false);
        let t = Instant::now();
        let result = within(
            BOUND,
            "run_until to fail without retrying",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("no server, no start");
        assert!(err.to_string().contains("connect"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

/// `host` and `port` locate the server when neither `servers` nor `NATS_URL` is set: the
/// app connects to that server (the same server id as a client of it sees) and serves.
/// With `reconnect(false)` an app that ignored them would fail fast on 127.0.0.1:4222,
/// and one that reached another server there would show a different server id.
#[test]
fn host_and_port_locate_the_server_without_nats_url() {
    if let Some(url) = std::env::var_os("NATS_URL") {
        eprintln!(
            "skipped: NATS_URL is set ({url:?}) and wins over host/port; \
             run this test without it"
        );
        return;
    }
    let server = NatsServer::start();
    run(async {
        let mut app = App::new("hp")
            .host("127.0.0.1")
            .port(server.port())
            .reconnect(false);
        app.listen("hp.echo", |msg: Msg<String>| async move { msg.data });
        let running = RunningApp::start_configured(app, &server).await;
        let app = running.handle();
        let c = client::connect(server.url()).await.unwrap();
        assert_eq!(
            app.client().server_info().server_id,
            c.server_info().server_id,
            "the app is connected to the server at host:port"
        );
        assert_eq!(ask(&c, "hp.echo", b"hi").await.payload, b"hi");
        running.stop().await.unwrap();
    });
}

/// `client_nats_name` is the connection name the server shows (its monitoring `/connz`),
/// and `AppHandle::client_name` returns it; without it the server sees Panini's default
/// `{service}__...` name.
#[test]
fn client_nats_name_is_the_name_the_server_sees() {
    let server = NatsServer::start_with_args(&["-m", "-1"]);
    run(async {
        let named = App::new("billing").client_nats_name("billing-eu-7");
        let unnamed = App::new("shipping");
        let named = RunningApp::start(named, &server).await;
        let unnamed = RunningApp::start(unnamed, &server).await;
        let (named_handle, unnamed_handle) = (named.handle(), unnamed.handle());
        assert_eq!(named_handle.client_name(), "billing-eu-7");
        let default_name = unnamed_handle.client_name().to_string();
        assert!(default_name.starts_with("shipping__"), "{default_name}");

        let names = connection_names(&server).await;
        assert!(
            names.iter().any(|n| n == "billing-eu-7"),
            "the server sees the name given: {names:?}"
        );
        assert!(
            names.contains(&default_name),
            "the server sees the default name {default_name}: {names:?}"
        );
        named.stop().await.unwrap();
        unnamed.stop().await.unwrap();
    });
}
