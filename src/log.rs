//! Panini's log lines: by default a tiny leveled logger to stderr, the level from
//! `PANINI_LOG` (`error`, `warn`, `info` (default), `debug`, `off`), no files, no
//! dependency. With the feature `log`, once the program installs a logger for the `log`
//! facade (`env_logger`, `tracing-log`, ...), every line goes to it instead, with its
//! target (`panini`, `panini::client`, `panini::http`) and level, and that logger's
//! filters apply; without one installed, the stderr lines stay.
//!
//! A line written while a handler run of a traced message is polled (a W3C `traceparent`
//! came with it) ends with ` trace_id=<32 hex digits>`, on stderr and through the facade
//! alike: panini's own lines, and a handler's lines written through [`log()`].

use std::cell::Cell;
use std::sync::OnceLock;

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed and was not recovered.
    Error = 1,
    /// Something failed and was recovered, or looks wrong.
    Warn = 2,
    /// Normal life events: connected, reconnected, started.
    Info = 3,
    /// Details for debugging.
    Debug = 4,
}

/// The most verbose level written (0: none), read from `PANINI_LOG` once.
static MAX: OnceLock<u8> = OnceLock::new();

fn max_level() -> u8 {
    *MAX.get_or_init(
        || match std::env::var("PANINI_LOG").as_deref().map(str::trim) {
            Ok("off") | Ok("none") => 0,
            Ok("error") => 1,
            Ok("warn") => 2,
            Ok("debug") | Ok("trace") => 4,
            _ => 3,
        },
    )
}

/// The `log` facade's level for ours.
#[cfg(feature = "log")]
fn facade_level(level: Level) -> ::log::Level {
    match level {
        Level::Error => ::log::Level::Error,
        Level::Warn => ::log::Level::Warn,
        Level::Info => ::log::Level::Info,
        Level::Debug => ::log::Level::Debug,
    }
}

/// With the feature `log`: whether the program has installed a logger (the facade's
/// level is above `Off` only then).
fn facade_on() -> bool {
    #[cfg(feature = "log")]
    {
        ::log::max_level() != ::log::LevelFilter::Off
    }
    #[cfg(not(feature = "log"))]
    {
        false
    }
}

/// True when a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    #[cfg(feature = "log")]
    if facade_on() {
        return facade_level(level) <= ::log::max_level();
    }
    level as u8 <= max_level()
}

thread_local! {
    /// The trace id of the traced handler run this thread is polling, if any.
    static TRACE_ID: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Sets the trace id of the lines this thread writes (the app's trace scope does, around
/// each poll of a traced run); gives back the one it replaces.
pub(crate) fn swap_trace_id(id: Option<u128>) -> Option<u128> {
    TRACE_ID.replace(id)
}

/// The end of a line: ` trace_id=<32 hex>` when a trace id is set, else nothing.
struct TraceSuffix(Option<u128>);

impl std::fmt::Display for TraceSuffix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, " trace_id={id:032x}"),
            None => Ok(()),
        }
    }
}

/// Writes one line: to the `log` facade's logger when the feature `log` is on and the
/// program installed one; else to stderr if `level` is enabled, as
/// `panini LEVEL target: message`. Either way, a line written during a traced handler run
/// ends with ` trace_id=<32 hex digits>`.
///
/// ```
/// use panini::log::{log, Level};
///
/// log(Level::Info, "orders", format_args!("order {} placed", 42));
/// ```
pub fn log(level: Level, target: &str, args: std::fmt::Arguments<'_>) {
    let trace = TraceSuffix(TRACE_ID.get());
    if facade_on() {
        #[cfg(feature = "log")]
        ::log::log!(target: target, facade_level(level), "{args}{trace}");
        return;
    }
    if enabled(level) {
        let name = match level {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        };
        eprintln!("panini {name} {target}: {args}{trace}");
    }
}

macro_rules! log_at {
    ($level:ident, $target:expr, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, $target, format_args!($($arg)+))
    };
}
pub(crate) use log_at;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_ends_with_the_trace_id_only_while_one_is_set() {
        assert_eq!(TraceSuffix(None).to_string(), "");
        let id = 0x4bf92f3577b34da6a3ce929d0e0e4736;
        assert_eq!(
            TraceSuffix(Some(id)).to_string(),
            " trace_id=4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            TraceSuffix(Some(1)).to_string(),
            " trace_id=00000000000000000000000000000001"
        );
        assert_eq!(swap_trace_id(Some(id)), None);
        assert_eq!(swap_trace_id(None), Some(id));
    }
}
