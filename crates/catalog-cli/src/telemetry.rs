//! Logging set up once: text or JSON on standard error, `RUST_LOG` overrides the level.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log format on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What is logged when `RUST_LOG` says nothing: info and above, except PostgreSQL's notices
/// below a warning (`relation "_sqlx_migrations" already exists, skipping` at every start),
/// which tell an operator nothing to act on.
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global subscriber; a second call (tests) leaves the first in place.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (standard error a pipe nobody reads any more) is
    // dropped: reporting it would write to the same broken pipe, with a panic, in whatever
    // thread logged, librdkafka's among them.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let _already_set = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
