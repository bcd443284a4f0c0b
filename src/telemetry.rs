//! Logging setup: `tracing` to stderr, human-readable or JSON
//! (docs/REFERENCE.md, Configuration: `log.format`).
//!
//! Secrets never reach these logs: URLs go through
//! [`crate::config::redact_url`] and tokens through [`crate::config::Secret`].
//! The filter comes from `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        // Colours only for a person at a terminal, not in log files.
        LogFormat::Human => builder.with_target(false).with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // Already installed (tests, or a second call): keep the first one.
    drop(result);
}
