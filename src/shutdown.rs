//! The shutdown signal: a future that completes on SIGINT or SIGTERM.

use futures_lite::StreamExt;

use crate::log::log_at;

/// Completes on the first SIGINT or SIGTERM. If signals cannot be watched, it logs why
/// and never completes (the process then stops the default way).
pub async fn signal() {
    use async_signal::{Signal, Signals};
    match Signals::new([Signal::Int, Signal::Term]) {
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
