//! The testing kit (`panini::testing`) itself: its servers (JetStream, restarts, clusters,
//! a missing binary), its client's waits and failure messages, its app runner.

use std::time::Duration;

#[cfg(feature = "jetstream")]
use panini::jetstream::{Context, StorageType, StreamConfig};
use panini::testing::{run, within, NatsServer, TempDir, TestApp, TestClient};
use panini::{App, Msg};
use serde::Deserialize;
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(5);

#[cfg(feature = "jetstream")]
async fn jetstream(server: &NatsServer) -> Context {
    let client = panini::client::connect(server.url()).await.unwrap();
    Context::new(client).with_timeout(BOUND)
}

// The kit starts JetStream servers without the feature; these tests check them with it.
#[cfg(feature = "jetstream")]
#[test]
fn a_jetstream_server_keeps_its_store_across_a_restart_and_removes_it_on_drop() {
    let mut server = NatsServer::start_jetstream();
    let store = server.store_dir().expect("a JetStream server has a store");
    let url = server.url();
    run(async {
        let js = jetstream(&server).await;
        let config = StreamConfig {
            storage: StorageType::File,
            ..StreamConfig::new("KEPT", ["kept.>"])
        };
        js.create_stream(&config).await.unwrap();
        js.publish("kept.one", "1").await.unwrap();
    });
    server.restart();
    assert_eq!(server.url(), url, "a restart keeps the port");
    run(async {
        let js = jetstream(&server).await;
        let info = js.stream("KEPT").info().await.unwrap();
        assert_eq!(info.state.messages, 1, "the store outlived the restart");
    });
    assert!(store.is_dir(), "{store:?}");
    drop(server);
    assert!(!store.exists(), "the store is removed on drop: {store:?}");
}

#[test]
fn a_plain_server_has_no_store_and_a_config_server_reads_its_file() {
    assert_eq!(NatsServer::start().store_dir(), None);
    let server = NatsServer::with_config("max_payload: 2048\n");
    run(async {
        let client = panini::client::connect(server.url()).await.unwrap();
        assert_eq!(client.server_info().max_payload, 2048);
    });
}

#[test]
fn a_cluster_routes_a_message_from_one_node_to_another() {
    let nodes = NatsServer::cluster(3);
    let names: Vec<String> = run(async {
        let mut names = Vec::new();
        for node in &nodes {
            let client = TestClient::connect(node).await;
            names.push(client.client().server_info().server_name);
        }
        names
    });
    assert_eq!(names, ["n0", "n1", "n2"]);
    // The routes are up; the interest in a subject crosses them a moment later.
    run(routed(&nodes[2], &nodes[0]));
}

/// Waits until a message published on `from` reaches a subscriber on `to`.
async fn routed(from: &NatsServer, to: &NatsServer) {
    let sender = TestClient::connect(from).await;
    let receiver = TestClient::connect(to).await;
    let mut sub = receiver.subscribe("across").await;
    within(BOUND, "a message across the cluster", async {
        loop {
            sender.publish("across", json!({"hop": 1})).await;
            if sub.next_within(Duration::from_millis(50)).await.is_some() {
                return;
            }
        }
    })
    .await;
}

#[test]
fn a_restarted_seed_node_keeps_its_route_port_and_rejoins() {
    let mut nodes = NatsServer::cluster(2);
    let route = nodes[0]
        .cluster_url()
        .expect("a cluster node has a route URL");
    nodes[0].restart();
    assert_eq!(nodes[0].cluster_url(), Some(route));
    run(routed(&nodes[1], &nodes[0]));
}

#[cfg(feature = "jetstream")]
#[test]
fn a_jetstream_cluster_takes_a_replicated_stream_at_once() {
    run(async {
        // Started inside the test's async body: the kit's readiness probe blocks on its
        // own runtime there.
        let started = std::time::Instant::now();
        let nodes = NatsServer::jetstream_cluster(3);
        eprintln!("a JetStream cluster of 3 in {:?}", started.elapsed());
        let js = jetstream(&nodes[1]).await;
        let config = StreamConfig {
            num_replicas: 3,
            ..StreamConfig::new("R3", ["r3.>"])
        };
        let info = js.create_stream(&config).await.unwrap();
        assert_eq!(info.config.num_replicas, 3);
        js.publish("r3.a", "a").await.unwrap();
        assert_eq!(
            js.stream_names().await.unwrap(),
            ["R3"],
            "no probe stream left"
        );
    });
}

#[test]
fn a_missing_binary_says_what_to_install() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "start_a_server", "--nocapture"])
        .env("PANINI_KIT_CHILD", "1")
        .env("NATS_SERVER", "/nonexistent/nats-server")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("apt-get install nats-server"), "{text}");
    assert!(text.contains("/nonexistent/nats-server"), "{text}");
}

/// The child mode of [`a_missing_binary_says_what_to_install`] (`PANINI_KIT_CHILD` set, and
/// `$NATS_SERVER` pointing nowhere); in a normal run it does nothing, as the child modes of
/// `tests/processes.rs` do.
#[test]
fn start_a_server() {
    if std::env::var_os("PANINI_KIT_CHILD").is_some() {
        NatsServer::start();
    }
}

#[test]
fn a_temp_dir_is_removed_on_drop() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("f"), "x").unwrap();
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
}

/// An app with a JSON endpoint, a typed one and one that fails.
fn app() -> App {
    let mut app = App::new("kit");
    app.listen("add", |msg: Msg<Value>| async move {
        json!({"sum": msg.data["a"].as_i64().unwrap_or(0) + msg.data["b"].as_i64().unwrap_or(0)})
    });
    app.listen("fail", |_msg: Msg<Value>| async move {
        Err::<Value, _>("it went wrong")
    });
    app
}

#[derive(Deserialize, Debug, PartialEq)]
struct Sum {
    sum: i64,
}

#[test]
fn request_and_request_as_send_and_read_json() {
    let server = NatsServer::start();
    run(async {
        let app = TestApp::start(app(), &server).await;
        let client = TestClient::connect(&server).await;
        let reply = client.request("add", json!({"a": 2, "b": 3})).await;
        assert_eq!(reply, json!({"sum": 5}));
        let sum: Sum = client.request_as("add", json!({"a": 1, "b": 1})).await;
        assert_eq!(sum, Sum { sum: 2 });
        let raw = client.request_raw("fail", "{}").await;
        let headers = raw.headers.expect("an error reply has headers");
        assert_eq!(headers.get("Nats-Service-Error-Code"), Some("500"));
        app.stop().await.unwrap();
    });
}

#[test]
#[should_panic(expected = "TestClient: request on fail: error reply 500")]
fn an_error_reply_fails_the_request_naming_the_subject() {
    let server = NatsServer::start();
    run(async {
        let _app = TestApp::start(app(), &server).await;
        let client = TestClient::connect(&server).await;
        client.request("fail", json!({})).await;
    });
}

#[test]
#[should_panic(expected = "TestClient: request on nobody.home: no responders")]
fn a_request_nobody_answers_says_so() {
    let server = NatsServer::start();
    run(async {
        let client = TestClient::connect(&server).await;
        client.request("nobody.home", json!({})).await;
    });
}

#[test]
#[should_panic(expected = "TestSubscription: 1 of 2 messages on events.> within 200ms")]
fn expect_says_how_many_messages_came() {
    let server = NatsServer::start();
    run(async {
        let client = TestClient::connect(&server).await;
        let mut events = client.subscribe("events.>").await;
        client.publish("events.one", json!(1)).await;
        events.expect(2, Duration::from_millis(200)).await;
    });
}

#[test]
fn next_within_is_none_when_nothing_comes_and_expect_leaves_the_rest() {
    let server = NatsServer::start();
    run(async {
        let client = TestClient::connect(&server).await;
        let mut events = client.subscribe("e").await;
        assert!(events
            .next_within(Duration::from_millis(50))
            .await
            .is_none());
        for n in 0..3 {
            client.publish("e", json!(n)).await;
        }
        assert_eq!(events.expect_json(2, BOUND).await, [json!(0), json!(1)]);
        let third = events.next_within(BOUND).await.expect("the third message");
        assert_eq!(third.payload, b"2");
    });
}

#[test]
fn a_dropped_test_app_is_stopped() {
    let server = NatsServer::start();
    run(async {
        let mut built = App::new("dropped");
        let (tx, stopped) = smol::channel::bounded::<()>(1);
        built.on_stop(move |_| {
            let _ = tx.try_send(());
            std::future::ready(())
        });
        let app = TestApp::start(built, &server).await;
        drop(app);
        within(BOUND, "the on_stop hook", stopped.recv())
            .await
            .unwrap();
    });
}
