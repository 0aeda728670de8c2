//! Apps as users run them, as processes: the seed pair (`examples/listener_app.rs` and
//! `examples/sender_app.rs`), SIGTERM with a request in flight or several still queued
//! (all answered, exit 0), and NATS lost for good (exactly the allowed reconnect attempts,
//! exit 99). Child apps that are not examples run as this test binary itself, in a
//! mode chosen by the `PANINI_CHILD` environment variable.

mod common;
#[path = "common/fake.rs"]
mod fake;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::child::Proc;
use common::{run, within, NatsServer};
use fake::{FakeServer, Handshake, Op};
use panini::{App, Msg};
use smol::stream::StreamExt;

/// The example binary that `cargo test` built for this run: `target/<profile>/examples/
/// <name>-<hash>` (the newest, since an older `cargo build` may have left others).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let prefix = format!("{name}-");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            (file == name || file.starts_with(&prefix)) && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no {name} in {dir:?}: cargo test builds the examples"))
}

#[test]
fn the_seed_pair_runs_as_documented() {
    let server = NatsServer::start();
    let mut listener = Command::new(example("listener_app"));
    listener.env("NATS_URL", server.url());
    let mut listener = Proc::spawn(listener);
    listener.expect_line(|l| l == "Panini service connected to NATS..");
    listener.expect_line(|l| l.starts_with("name: listener_app__"));
    listener.expect_line(|l| l == format!("*  {}", server.url()));
    listener.expect_line(|l| l == "JetStream enabled: False");
    listener.expect_line(|l| l == "=".repeat(86));

    let mut sender = Command::new(example("sender_app"));
    sender
        .env("NATS_URL", server.url())
        .env("SENDER_COUNT", "3");
    let mut sender = Proc::spawn(sender);
    for _ in 0..3 {
        sender.expect_line(|l| l == r#"{"success":true,"message":"request has been processed"}"#);
    }
    assert_eq!(
        sender.exit_code(),
        0,
        "the sender stops cleanly after SENDER_COUNT"
    );

    listener.expect_line(|l| {
        l == r#"request {"data":"request1234567890"} from some.subject.for.request has been processed"#
    });
    listener.expect_line(|l| {
        l == r#"event {"data":"event1234567890"} from some.subject.for.stream has been processed"#
    });
    listener.sigterm();
    assert_eq!(listener.exit_code(), 0);
}

/// The child modes. In a normal test run this test does nothing.
#[test]
fn child() {
    match std::env::var("PANINI_CHILD").as_deref() {
        Ok("slow") => {
            let mut app = App::new("slow_service");
            app.listen("slow", |_: Msg, app: panini::AppHandle| async move {
                app.publish("slow.entered", "{}").await.unwrap();
                smol::Timer::after(Duration::from_millis(500)).await;
                "finished"
            });
            app.start();
        }
        Ok("queued") => {
            // Slow requests and max_concurrency 1: most of a burst waits in the queue.
            let mut app = App::new("queued_service").max_concurrency(1);
            app.listen("queued", |msg: Msg, app: panini::AppHandle| async move {
                app.publish("queued.entered", "{}").await.unwrap();
                smol::Timer::after(Duration::from_millis(100)).await;
                msg.data
            });
            app.start();
        }
        Ok("fragile") => {
            App::new("fragile")
                .max_reconnect_attempts(2)
                .reconnecting_time_sleep(Duration::from_millis(50))
                .start();
        }
        #[cfg(feature = "jetstream")]
        Ok("durable") => {
            // A durable endpoint, banner on: prints each message it handled.
            let mut app = App::new("durable_worker").enable_js(true);
            app.listen_stream("WORK", "worker", |msg: Msg| async move {
                smol::Timer::after(Duration::from_millis(10)).await;
                println!("handled {}", msg.data["id"]);
            })
            .max_in_flight(4)
            .ack_wait(Duration::from_secs(2));
            app.start();
        }
        Ok("unreachable") => {
            // NATS_URL points at a port nobody listens on.
            App::new("unreachable")
                .max_reconnect_attempts(2)
                .reconnecting_time_sleep(Duration::from_millis(50))
                .start();
        }
        _ => {}
    }
}

fn child_process(mode: &str, nats_url: &str) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PANINI_CHILD", mode)
        .env("NATS_URL", nats_url);
    Proc::spawn(cmd)
}

#[test]
fn sigterm_with_a_request_in_flight_replies_then_exits_0() {
    let server = NatsServer::start();
    run(async {
        let probe = panini::client::connect(server.url()).await.unwrap();
        let mut started = probe
            .subscribe("panini_events.slow_service.*.started")
            .await
            .unwrap();
        let mut entered = probe.subscribe("slow.entered").await.unwrap();
        probe.flush().await.unwrap();
        let mut app = child_process("slow", &server.url());
        started.next().await.unwrap();
        let asking = {
            let probe = probe.clone();
            smol::spawn(async move {
                probe
                    .request_with("slow", None, "{}", Duration::from_secs(10))
                    .await
            })
        };
        entered.next().await.unwrap();
        app.sigterm();
        let reply = asking.await.unwrap();
        assert_eq!(reply.payload, b"finished");
        assert_eq!(smol::unblock(move || app.exit_code()).await, 0);
    });
}

/// Runs the "unreachable" child (its NATS_URL points at a port nobody listens on) to its
/// end, with `PANINI_LOG` set to `level` if given; returns its exit code, stdout, stderr.
fn unreachable_app(level: Option<&str>) -> (i32, String, String) {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PANINI_CHILD", "unreachable")
        .env("NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env_remove("PANINI_LOG");
    if let Some(level) = level {
        cmd.env("PANINI_LOG", level);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    let out = rx
        .recv_timeout(common::child::CHILD_WAIT)
        .expect("the unreachable app did not exit")
        .expect("running the unreachable app");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Failing to connect at start exits 1 (99 is for NATS lost after the start), and says why
/// on stderr, with `PANINI_LOG` choosing the levels; stdout stays for the app.
#[test]
fn an_app_that_cannot_connect_at_start_exits_1_and_logs_to_stderr_by_level() {
    let (code, stdout, stderr) = unreachable_app(None);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stdout.contains("panini "), "log lines on stdout: {stdout}");
    let retry = "panini WARN panini: cannot connect to NATS (attempt 1)";
    let fatal = "panini ERROR panini: cannot start: cannot connect to NATS";
    assert!(stderr.contains(retry), "{stderr}");
    assert!(stderr.contains(fatal), "{stderr}");

    let (code, _, stderr) = unreachable_app(Some("error"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(fatal), "{stderr}");
    assert!(
        !stderr.contains("WARN"),
        "PANINI_LOG=error still shows warnings: {stderr}"
    );
}

/// SIGTERM while requests still wait in the endpoint's queue (max_concurrency 1, 100 ms
/// each): every one is answered, then the app exits 0.
#[test]
fn sigterm_with_requests_still_queued_answers_them_all_then_exits_0() {
    const N: usize = 5;
    let server = NatsServer::start();
    run(async {
        let probe = panini::client::connect(server.url()).await.unwrap();
        let mut started = probe
            .subscribe("panini_events.queued_service.*.started")
            .await
            .unwrap();
        let mut entered = probe.subscribe("queued.entered").await.unwrap();
        let inbox = probe.new_inbox();
        let mut replies = probe.subscribe(&format!("{inbox}.*")).await.unwrap();
        probe.flush().await.unwrap();
        let mut app = child_process("queued", &server.url());
        started.next().await.unwrap();
        for i in 0..N {
            let reply = format!("{inbox}.{i}");
            probe
                .publish_with("queued", Some(&reply), None, format!("{{\"n\":{i}}}"))
                .await
                .unwrap();
        }
        // Every request is routed to the app before it can unsubscribe.
        probe.flush().await.unwrap();
        entered.next().await.unwrap();
        app.sigterm();
        let mut answered = Vec::new();
        for _ in 0..N {
            let reply = within(Duration::from_secs(5), "a reply", replies.next()).await;
            let reply = reply.unwrap();
            let want = format!("{{\"n\":{}}}", reply.subject.rsplit('.').next().unwrap());
            assert_eq!(reply.text(), Some(want.as_str()));
            answered.push(reply.subject);
        }
        answered.sort();
        answered.dedup();
        assert_eq!(answered.len(), N, "{answered:?}");
        assert_eq!(smol::unblock(move || app.exit_code()).await, 0);
    });
}

/// NATS lost for good (the server hangs up on every new connection): the app makes its
/// `max_reconnect_attempts(2)` attempts, no more, and exits 99.
#[test]
fn losing_nats_for_good_exits_99_after_exactly_the_allowed_attempts() {
    run(async {
        let server = FakeServer::start(Handshake::normal()).await;
        let mut app = child_process("fragile", server.url());
        let mut conn = server.next_conn().await;
        conn.wait_for("the start event", |op| {
            matches!(op, Op::Pub { subject, .. } if subject.starts_with("panini_events.fragile."))
        })
        .await;
        conn.wait_for("the flush after it", |op| *op == Op::Ping)
            .await;
        conn.send(b"PONG\r\n").await;
        server.refuse_from_now();
        conn.close();
        let code = smol::unblock(move || app.exit_code()).await;
        assert_eq!(code, panini::EXIT_NATS_LOST);
        assert_eq!(server.accepted(), 1 + 2, "connection attempts");
    });
}

#[test]
fn the_banner_shows_servers_without_their_credentials() {
    let server = NatsServer::start_with_args(&["--user", "alice", "--pass", "s3cret"]);
    let mut listener = Command::new(example("listener_app"));
    listener.env("NATS_URL", format!("nats://alice:s3cret@{}", server.addr()));
    let mut listener = Proc::spawn(listener);
    let line = listener.expect_line(|l| l.starts_with("*  "));
    assert_eq!(line, format!("*  nats://***@{}", server.addr()));
    listener.expect_line(|l| l == "JetStream enabled: False");
    assert!(
        !listener.seen.iter().any(|l| l.contains("s3cret")),
        "{:#?}",
        listener.seen
    );
    listener.sigterm();
    assert_eq!(listener.exit_code(), 0);
}

/// `examples/secure_app` as its docs run it: TLS with the test CA, mutual TLS and an NKey
/// user, all from the environment; its `ping` half gets the reply over TLS.
#[cfg(all(feature = "tls", feature = "nkeys"))]
#[test]
fn the_secure_app_runs_as_documented_from_the_environment() {
    use common::tls::{cert, mtls_config};
    let key = panini::nkeys::KeyPair::from_raw_seed(panini::nkeys::KeyKind::User, [7; 32]);
    let server = NatsServer::with_tls_config(&format!(
        "{}authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        mtls_config(),
        key.public_key()
    ));
    let dir = std::env::temp_dir().join(format!("panini-secure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed_file = dir.join("user.nk");
    std::fs::write(&seed_file, format!("{}\n", key.seed())).unwrap();
    let secured = |cmd: &mut Command| {
        cmd.env("NATS_URL", server.tls_url())
            .env("NATS_CA", cert("ca.pem"))
            .env("NATS_CERT", cert("client.pem"))
            .env("NATS_KEY", cert("client-key.pem"))
            .env("NATS_NKEY", &seed_file);
    };
    let mut app = Command::new(example("secure_app"));
    secured(&mut app);
    let mut app = Proc::spawn(app);
    app.expect_line(|l| l == format!("*  {}", server.tls_url()));
    app.expect_line(|l| l == "=".repeat(86));

    // The other half trusts the CA as a system root would be ($SSL_CERT_FILE), not by
    // NATS_CA: the server's certificate is verified either way.
    let mut ping = Command::new(example("secure_app"));
    ping.arg("ping");
    secured(&mut ping);
    ping.env_remove("NATS_CA")
        .env("SSL_CERT_FILE", cert("ca.pem"));
    let mut ping = Proc::spawn(ping);
    ping.expect_line(|l| l == r#"reply: {"greeting":"hello, alice"}"#);
    assert_eq!(ping.exit_code(), 0);

    app.expect_line(|l| l == r#"greeting {"name":"alice"} over TLS"#);
    app.sigterm();
    assert_eq!(app.exit_code(), 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !app.seen.iter().any(|l| l.contains(&key.seed())),
        "the seed was printed: {:#?}",
        app.seen
    );
}

// ---------------------------------------------------------------------------------------
// Signals while starting and while stopping; a failing on_stop hook.
// ---------------------------------------------------------------------------------------

/// The child modes of the tests below, chosen by `PANINI_LIFECYCLE_CHILD`. In a normal
/// test run this test does nothing.
#[test]
fn lifecycle_child() {
    let Ok(mode) = std::env::var("PANINI_LIFECYCLE_CHILD") else {
        return;
    };
    let mut app = App::new("lifecycle").banner(false);
    match mode.as_str() {
        // NATS_URL points at a port nobody listens on; the retries are 10 s apart.
        "retrying" => app = app.reconnecting_time_sleep(Duration::from_secs(10)),
        "slow_start" => {
            app.on_start(|_| async {
                println!("on_start entered");
                std::future::pending::<()>().await
            });
        }
        "slow_stop" => {
            app = app.drain_timeout(Duration::from_secs(60));
            app.on_stop(|_| async {
                println!("on_stop entered");
                std::future::pending::<()>().await
            });
        }
        "failing_stop" => {
            app.on_stop(|_| async { Err::<(), _>("the cleanup failed") });
        }
        other => panic!("no lifecycle child mode {other:?}"),
    }
    app.start();
}

/// Runs `lifecycle_child` in `mode` with its stderr merged into its stdout, so that its
/// log lines arrive as lines too.
fn lifecycle_process(mode: &str, nats_url: &str) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 2>&1"#)
        .arg(std::env::current_exe().unwrap())
        .args([
            "lifecycle_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PANINI_LIFECYCLE_CHILD", mode)
        .env("NATS_URL", nats_url)
        .env_remove("PANINI_LOG");
    Proc::spawn(cmd)
}

/// How long a signalled app may take to exit when it should do so at once.
const PROMPT: Duration = Duration::from_secs(3);

/// Sends SIGTERM and returns the exit code, failing if it takes longer than [`PROMPT`].
fn sigterm_then_exit_code(app: &mut Proc) -> i32 {
    let asked = std::time::Instant::now();
    app.sigterm();
    let code = app.exit_code();
    let took = asked.elapsed();
    assert!(took < PROMPT, "exited {took:?} after the signal");
    code
}

/// A signal while the app still retries its first connection (10 s apart) stops it at
/// once, with 0: the stop asked for is done.
#[test]
fn sigterm_while_retrying_the_first_connection_exits_0_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut app = lifecycle_process("retrying", &format!("nats://127.0.0.1:{port}"));
    app.expect_line(|l| l.contains("cannot connect to NATS (attempt 1)"));
    assert_eq!(sigterm_then_exit_code(&mut app), 0, "{:#?}", app.seen);
}

/// A signal during an `on_start` hook that never ends stops the app at once, with 0.
#[test]
fn sigterm_during_a_long_on_start_hook_exits_0_at_once() {
    let server = NatsServer::start();
    let mut app = lifecycle_process("slow_start", &server.url());
    app.expect_line(|l| l == "on_start entered");
    assert_eq!(sigterm_then_exit_code(&mut app), 0, "{:#?}", app.seen);
}

/// A second signal during a slow graceful stop (an on_stop hook that never ends, a drain
/// timeout of 60 s) ends the process at once: 143, 128 + SIGTERM.
#[test]
fn a_second_signal_during_a_slow_stop_exits_at_once_with_128_plus_the_signal() {
    let server = NatsServer::start();
    let mut app = lifecycle_process("slow_stop", &server.url());
    app.expect_line(|l| {
        l.starts_with("panini INFO panini: lifecycle__") && l.ends_with(" started")
    });
    app.sigterm();
    app.expect_line(|l| l == "on_stop entered");
    assert_eq!(sigterm_then_exit_code(&mut app), 143, "{:#?}", app.seen);
}

/// A failing `on_stop` hook is logged as what it is (not "cannot start"), and the app
/// that was asked to stop and did exits 0.
#[test]
fn a_failing_on_stop_hook_is_logged_as_such_and_the_app_exits_0() {
    let server = NatsServer::start();
    let mut app = lifecycle_process("failing_stop", &server.url());
    app.expect_line(|l| {
        l.starts_with("panini INFO panini: lifecycle__") && l.ends_with(" started")
    });
    app.sigterm();
    let line = app.expect_line(|l| l.contains("on_stop hook #1 failed"));
    assert_eq!(
        line,
        "panini ERROR panini: on_stop hook #1 failed: the cleanup failed"
    );
    assert_eq!(app.exit_code(), 0, "{:#?}", app.seen);
}

/// The ids in `handled <id>` lines.
#[cfg(feature = "jetstream")]
fn handled(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("handled ")?.parse().ok())
        .collect()
}

/// A durable endpoint's app stopped by SIGTERM mid-stream (exit 0) and started again:
/// every message is handled at least once, none lost. Its banner says JetStream is on.
#[cfg(feature = "jetstream")]
#[test]
fn a_durable_endpoint_stopped_by_sigterm_and_started_again_loses_nothing() {
    const N: u64 = 100;
    let js = common::jetstream::JsServer::start();
    run(async {
        let (_client, ctx) = common::jetstream::connect(&js.url(), Duration::from_secs(5)).await;
        let work = panini::jetstream::StreamConfig {
            name: "WORK".into(),
            subjects: vec!["work.>".into()],
            ..Default::default()
        };
        ctx.create_stream(&work).await.unwrap();
        for id in 1..=N {
            let body = serde_json::json!({ "id": id }).to_string();
            ctx.publish("work.item", body).await.unwrap();
        }
        let mut first = child_process("durable", &js.url());
        first.expect_line(|l| l == "JetStream enabled: True");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let line = first.expect_line(|l| l.starts_with("handled "));
            seen.extend(handled(&[line]));
        }
        first.sigterm();
        assert_eq!(first.exit_code(), 0, "a graceful stop");
        seen.extend(handled(&first.remaining_lines()));
        assert!(
            (seen.len() as u64) < N,
            "stopped mid-stream: {}",
            seen.len()
        );

        let mut second = child_process("durable", &js.url());
        while (seen.len() as u64) < N {
            let line = second.expect_line(|l| l.starts_with("handled "));
            seen.extend(handled(&[line]));
        }
        assert_eq!(seen, (1..=N).collect());
        second.sigterm();
        assert_eq!(second.exit_code(), 0);
    });
}
