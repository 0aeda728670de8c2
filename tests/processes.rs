//! Apps as users run them, as processes: the seed pair (`examples/listener_app.rs` and
//! `examples/sender_app.rs`), SIGTERM with a request in flight (exit 0), and NATS lost for
//! good (exit 99). Child apps that are not examples run as this test binary itself, in a
//! mode chosen by the `PANINI_CHILD` environment variable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{run, NatsServer};
use futures_lite::StreamExt;
use panini::{App, Msg};

const WAIT: Duration = Duration::from_secs(20);

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

/// A child process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line that `want` accepts.
    fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such line ({e}); saw {:#?}", self.seen),
            }
        }
    }

    fn sigterm(&self) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the exit code, and gathers the rest of stdout.
    fn exit_code(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
