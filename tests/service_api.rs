//! The NATS Service API against a real nats-server: `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS` (bare, by name, by name and id) answered with the `io.nats.micro.v1` shapes
//! that `nats micro` validates (checked here field by field against the jsm.go schemas'
//! rules); discovery of two instances of one service and of a second service; stats after
//! successful, failed and panicking requests; turned off; a bad version refused at start.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::app::RunningApp;
use common::{run, within, NatsServer};
use panini::client::Client;
use panini::{App, Error, Msg, StartStage};
use serde_json::{json, Value};
use smol::stream::StreamExt;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(5);

/// Sends a discovery request to `subject` and gathers `n` replies (bounded).
async fn gather(client: &Client, subject: &str, n: usize) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(&inbox).await.unwrap();
    client
        .publish_with(subject, Some(&inbox), None, b"{}".to_vec())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        let msg = within(
            BOUND,
            &format!("reply {} to {subject}", got.len() + 1),
            replies.next(),
        )
        .await
        .unwrap();
        got.push(serde_json::from_slice(&msg.payload).unwrap());
    }
    got
}

/// A name as the schema allows it: `^[a-zA-Z0-9_-]+$`.
fn is_name(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// The rules of the jsm.go `io.nats.micro.v1` schemas that apply to every response.
fn check_base(v: &Value, kind: &str) {
    assert_eq!(
        v["type"],
        format!("io.nats.micro.v1.{kind}_response"),
        "{v}"
    );
    assert!(is_name(&v["name"]), "name: {v}");
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "id: {v}");
    let version = v["version"].as_str().expect("version");
    assert!(
        version.len() >= 5 && version.split('.').count() >= 3,
        "version: {v}"
    );
    assert!(
        v["metadata"].is_object() || v["metadata"].is_null(),
        "metadata: {v}"
    );
}

fn check_info(v: &Value) {
    check_base(v, "info");
    assert!(v["description"].is_string(), "description is required: {v}");
    for ep in v["endpoints"].as_array().expect("endpoints") {
        assert!(is_name(&ep["name"]), "endpoint name: {ep}");
        assert!(ep["subject"].is_string(), "{ep}");
        assert!(ep.get("queue_group").is_none_or(Value::is_string), "{ep}");
        assert!(
            ep.get("metadata")
                .is_none_or(|m| m.is_object() || m.is_null()),
            "{ep}"
        );
    }
}

fn check_stats(v: &Value) {
    check_base(v, "stats");
    let started = v["started"].as_str().expect("started");
    assert!(
        started.len() >= 20 && started.ends_with('Z') && &started[10..11] == "T",
        "{v}"
    );
    for ep in v["endpoints"].as_array().expect("endpoints") {
        assert!(is_name(&ep["name"]), "endpoint name: {ep}");
        assert!(ep["subject"].is_string(), "{ep}");
        for n in [
            "num_requests",
            "num_errors",
            "processing_time",
            "average_processing_time",
        ] {
            assert!(ep[n].is_u64(), "{n} is an integer: {ep}");
        }
        assert!(ep["last_error"].is_string(), "last_error is required: {ep}");
    }
}

/// The calculator service: a request endpoint that succeeds, fails or panics.
fn calculator(name: &str) -> App {
    let mut app = App::new(name)
        .version("1.4.0")
        .description("divides numbers")
        .metadata("team", "maths");
    app.listen("calc.div", |msg: Msg<Value>| async move {
        let (a, b) = (msg.data["a"].as_f64(), msg.data["b"].as_f64());
        match (a, b) {
            (Some(_), Some(0.0)) => Err("division by zero".to_string()),
            (Some(a), Some(b)) => Ok(json!(a / b)),
            _ => panic!("no numbers"),
        }
    });
    app.listen("calc.events.*", |_: Msg<Value>| async {})
        .no_queue();
    app
}

#[test]
fn ping_info_and_stats_have_the_micro_v1_shapes() {
    let server = NatsServer::start();
    run(async {
        let app = RunningApp::start(calculator("calculator"), &server).await;
        let client = panini::client::connect(server.url()).await.unwrap();

        let ping = &gather(&client, "$SRV.PING", 1).await[0];
        check_base(ping, "ping");
        assert_eq!(
            (ping["name"].as_str(), ping["version"].as_str()),
            (Some("calculator"), Some("1.4.0"))
        );
        assert_eq!(ping["metadata"], json!({"team": "maths"}));
        let id = ping["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 22);

        let info = &gather(&client, "$SRV.INFO.calculator", 1).await[0];
        check_info(info);
        assert_eq!(info["description"], "divides numbers");
        assert_eq!(
            info["endpoints"],
            json!([
                {"name": "calc-div", "subject": "calc.div", "metadata": null},
                {"name": "calc-events--", "subject": "calc.events.*", "metadata": null},
            ])
        );

        let stats = &gather(&client, &format!("$SRV.STATS.calculator.{id}"), 1).await[0];
        check_stats(stats);
        assert_eq!(stats["id"], id.as_str());
        assert_eq!(stats["endpoints"][0]["num_requests"], 0);
        app.stop().await.unwrap();
    });
}

#[test]
fn stats_count_successful_failed_and_panicking_requests() {
    let server = NatsServer::start();
    run(async {
        let app = RunningApp::start(calculator("calculator"), &server).await;
        let h = app.handle();
        assert_eq!(
            h.request("calc.div", json!({"a": 6, "b": 3}))
                .await
                .unwrap(),
            json!(2.0)
        );
        let failed = h.request("calc.div", json!({"a": 1, "b": 0})).await;
        assert!(
            matches!(failed, Err(Error::Service { code: 500, .. })),
            "{failed:?}"
        );
        let panicked = h.request("calc.div", json!({})).await;
        assert!(
            matches!(panicked, Err(Error::Service { code: 500, .. })),
            "{panicked:?}"
        );
        let bad = h.request("calc.div", "not json").await;
        assert!(
            matches!(bad, Err(Error::Service { code: 400, .. })),
            "{bad:?}"
        );
        h.publish("calc.events.done", json!({})).await.unwrap();
        h.client().flush().await.unwrap();

        let client = panini::client::connect(server.url()).await.unwrap();
        let stats = within(BOUND, "the event counted", async {
            loop {
                let stats = gather(&client, "$SRV.STATS.calculator", 1).await.remove(0);
                if stats["endpoints"][1]["num_requests"] == 1 {
                    return stats;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        check_stats(&stats);
        let div = &stats["endpoints"][0];
        assert_eq!(div["subject"], "calc.div");
        assert_eq!(
            (div["num_requests"].as_u64(), div["num_errors"].as_u64()),
            (Some(4), Some(3))
        );
        assert_eq!(div["last_error"], "400:MessageSchemaError");
        let total = div["processing_time"].as_u64().unwrap();
        assert!(total > 0);
        assert_eq!(div["average_processing_time"].as_u64().unwrap(), total / 4);
        let events = &stats["endpoints"][1];
        assert_eq!(
            (
                events["num_requests"].as_u64(),
                events["num_errors"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(events["last_error"], "");
        app.stop().await.unwrap();
    });
}

#[test]
fn two_instances_of_one_service_and_a_second_service_are_discovered() {
    let server = NatsServer::start();
    run(async {
        let a = RunningApp::start(calculator("calculator"), &server).await;
        let b = RunningApp::start(calculator("calculator"), &server).await;
        let mut other = App::new("greeter").version("0.1.0");
        other.listen("greet", |_: Msg<Value>| async { json!("hi") });
        let c = RunningApp::start(other, &server).await;
        let client = panini::client::connect(server.url()).await.unwrap();

        let all = gather(&client, "$SRV.INFO", 3).await;
        all.iter().for_each(check_info);
        let names: Vec<&str> = all.iter().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(
            names.iter().filter(|n| **n == "calculator").count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| **n == "greeter").count(),
            1,
            "{names:?}"
        );
        let ids: BTreeSet<&str> = all.iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids.len(), 3, "each instance has its own id");

        let calculators = gather(&client, "$SRV.PING.calculator", 2).await;
        assert!(calculators.iter().all(|v| v["name"] == "calculator"));
        let one = calculators[0]["id"].as_str().unwrap();
        let by_id = gather(&client, &format!("$SRV.INFO.calculator.{one}"), 1).await;
        assert_eq!(by_id[0]["id"], one);
        // A request without a reply subject, or with a verb that is gone, is ignored.
        client.publish("$SRV.PING", "{}").await.unwrap();
        let old = client
            .request_with(
                "$SRV.SCHEMA.greeter",
                None,
                "{}",
                Duration::from_millis(300),
            )
            .await;
        assert!(matches!(old, Err(Error::Timeout)), "{old:?}");
        for app in [a, b, c] {
            app.stop().await.unwrap();
        }
    });
}

#[test]
fn endpoints_added_and_removed_at_run_time_are_reported() {
    let server = NatsServer::start();
    run(async {
        let app = RunningApp::start(calculator("calculator"), &server).await;
        let h = app.handle();
        h.subscribe_new_subject("calc.mul", |_: Msg<Value>| async { json!(0) })
            .await
            .unwrap();
        h.unsubscribe_subject("calc.div").await.unwrap();
        let client = panini::client::connect(server.url()).await.unwrap();
        let info = gather(&client, "$SRV.INFO.calculator", 1).await.remove(0);
        let subjects: Vec<&str> = info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["subject"].as_str())
            .collect();
        assert_eq!(subjects, ["calc.events.*", "calc.mul"]);
        app.stop().await.unwrap();
    });
}

#[test]
fn the_service_api_can_be_turned_off_and_a_bad_version_fails_the_start() {
    let server = NatsServer::start();
    run(async {
        let app = RunningApp::start(calculator("calculator").service_api(false), &server).await;
        let client = panini::client::connect(server.url()).await.unwrap();
        let ping = client.request_with("$SRV.PING", None, "{}", BOUND).await;
        assert!(matches!(ping, Err(Error::NoResponders)), "{ping:?}");
        app.stop().await.unwrap();

        let bad = App::new("calculator")
            .version("v1")
            .servers([server.url()])
            .banner(false);
        let ended = within(
            BOUND,
            "the start to fail",
            bad.run_until(std::future::pending()),
        )
        .await;
        assert!(
            matches!(
                &ended,
                Err(Error::Start {
                    stage: StartStage::ServiceApi,
                    ..
                })
            ),
            "{ended:?}"
        );
        assert!(ended.unwrap_err().to_string().contains("SemVer"));
    });
}
