//! A tiny leveled logger to stderr; the level comes from `PANINI_LOG`
//! (`error`, `warn`, `info` (default), `debug`, `off`). No files, no dependency.

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

/// True when a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= max_level()
}

/// Writes one line to stderr if `level` is enabled: `panini LEVEL target: message`.
pub fn log(level: Level, target: &str, args: std::fmt::Arguments<'_>) {
    if enabled(level) {
        let name = match level {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        };
        eprintln!("panini {name} {target}: {args}");
    }
}

macro_rules! log_at {
    ($level:ident, $target:expr, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, $target, format_args!($($arg)+))
    };
}
pub(crate) use log_at;
