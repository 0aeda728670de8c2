//! The client against a 3-node nats-server cluster on loopback: it learns the other nodes
//! from INFO, fails over when its node dies, and leaves a node in lame-duck mode.

mod common;

use std::time::{Duration, Instant};

use common::{run, wait_for, wait_for_within, with_events, NatsServer};
use panini::client::{Client, ConnectOptions, Event};
use smol::stream::StreamExt;

/// Connects to `first` only and waits until the pool holds all `n` nodes.
async fn connect_and_discover(
    first: &NatsServer,
    n: usize,
) -> (Client, smol::channel::Receiver<Event>) {
    let (opts, events) = with_events(
        ConnectOptions::new([first.url()])
            .reconnect_wait(Duration::from_millis(100))
            .reconnect_jitter(Duration::from_millis(20)),
    );
    let client = opts.connect().await.unwrap();
    let mut known = 1;
    while known < n {
        known += wait_for(&events, |e| match e {
            Event::DiscoveredServers(urls) => Some(urls.len()),
            _ => None,
        })
        .await;
    }
    (client, events)
}

/// A responder on `node` that answers every request on `subject` with "pong".
async fn responder(node: &NatsServer, subject: &'static str) -> Client {
    let client = panini::client::connect(node.url()).await.unwrap();
    let mut sub = client.subscribe(subject).await.unwrap();
    let replier = client.clone();
    smol::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = replier.publish(&reply, "pong").await;
            }
        }
    })
    .detach();
    client.flush().await.unwrap();
    client
}

/// Requests until one succeeds (interest may take a moment to cross the routes).
async fn request_ok(client: &Client, subject: &str) {
    for _ in 0..50 {
        let asked = client
            .request_with(subject, None, "ping", Duration::from_millis(200))
            .await;
        match asked {
            Ok(reply) => {
                assert_eq!(reply.payload, b"pong");
                return;
            }
            Err(_) => smol::Timer::after(Duration::from_millis(20)).await,
        };
    }
    panic!("no reply on {subject}");
}

#[test]
fn learns_the_cluster_and_fails_over_within_two_seconds() {
    let mut nodes = NatsServer::cluster(3, &[]);
    run(async {
        let _answering = responder(&nodes[2], "svc.ping").await;
        let (client, events) = connect_and_discover(&nodes[0], 3).await;
        request_ok(&client, "svc.ping").await;

        let killed_at = Instant::now();
        let dead = nodes[0].url();
        nodes[0].stop();
        let now_on = wait_for(&events, |e| match e {
            Event::Reconnected(url) => Some(url.clone()),
            _ => None,
        })
        .await;
        let took = killed_at.elapsed();
        assert!(took < Duration::from_secs(2), "failover took {took:?}");
        assert_ne!(now_on, dead);
        request_ok(&client, "svc.ping").await;
    });
}

/// The lame-duck INFO alone moves the client, within a second: it does not wait to be
/// kicked off at the end of the server's 10 s grace period, and it moves without
/// reporting a lost connection.
#[test]
fn lame_duck_mode_moves_the_client_to_another_node_at_once() {
    let nodes = NatsServer::cluster(3, &[]);
    run(async {
        let _answering = responder(&nodes[1], "svc.ping").await;
        let (client, events) = connect_and_discover(&nodes[0], 3).await;
        assert_eq!(client.server_info().server_name, "n0");
        let signalled = Instant::now();
        nodes[0].lame_duck();
        let (left, _) = wait_for_within(&events, Duration::from_secs(1), "LameDuck", |e| match e {
            Event::LameDuck(url) => Some(url.clone()),
            _ => None,
        })
        .await;
        assert_eq!(left, nodes[0].url());
        let left_at = Instant::now();
        let (now_on, between) = wait_for_within(
            &events,
            Duration::from_secs(1),
            "Reconnected",
            |e| match e {
                Event::Reconnected(url) => Some(url.clone()),
                _ => None,
            },
        )
        .await;
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "moved {took:?} after the signal ({:?} after the LameDuck event)",
            left_at.elapsed()
        );
        assert!(
            !between
                .iter()
                .any(|e| matches!(e, Event::Disconnected { .. })),
            "a lame duck is left, not lost: {between:?}"
        );
        assert_ne!(now_on, nodes[0].url(), "moved off the lame-duck node");
        let info = client.server_info();
        assert_ne!(info.server_name, "n0", "{info:?}");
        let others = [nodes[1].port(), nodes[2].port()];
        assert!(others.contains(&info.port), "{info:?}");
        assert!(!info.ldm, "{info:?}");
        request_ok(&client, "svc.ping").await;
    });
}
