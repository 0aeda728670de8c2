//! Apps as users run them, as processes: the seed pair (`examples/listener_app.rs` and
//! `examples/sender_app.rs`), SIGTERM with a request in flight (exit 0), and NATS lost for
//! good (exit 99). Child apps that are not examples run as this test binary itself, in a
//! mode chosen by the `PANINI_CHILD` environment variable.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::child::Proc;
use common::{run, NatsServer};
use futures_lite::StreamExt;
use panini::{App, Msg};

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
                async_io::Timer::after(Duration::from_millis(500)).await;
                "finished"
            });
            app.start();
        }
        Ok("fragile") => {
            App::new("fragile")
                .max_reconnect_attempts(2)
                .reconnecting_time_sleep(Duration::from_millis(50))
                .start();
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

fn child_process(mode: &str, server: &NatsServer) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PANINI_CHILD", mode)
        .env("NATS_URL", server.url());
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
        let mut app = child_process("slow", &server);
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

#[test]
fn losing_nats_for_good_exits_99() {
    let mut server = NatsServer::start();
    let mut app = run(async {
        let probe = panini::client::connect(server.url()).await.unwrap();
        let mut started = probe
            .subscribe("panini_events.fragile.*.started")
            .await
            .unwrap();
        probe.flush().await.unwrap();
        let app = child_process("fragile", &server);
        started.next().await.unwrap();
        app
    });
    server.stop();
    assert_eq!(app.exit_code(), panini::EXIT_NATS_LOST);
}
