//! Logging and metrics for Keel's binaries ([`metrics`]: the registry's
//! two views, Mesos' timers).
//!
//! Logs go to journald (through `tracing-journald`, pure Rust, no libsystemd)
//! when the journald socket exists, as in the appliance image, and to stderr
//! otherwise (a developer machine, the initramfs console). `KEEL_LOG` (or
//! `RUST_LOG`) sets the filter, default [`DEFAULT_FILTER`].

pub mod metrics;

use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where [`init`] sent the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    Journald,
    Stderr,
}

const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// `info`, but tss-esapi (the agent's TPM reader) only from `warn`: it logs
/// every context it closes at `info`.
pub const DEFAULT_FILTER: &str = "info,tss_esapi=warn";

/// Installs the global subscriber. `syslog_identifier` names the binary in
/// the journal. Safe to call more than once: later calls do nothing.
pub fn init(syslog_identifier: &str) -> LogSink {
    let filter = EnvFilter::try_from_env("KEEL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let force_stderr = std::env::var_os("KEEL_LOG_STDERR").is_some();
    if !force_stderr
        && Path::new(JOURNALD_SOCKET).exists()
        && let Ok(layer) = tracing_journald::layer()
    {
        let layer = layer.with_syslog_identifier(syslog_identifier.to_string());
        // An already-installed subscriber wins; logs still go to journald.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init();
        return LogSink::Journald;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
    LogSink::Stderr
}
