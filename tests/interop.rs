//! Wire compatibility with Python Panini 0.8.4: the introduction's listener and sender in
//! Python talking to ours, both ways, with JSON, str and bytes payloads and the
//! `MessageSchemaError` reply.
//!
//! The Python is `$PANINI_PYTHON`, else `target/py-venv/bin/python`: the virtual environment
//! that `scripts/install-python-panini` makes with Panini 0.8.4 from PyPI (`scripts/test`
//! runs it and sets `PANINI_PYTHON`). Without either, these tests fail; they do not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::child::Proc;
use common::{run, NatsServer};
use panini::{App, Json, Msg};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use smol::stream::StreamExt;

const WAIT: Duration = Duration::from_secs(30);
const HINT: &str = "Python Panini 0.8.4 is needed: run `scripts/install-python-panini` \
    (it makes target/py-venv; `scripts/test` runs it), or set $PANINI_PYTHON to a Python \
    that has panini 0.8.4";

/// The venv `scripts/install-python-panini` makes, from the crate root.
const VENV_PYTHON: &str = "target/py-venv/bin/python";

/// The Python to run: `$PANINI_PYTHON`, else [`VENV_PYTHON`]; panics with [`HINT`] when the
/// one chosen is missing or cannot import Panini 0.8.4.
fn python() -> PathBuf {
    let python = match std::env::var_os("PANINI_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(VENV_PYTHON);
            assert!(
                venv.is_file(),
                "$PANINI_PYTHON is unset and there is no {venv:?}. {HINT}"
            );
            venv
        }
    };
    let probe = Command::new(&python)
        .args([
            "-c",
            "import sys, panini, importlib.metadata as m; sys.exit(m.version('panini') != '0.8.4')",
        ])
        .status();
    match probe {
        Ok(status) if status.success() => python,
        Ok(status) => panic!("{python:?} cannot import panini 0.8.4 ({status}). {HINT}"),
        Err(e) => panic!("cannot run {python:?}: {e}. {HINT}"),
    }
}

/// A Python Panini app from `tests/interop/`; its log directory is removed on drop.
struct PyApp {
    proc: Proc,
    logs: PathBuf,
}

impl PyApp {
    fn start(script: &str, server: &NatsServer) -> PyApp {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
        let logs =
            std::env::temp_dir().join(format!("panini-py-logs-{}-{script}", std::process::id()));
        let mut cmd = Command::new(python());
        cmd.arg(dir.join(script))
            .env("NATS_PORT", server.port().to_string())
            .env("PANINI_LOGS", &logs)
            .stderr(Stdio::null());
        PyApp {
            proc: Proc::spawn(cmd),
            logs,
        }
    }

    fn expect_line(&mut self, want: &str) {
        self.proc.expect_line(|line| line == want);
    }
}

impl Drop for PyApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
}

/// Our side of the seed pair plus the interop endpoints, as an app.
fn rust_listener() -> App {
    let mut app = App::new("rust_listener").banner(false);
    app.listen("some.subject.for.request", |msg: Msg<Value>| async move {
        println!(
            "request {} from {} has been processed",
            msg.data, msg.subject
        );
        json!({"success": true, "message": "request has been processed"})
    });
    app.listen("some.subject.for.stream", |_: Msg<Value>| async {});
    app.listen("interop.rust.str", |msg: Msg<String>| async move {
        format!("rust got {}", msg.data)
    });
    app.listen("interop.rust.bytes", |msg: Msg<Vec<u8>>| async move {
        msg.data.into_iter().rev().collect::<Vec<u8>>()
    });
    app.listen("interop.rust.typed", |msg: Msg<Json<Order>>| async move {
        Json(Order {
            id: msg.data.id * 10,
            item: msg.data.item.to_uppercase(),
        })
    });
    app
}

#[test]
fn a_python_sender_talks_to_our_listener() {
    let server = NatsServer::start();
    run(async {
        let probe = panini::client::connect(server.url()).await.unwrap();
        let mut started = probe
            .subscribe("panini_events.rust_listener.*.started")
            .await
            .unwrap();
        probe.flush().await.unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let ours = smol::spawn(
            rust_listener()
                .servers([server.url()])
                .run_until(async move {
                    let _ = stopped.recv().await;
                }),
        );
        started.next().await.unwrap();

        let mut sender = PyApp::start("sender_app.py", &server);
        let sender = smol::unblock(move || {
            for _ in 0..3 {
                sender.expect_line("{'success': True, 'message': 'request has been processed'}");
            }
            sender.expect_line("str reply 'rust got héllo'");
            sender.expect_line("bytes reply b'\\xff\\x01\\x00'");
            sender.expect_line("typed reply {'id': 10, 'item': 'TEA'}");
            sender.expect_line("bad reply {'success': False, 'error': 'MessageSchemaError'}");
            sender.expect_line("DONE");
            sender
        })
        .await;
        drop(sender);
        let _ = stop.send(()).await;
        ours.await.unwrap();
    });
}

#[test]
fn our_sender_talks_to_a_python_listener() {
    let server = NatsServer::start();
    run(async {
        let probe = panini::client::connect(server.url()).await.unwrap();
        let mut started = probe
            .subscribe("panini_events.py_listener_app.*.started")
            .await
            .unwrap();
        probe.flush().await.unwrap();
        let mut listener = PyApp::start("listener_app.py", &server);
        started.next().await.unwrap();

        // The JSON Python Panini (ujson) sends back is compact, key order kept: byte-equal
        // to what our sender_app prints.
        let reply = probe
            .request_with(
                "some.subject.for.request",
                None,
                r#"{"data":"request1234567890"}"#,
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(
            reply.text(),
            Some(r#"{"success":true,"message":"request has been processed"}"#)
        );
        probe
            .publish("some.subject.for.stream", r#"{"data":"event1234567890"}"#)
            .await
            .unwrap();
        let reply = probe
            .request_with("interop.str", None, "héllo", WAIT)
            .await
            .unwrap();
        assert_eq!(reply.text(), Some("python got str 'héllo'"));
        let reply = probe
            .request_with("interop.bytes", None, b"\x00\x01\xff", WAIT)
            .await
            .unwrap();
        assert_eq!(reply.payload, b"\xff\x01\x00");

        let mut app = App::new("rust_sender").banner(false);
        let (tx, rx) = smol::channel::bounded(1);
        app.task(move |app: panini::AppHandle| {
            let tx = tx.clone();
            async move {
                let r = app
                    .request(
                        "some.subject.for.request",
                        json!({"data": "request1234567890"}),
                    )
                    .await;
                let _ = tx.send(r).await;
                app.shutdown();
            }
        });
        app.servers([server.url()])
            .run_until(std::future::pending())
            .await
            .unwrap();
        let response = rx.recv().await.unwrap().unwrap();
        assert_eq!(
            response.to_string(),
            r#"{"success":true,"message":"request has been processed"}"#
        );

        let listener = smol::unblock(move || {
            listener.expect_line(
                "request {'data': 'request1234567890'} from some.subject.for.request has been processed",
            );
            listener.expect_line(
                "event {'data': 'event1234567890'} from some.subject.for.stream has been processed",
            );
            listener
        })
        .await;
        drop(listener);
    });
}
