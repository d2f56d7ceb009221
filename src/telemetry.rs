//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
//! Owns global subscriber installation; it must be called once, by `main`, never by the library.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Later calls do nothing.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As [`init`], with another default level: tools whose stdout is their output (`kraft tail`)
/// log only warnings unless `RUST_LOG` asks for more.
pub fn init_with_default(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
    };
    let _ = result;
}

/// Sends panic messages through `tracing` (one line, inside the panicking actor's span, so it
/// names the node and actor) instead of the default hook's stderr text and backtrace hint. Actor
/// panics are caught and the actor restarted, so they are errors to log, not crashes to report.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = crate::actors::supervision::panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, %location, "panic");
    }));
}
