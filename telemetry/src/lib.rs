//! Logging and metrics for Keel's binaries ([`metrics`]: the registry's
//! two views, Mesos' timers).
//!
//! Logs go to journald (through `tracing-journald`, pure Rust, no libsystemd)
//! when the journald socket exists, as in the appliance image, and to stderr
//! otherwise (a developer machine, the initramfs console). `KEEL_LOG` (or
//! `RUST_LOG`) sets the filter, default [`DEFAULT_FILTER`]. The filter can
//! be made more verbose at runtime ([`set_verbosity`], Mesos'
//! SET_LOGGING_LEVEL): level 0 is the filter the process started with,
//! 1 adds `debug` for Keel's crates, 2 and up `trace`.

pub mod metrics;

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Keel's crates, made verbose by [`set_verbosity`].
const KEEL_CRATES: &[&str] = &[
    "keel_master",
    "keel_agent",
    "keel_serve",
    "keel_api",
    "keel_client",
    "keel_pki",
    "keel_attest",
    "keel_init",
];

/// The installed filter, reloadable.
struct Verbosity {
    handle: reload::Handle<EnvFilter, Registry>,
    base: String,
    level: AtomicU32,
    generation: AtomicU64,
    lock: Mutex<()>,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("this process's log filter cannot be changed (logging was set up elsewhere)")]
    NotReloadable,
    #[error("cannot set the log filter {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
}

/// The filter text for `level` over `base`.
pub fn filter_for(base: &str, level: u32) -> String {
    let verb = match level {
        0 => return base.to_string(),
        1 => "debug",
        _ => "trace",
    };
    let extra: Vec<String> = KEEL_CRATES.iter().map(|c| format!("{c}={verb}")).collect();
    format!("{base},{}", extra.join(","))
}

/// The current verbosity (0 unless [`set_verbosity`] raised it).
pub fn verbosity() -> u32 {
    VERBOSITY
        .get()
        .map_or(0, |v| v.level.load(Ordering::SeqCst))
}

/// Sets the verbosity; returns its generation, for [`reset_verbosity`].
pub fn set_verbosity(level: u32) -> Result<u64, TelemetryError> {
    let v = VERBOSITY.get().ok_or(TelemetryError::NotReloadable)?;
    let _held = v.lock.lock().unwrap_or_else(|p| p.into_inner());
    let text = filter_for(&v.base, level);
    let filter = EnvFilter::try_new(&text).map_err(|e| TelemetryError::Filter {
        filter: text.clone(),
        reason: e.to_string(),
    })?;
    v.handle
        .reload(filter)
        .map_err(|e| TelemetryError::Filter {
            filter: text,
            reason: e.to_string(),
        })?;
    v.level.store(level, Ordering::SeqCst);
    Ok(v.generation.fetch_add(1, Ordering::SeqCst) + 1)
}

/// Back to level 0, unless the verbosity was set again after `generation`.
pub fn reset_verbosity(generation: u64) {
    let Some(v) = VERBOSITY.get() else {
        return;
    };
    if v.generation.load(Ordering::SeqCst) == generation {
        let _ = set_verbosity(0);
    }
}

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
    let base = std::env::var("KEEL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|t| EnvFilter::try_new(t).is_ok())
        .unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&base));
    let _ = VERBOSITY.set(Verbosity {
        handle,
        base,
        level: AtomicU32::new(0),
        generation: AtomicU64::new(0),
        lock: Mutex::new(()),
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_add_keel_crates_to_the_base_filter() {
        assert_eq!(filter_for("info", 0), "info");
        let debug = filter_for("info,tss_esapi=warn", 1);
        assert!(debug.starts_with("info,tss_esapi=warn,keel_master=debug"));
        assert!(filter_for("info", 5).contains("keel_agent=trace"));
        for level in 0..3 {
            assert!(EnvFilter::try_new(filter_for(DEFAULT_FILTER, level)).is_ok());
        }
    }
}
