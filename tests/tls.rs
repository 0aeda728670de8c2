//! TLS against a real nats-server, and against a fake one for what nats-server will not
//! do: `tls://` and upgraded `nats://` connections; `tls://` to a server without TLS,
//! refused before CONNECT; certificate failures that end the connect at once, with no
//! retries; mutual TLS and certificate-mapped users; a restart and a cluster failover that
//! stay on TLS; a handshake that never completes, bounded by the connect timeout.
//!
//! The certificates are the committed test-only ones in `tests/certs/`
//! (`scripts/make-test-certs`); the servers come from `common::tls`.

#![cfg(feature = "tls")]

mod common;
#[path = "common/fake.rs"]
mod fake;

use std::time::{Duration, Instant};

use common::tls::{cert, mtls_config, optional_tls_config, verify_and_map_config, ServerTls};
use common::{run, wait_for_within, with_events, within, NatsServer};
use fake::{FakeServer, Handshake};
use panini::client::{Client, ConnectOptions, Event};
use panini::Error;
use smol::future::zip;
use smol::stream::StreamExt;

/// Bound on anything a test waits for that should come at once (a message, a log line).
const BOUND: Duration = Duration::from_secs(5);

/// How long a refused connect may take: one attempt, no retries, no timeout waited out.
const REFUSED_WITHIN: Duration = Duration::from_secs(1);

/// How long a client whose server died may take to be on TLS again (the restarted server
/// or another node).
const RECONNECT_WITHIN: Duration = Duration::from_secs(5);

/// What nats-server logs for every TLS handshake that fails, whatever the reason.
const HANDSHAKE_ERROR: &str = "TLS handshake error";

/// A first byte of 0x16 is a TLS handshake record: the ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The fake's INFO for a server that requires TLS.
const TLS_REQUIRED_INFO: &[u8] = b"INFO {\"server_id\":\"FAKE\",\"version\":\"2.9.10\",\"max_payload\":1048576,\"proto\":1,\"headers\":true,\"tls_required\":true} \r\n";

/// Options for `servers` that trust the test CA (`tests/certs/ca.pem`).
fn trusting_ca<I: IntoIterator<Item = String>>(servers: I) -> ConnectOptions {
    ConnectOptions::new(servers).tls_ca_file(cert("ca.pem"))
}

/// `opts` presenting alice's client certificate (`tests/certs/client.pem`).
fn as_alice(opts: ConnectOptions) -> ConnectOptions {
    opts.tls_client_cert(cert("client.pem"), cert("client-key.pem"))
}

/// Connects with `opts`, which must fail: the error and how long connect took.
async fn refused(opts: ConnectOptions) -> (Error, Duration) {
    let started = Instant::now();
    match opts.connect().await {
        Ok(client) => panic!("connected to {:?}", client.server_info()),
        Err(e) => (e, started.elapsed()),
    }
}

/// The text of `err`, which must be [`Error::Tls`].
fn tls_text(err: &Error) -> String {
    match err {
        Error::Tls(_) => err.to_string(),
        other => panic!("expected Error::Tls, got {other:?} ({other})"),
    }
}

/// Whether `err` says that time ran out: a timeout, or no server for want of time.
fn is_timeout(err: &Error) -> bool {
    match err {
        Error::Timeout => true,
        Error::Io(e) => e.kind() == std::io::ErrorKind::TimedOut,
        Error::NoServers(failures) => {
            !failures.is_empty() && failures.iter().all(|(_, e)| is_timeout(e))
        }
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Publish, subscribe and request over `client`: a note to itself and an echo service.
async fn exchange(client: &Client) {
    let mut notes = client.subscribe("tls.note").await.unwrap();
    let mut asks = client.subscribe("tls.echo").await.unwrap();
    let replier = client.clone();
    let _echo = smol::spawn(async move {
        while let Some(msg) = asks.next().await {
            if let Some(reply) = &msg.reply {
                let _ = replier.publish(reply, &msg.payload).await;
            }
        }
    });
    client.publish("tls.note", "sealed").await.unwrap();
    let note = within(BOUND, "the note", notes.next()).await.unwrap();
    assert_eq!(note.payload, b"sealed");
    let reply = client
        .request_with("tls.echo", None, "ping", BOUND)
        .await
        .unwrap();
    assert_eq!(reply.payload, b"ping");
}

#[test]
fn tls_urls_by_ip_and_by_name_publish_subscribe_and_request() {
    let server = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        // The certificate has both SANs: IP 127.0.0.1 and DNS localhost.
        for url in [server.tls_url(), server.tls_localhost_url()] {
            let client = trusting_ca([url.clone()])
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(client.server_info().tls_required, "{url}");
            exchange(&client).await;
        }
    });
}

#[test]
fn a_nats_url_upgrades_when_the_server_requires_tls() {
    let server = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        let client = trusting_ca([server.url()]).connect().await.unwrap();
        assert!(client.server_info().tls_required);
        exchange(&client).await;
        // The upgrade verifies the server too: without the test CA it is refused.
        let (err, _) = refused(ConnectOptions::new([server.url()])).await;
        tls_text(&err);
    });
}

#[test]
fn tls_to_a_server_without_tls_fails_before_connect() {
    let plain = NatsServer::start();
    run(async {
        let by_scheme = trusting_ca([format!("tls://{}", plain.addr())]);
        let by_option = trusting_ca([plain.url()]).require_tls(true);
        for opts in [by_scheme, by_option] {
            let (err, took) = refused(opts).await;
            let text = tls_text(&err);
            assert!(text.contains("does not offer TLS"), "{text}");
            assert!(took < REFUSED_WITHIN, "refused after {took:?}");
        }

        // What the client sent, byte for byte: no CONNECT, at most a TLS attempt.
        let fake = FakeServer::start(Handshake::Mute).await;
        let url = fake.url().replace("nats://", "tls://");
        let serve = async {
            let mut conn = fake.next_conn().await;
            conn.send(fake::INFO).await;
            conn.raw_until_closed().await
        };
        let ((err, _), sent) = zip(refused(trusting_ca([url])), serve).await;
        let text = tls_text(&err);
        assert!(text.contains("does not offer TLS"), "{text}");
        assert!(
            !contains(&sent, b"CONNECT") && (sent.is_empty() || sent[0] == TLS_HANDSHAKE_RECORD),
            "the client sent {:?}",
            String::from_utf8_lossy(&sent)
        );
        assert_eq!(fake.accepted(), 1, "one attempt");
    });
}

#[test]
fn a_server_certificate_from_an_unknown_issuer_is_refused_once() {
    let server = NatsServer::start_tls(ServerTls::UnknownIssuer, &[]);
    run(async {
        // Reconnects are allowed and quick: a first connect must still not retry.
        let opts = trusting_ca([server.tls_url()])
            .max_reconnect_attempts(Some(100))
            .reconnect_wait(Duration::from_millis(10));
        let (err, took) = refused(opts).await;
        let text = tls_text(&err);
        let squashed = text.to_lowercase().replace([' ', '_'], "");
        assert!(squashed.contains("unknownissuer"), "{text}");
        assert!(took < REFUSED_WITHIN, "refused after {took:?}");

        // connect() has returned: no task of the client is left to try again.
        server.wait_for_log(HANDSHAKE_ERROR, BOUND).await;
        assert_eq!(
            server.log_count(HANDSHAKE_ERROR),
            1,
            "one handshake, not a storm:\n{}",
            server.log()
        );
    });
}

#[test]
fn a_server_certificate_for_another_name_is_refused_naming_it() {
    let server = NatsServer::start_tls(ServerTls::WrongName, &[]);
    run(async {
        for (url, name) in [
            (server.tls_url(), "127.0.0.1"),
            (server.tls_localhost_url(), "localhost"),
        ] {
            let (err, took) = refused(trusting_ca([url.clone()])).await;
            let text = tls_text(&err);
            assert!(
                text.contains("not valid for name") && text.contains(name),
                "{url}: {text}"
            );
            assert!(took < REFUSED_WITHIN, "{url}: refused after {took:?}");
        }
    });
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate_and_accepts_one_with() {
    let by_config = NatsServer::with_tls_config(&mtls_config());
    let by_flags = NatsServer::start_tls(ServerTls::Mutual, &[]);
    run(async {
        for server in [&by_config, &by_flags] {
            // In TLS 1.3 the client's handshake completes; the server's alert is what the
            // client reads while it waits for the PONG.
            let (err, took) = refused(trusting_ca([server.tls_url()])).await;
            let text = tls_text(&err);
            assert!(text.to_lowercase().contains("certificate"), "{text}");
            assert!(took < REFUSED_WITHIN, "refused after {took:?}");
            server
                .wait_for_log("client didn't provide a certificate", BOUND)
                .await;

            let client = as_alice(trusting_ca([server.tls_url()]))
                .connect()
                .await
                .unwrap();
            exchange(&client).await;
        }
    });
}

#[test]
fn verify_and_map_takes_the_user_from_the_client_certificate() {
    let mapped = NatsServer::with_tls_config(&verify_and_map_config(&["alice@example.com"]));
    let unmapped = NatsServer::with_tls_config(&verify_and_map_config(&["bob@example.com"]));
    run(async {
        let client = as_alice(trusting_ca([mapped.tls_url()]))
            .connect()
            .await
            .unwrap();
        assert!(client.server_info().auth_required);
        exchange(&client).await;

        // A good certificate for a user the server does not know is an authorization
        // failure, not a TLS one.
        let (err, took) = refused(as_alice(trusting_ca([unmapped.tls_url()]))).await;
        assert!(
            matches!(&err, Error::Auth(text) if text.contains("Authorization Violation")),
            "{err:?}"
        );
        assert!(took < REFUSED_WITHIN, "refused after {took:?}");
    });
}

#[test]
fn optional_tls_serves_tls_and_plain_clients_together() {
    let server = NatsServer::with_tls_config(&optional_tls_config());
    run(async {
        let sealed = trusting_ca([server.tls_url()]).connect().await.unwrap();
        let plain = ConnectOptions::new([server.url()]).connect().await.unwrap();
        assert!(!plain.server_info().tls_required);
        exchange(&sealed).await;
        exchange(&plain).await;

        let mut across = sealed.subscribe("mixed").await.unwrap();
        sealed.flush().await.unwrap();
        plain.publish("mixed", "from plain").await.unwrap();
        let msg = within(BOUND, "the plain client's message", across.next())
            .await
            .unwrap();
        assert_eq!(msg.payload, b"from plain");
    });
}

#[test]
fn a_restarted_server_is_reconnected_over_tls_and_the_subscription_resumes() {
    let mut server = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        let (opts, events) = with_events(
            trusting_ca([server.tls_url()])
                .reconnect_wait(Duration::from_millis(50))
                .reconnect_jitter(Duration::from_millis(10)),
        );
        let client = opts.connect().await.unwrap();
        let mut orders = client.subscribe("orders.*").await.unwrap();
        client.publish("orders.before", "1").await.unwrap();
        let msg = within(BOUND, "orders.before", orders.next()).await.unwrap();
        assert_eq!(msg.subject, "orders.before");

        server.stop();
        wait_for_within(&events, BOUND, "the disconnect", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        server.restart_tls(ServerTls::Good);
        wait_for_within(&events, RECONNECT_WITHIN, "the reconnect", |e| {
            matches!(e, Event::Reconnected(_)).then_some(())
        })
        .await;

        client.publish("orders.after", "2").await.unwrap();
        let msg = within(BOUND, "orders.after", orders.next()).await.unwrap();
        assert_eq!(
            (msg.subject.as_str(), msg.payload.as_slice()),
            ("orders.after", &b"2"[..])
        );
        assert!(client.server_info().tls_required);
        assert_eq!(client.statistics().reconnects, 1);
    });
}

#[test]
fn a_server_back_with_a_certificate_that_does_not_verify_ends_the_reconnecting() {
    let mut server = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        let (opts, events) = with_events(
            trusting_ca([server.tls_url()])
                .max_reconnect_attempts(None)
                .reconnect_wait(Duration::from_millis(20))
                .reconnect_jitter(Duration::ZERO),
        );
        let client = opts.connect().await.unwrap();
        server.stop();
        wait_for_within(&events, BOUND, "the disconnect", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
        // The same address, now with a certificate from a CA we do not trust: retrying
        // forever (attempts are unlimited here) would not fix it.
        server.restart_tls(ServerTls::UnknownIssuer);
        wait_for_within(&events, BOUND, "the close", |e| {
            matches!(e, Event::Closed).then_some(())
        })
        .await;
        assert!(matches!(
            client.publish("x", "after").await,
            Err(Error::Closed)
        ));
        assert_eq!(client.statistics().reconnects, 0);
        // Two refusals in a row end it: not a handshake every 20 ms.
        server.wait_for_log(HANDSHAKE_ERROR, BOUND).await;
        assert!(server.log_count(HANDSHAKE_ERROR) <= 2, "{}", server.log());
    });
}

/// A responder on `node` that answers every request on `subject` with "pong".
async fn responder(node: &NatsServer, subject: &str) -> (Client, smol::Task<()>) {
    let client = trusting_ca([node.tls_url()]).connect().await.unwrap();
    let mut asks = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let replier = client.clone();
    let task = smol::spawn(async move {
        while let Some(msg) = asks.next().await {
            if let Some(reply) = msg.reply {
                let _ = replier.publish(&reply, "pong").await;
            }
        }
    });
    (client, task)
}

/// Requests `subject` until it is answered within [`BOUND`]; the responder's interest may
/// still be crossing the routes.
async fn answered(client: &Client, subject: &str) {
    let deadline = Instant::now() + BOUND;
    loop {
        let asked = client
            .request_with(subject, None, "ping", Duration::from_millis(500))
            .await;
        match asked {
            Ok(reply) => return assert_eq!(reply.payload, b"pong"),
            Err(e) if Instant::now() >= deadline => panic!("no answer on {subject}: {e}"),
            Err(_) => {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        }
    }
}

#[test]
fn a_tls_cluster_fails_over_to_another_node_over_tls() {
    let mut nodes = NatsServer::tls_cluster(3, ServerTls::Good);
    run(async {
        let _answering = responder(&nodes[2], "svc.ping").await;
        let (opts, events) = with_events(
            trusting_ca([nodes[0].tls_url()])
                .reconnect_wait(Duration::from_millis(100))
                .reconnect_jitter(Duration::from_millis(20)),
        );
        let client = opts.connect().await.unwrap();
        let mut known = 1;
        while known < nodes.len() {
            let (found, _) = wait_for_within(&events, BOUND, "the other nodes", |e| match e {
                Event::DiscoveredServers(urls) => Some(urls.len()),
                _ => None,
            })
            .await;
            known += found;
        }
        let mut news = client.subscribe("news").await.unwrap();
        answered(&client, "svc.ping").await;

        let dead = format!(":{}", nodes[0].port());
        nodes[0].stop();
        let (now_on, _) = wait_for_within(&events, RECONNECT_WITHIN, "the failover", |e| match e {
            Event::Reconnected(url) => Some(url.clone()),
            _ => None,
        })
        .await;
        assert!(
            !now_on.ends_with(&dead),
            "reconnected to the dead node: {now_on}"
        );
        assert!(client.server_info().tls_required);

        answered(&client, "svc.ping").await;
        client.publish("news", "after").await.unwrap();
        let msg = within(BOUND, "news after the failover", news.next())
            .await
            .unwrap();
        assert_eq!(msg.payload, b"after");
    });
}

#[test]
fn a_tls_handshake_that_never_completes_ends_at_the_connect_timeout() {
    const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
    run(async {
        // The fake asks for TLS, then never answers the ClientHello (nor closes).
        let fake = FakeServer::start(Handshake::Mute).await;
        let opts = trusting_ca([fake.url().to_string()]).connect_timeout(CONNECT_TIMEOUT);
        let serve = async {
            let mut conn = fake.next_conn().await;
            conn.send(TLS_REQUIRED_INFO).await;
            conn.raw_until_closed().await
        };
        let ((err, took), sent) = zip(refused(opts), serve).await;
        assert!(is_timeout(&err), "{err:?} ({err})");
        assert!(
            took < Duration::from_secs(1),
            "a {CONNECT_TIMEOUT:?} connect timeout gave up after {took:?}"
        );
        assert_eq!(
            sent.first(),
            Some(&TLS_HANDSHAKE_RECORD),
            "the client upgraded at once"
        );
        assert!(!contains(&sent, b"CONNECT"), "CONNECT sent in the clear");
    });
}

#[test]
fn an_app_whose_server_certificate_does_not_verify_stops_at_once_with_the_tls_error() {
    let server = NatsServer::start_tls(ServerTls::UnknownIssuer, &[]);
    run(async {
        // Panini retries the start 60 times, 2 s apart, by default: not for this.
        let app = panini::App::new("secure")
            .servers([server.tls_url()])
            .tls_ca_file(cert("ca.pem"))
            .banner(false);
        let started = Instant::now();
        let result = within(
            BOUND,
            "the app gives up",
            app.run_until(std::future::pending()),
        )
        .await;
        let err = result.expect_err("the app must not start");
        let text = err.to_string();
        assert!(
            text.contains("tls: ") && text.contains("UnknownIssuer"),
            "{text}"
        );
        assert!(
            matches!(
                err,
                Error::Start {
                    stage: panini::StartStage::Connect,
                    ..
                }
            ),
            "{err:?}"
        );
        // The cause is kept, not only its text: the chain reaches `Error::Tls`, and below
        // it the rustls error that says why.
        let chain: Vec<&(dyn std::error::Error + 'static)> =
            std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .collect();
        let tls = chain[1..]
            .iter()
            .filter_map(|e| e.downcast_ref::<Error>())
            .any(|e| matches!(e, Error::Tls(_)));
        assert!(tls, "no Error::Tls below the start error: {err:?}");
        assert!(
            chain
                .last()
                .is_some_and(|e| e.to_string().contains("UnknownIssuer")),
            "the chain does not end at the certificate error: {err:?}"
        );
        assert!(
            started.elapsed() < REFUSED_WITHIN,
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn bytes_between_the_plain_info_and_the_tls_handshake_are_refused_not_read() {
    run(async {
        // A man in the middle appends a PONG and a forged MSG to the server's INFO, in the
        // same write: none of it may be taken as coming through TLS.
        let fake = FakeServer::start(Handshake::Mute).await;
        let serve = async {
            let mut conn = fake.next_conn().await;
            let mut forged = TLS_REQUIRED_INFO.to_vec();
            forged.extend_from_slice(b"PONG\r\nMSG orders.x 1 6\r\nforged\r\n");
            conn.send(&forged).await;
            conn.raw_until_closed().await
        };
        let ((err, took), sent) = zip(refused(trusting_ca([fake.url().to_string()])), serve).await;
        let text = tls_text(&err);
        assert!(text.contains("before the TLS handshake"), "{text}");
        assert!(took < REFUSED_WITHIN, "{took:?}");
        assert!(sent.is_empty(), "the client sent {} bytes", sent.len());
    });
}

#[test]
fn a_server_whose_certificate_does_not_verify_is_passed_over_for_the_next() {
    let wrong = NatsServer::start_tls(ServerTls::WrongName, &[]);
    let good = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        let client = trusting_ca([wrong.tls_url(), good.tls_url()])
            .connect()
            .await
            .expect("the second server verifies");
        assert_eq!(client.server_info().port, good.port());
        // Every server refusing is still the TLS error itself, not a retryable NoServers.
        let (err, _) = refused(trusting_ca([wrong.tls_url(), wrong.tls_localhost_url()])).await;
        assert!(tls_text(&err).contains("not valid for name"), "{err}");
    });
}

#[test]
fn over_tls_many_writers_lose_nothing_and_keep_order() {
    // Requests and publishes from many tasks at once: lone requests go through the direct
    // write (the caller's thread encrypting into the session), the rest through the
    // connection task, on one TLS session. Every reply must come and the publishes of one
    // publisher must arrive in order.
    let server = NatsServer::start_tls(ServerTls::Good, &[]);
    run(async {
        let (_responder, _serving) = responder(&server, "svc.echo").await;
        let client = trusting_ca([server.tls_url()]).connect().await.unwrap();
        let mut seq = client.subscribe("seq").await.unwrap();
        client.flush().await.unwrap();
        const N: usize = 5_000;
        let publisher = {
            let client = client.clone();
            smol::spawn(async move {
                for i in 0..N {
                    client.publish("seq", i.to_string()).await.unwrap();
                }
            })
        };
        let requesters: Vec<_> = (0..16)
            .map(|_| {
                let client = client.clone();
                smol::spawn(async move {
                    for _ in 0..100 {
                        let reply = client.request("svc.echo", "ping").await.unwrap();
                        assert_eq!(reply.payload, b"pong");
                    }
                })
            })
            .collect();
        within(Duration::from_secs(20), "every publish, in order", async {
            for i in 0..N {
                let msg = seq.next().await.unwrap();
                assert_eq!(msg.payload, i.to_string().as_bytes());
            }
        })
        .await;
        publisher.await;
        for r in requesters {
            within(Duration::from_secs(20), "every reply", r).await;
        }
    });
}
