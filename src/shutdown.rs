//! The shutdown signal: a future that completes on SIGINT or SIGTERM.

use std::future::Future;

use futures_lite::StreamExt;

use crate::log::log_at;

/// Watches SIGINT and SIGTERM from the moment it is called (not from the first poll, so
/// a signal that comes during start-up is not lost to the default action), and returns a
/// future that completes on the first of them. If signals cannot be watched, it logs why
/// and the future never completes (the process then stops the default way).
pub fn signal() -> impl Future<Output = ()> {
    use async_signal::{Signal, Signals};
    let signals = Signals::new([Signal::Int, Signal::Term]);
    async move {
        match signals {
            Ok(mut signals) => {
                if let Some(Ok(sig)) = signals.next().await {
                    log_at!(Info, "panini", "received {sig:?}");
                }
            }
            Err(e) => {
                log_at!(Error, "panini", "cannot watch SIGINT/SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    }
}
