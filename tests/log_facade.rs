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

#[test]
fn lines_go_to_the_installed_logger_with_target_and_level() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let server = NatsServer::start();
    run(async {
        let client = panini::client::connect(server.url()).await.unwrap();
        client.close().await;
    });
    let seen = CAPTURE.0.lock().unwrap().clone();
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
