//! With the feature `log`, panini's lines go to the program's `log` logger, with their
//! target and level, and that logger's level filter applies.
#![cfg(feature = "log")]

mod common;

use std::sync::Mutex;

use common::{run, NatsServer};

/// Keeps every record it is given.
struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        seen.push((
            record.level(),
            record.target().to_string(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Installs the capturing logger once for this test binary.
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn seen() -> Vec<(log::Level, String, String)> {
    CAPTURE.0.lock().unwrap().clone()
}

#[test]
fn lines_go_to_the_installed_logger_with_target_and_level() {
    install();
    let server = NatsServer::start();
    run(async {
        let client = panini::client::connect(server.url()).await.unwrap();
        client.close().await;
    });
    let seen = seen();
    let connected = seen
        .iter()
        .find(|(_, target, text)| target == "panini::client" && text.starts_with("Connected"));
    assert!(
        matches!(connected, Some((log::Level::Info, _, _))),
        "{seen:#?}"
    );
    // The logger's filter applies: nothing below Info came through.
    assert!(
        seen.iter().all(|(level, _, _)| *level <= log::Level::Info),
        "{seen:#?}"
    );
}

#[derive(serde::Deserialize)]
struct Order {
    #[allow(dead_code)]
    id: u64,
}

#[test]
fn a_payload_that_does_not_decode_is_the_senders_fault_a_warning_naming_the_subject() {
    install();
    let server = NatsServer::start();
    run(async {
        let mut app = panini::App::new("orders")
            .servers([server.url()])
            .banner(false);
        app.listen("orders.new", |_: panini::Msg<panini::Json<Order>>| async {});
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let running = smol::spawn(app.run_until(async move {
            let _ = stopped.recv().await;
        }));
        let client = panini::client::connect(server.url()).await.unwrap();
        // The app's endpoint is up once a request gets an answer (here: the 400).
        let reply = common::within(std::time::Duration::from_secs(5), "the 400 reply", async {
            loop {
                match client.request("orders.new", "not json").await {
                    // Not subscribed yet: ask again (each try is answered at once).
                    Err(panini::Error::NoResponders) => {
                        smol::Timer::after(std::time::Duration::from_millis(10)).await;
                    }
                    other => break other,
                }
            }
        })
        .await;
        let reply = reply.expect("an error reply");
        let code = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"));
        assert_eq!(code, Some("400"), "{reply:?}");
        stop.send(()).await.unwrap();
        running.await.unwrap();
    });
    let seen = seen();
    let line = seen
        .iter()
        .find(|(_, _, text)| text.contains("orders.new") && text.contains("(400)"));
    assert!(matches!(line, Some((log::Level::Warn, _, _))), "{seen:#?}");
}
