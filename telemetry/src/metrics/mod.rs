//! Metrics shared by the master and the agent
//! (`docs/design/0008-metrics.md`): one `prometheus-client` registry per
//! process, shown two ways — `/metrics` in the OpenMetrics text format
//! ([`encode`]) and Mesos' `/metrics/snapshot`, a flat JSON object of keys
//! to numbers ([`render_snapshot`], with `?jsonp=`). Mesos' timers (a
//! window of samples and their percentiles) are [`Timer`]; a [`Timing`]
//! feeds one timer and one Prometheus histogram with the same samples.

mod timer;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use prometheus_client;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
pub use timer::{DEFAULT_CAPACITY, PERCENTILES, Timer, TimerStats, percentile};

/// A Mesos metrics snapshot: keys to values.
pub type Snapshot = BTreeMap<String, f64>;

/// The `Content-Type` of [`encode`]'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a metrics view could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid jsonp callback {0:?}: letters, digits, '_', '$' and '.' only")]
    Callback(String),
    #[error("cannot encode metrics: {0}")]
    Encode(String),
}

/// The registry as OpenMetrics text (what Prometheus scrapes).
pub fn encode(registry: &Registry) -> Result<String, MetricsError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .map_err(|e| MetricsError::Encode(e.to_string()))?;
    Ok(text)
}

/// A rendered `/metrics/snapshot`: its content type and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub content_type: &'static str,
    pub body: String,
}

/// The snapshot as JSON, or as `callback(json);` (`text/javascript`) for
/// `?jsonp=callback`, as libprocess answers. Values that are not finite
/// (a percentage of nothing) are written as 0.
pub fn render_snapshot(snapshot: &Snapshot, jsonp: Option<&str>) -> Result<Rendered, MetricsError> {
    let map: serde_json::Map<String, serde_json::Value> = snapshot
        .iter()
        .map(|(k, v)| {
            let v = if v.is_finite() { *v } else { 0.0 };
            (k.clone(), serde_json::Value::from(v))
        })
        .collect();
    let json = serde_json::Value::Object(map).to_string();
    match jsonp {
        None => Ok(Rendered {
            content_type: "application/json",
            body: json,
        }),
        Some(cb) if valid_callback(cb) => Ok(Rendered {
            content_type: "text/javascript",
            body: format!("{cb}({json});"),
        }),
        Some(cb) => Err(MetricsError::Callback(cb.chars().take(64).collect())),
    }
}

/// A JSONP callback is a (dotted) JavaScript name, never script (every
/// `?jsonp=` Keel honours is checked here).
pub fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= 128
        && cb
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
}

/// Buckets (seconds) of Keel's latency histograms: 100 µs to about 52 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 20)
}

/// One measured duration, seen two ways: a Mesos [`Timer`] in
/// milliseconds (for the snapshot) and a Prometheus histogram in seconds
/// (registered by whoever made it).
#[derive(Debug)]
pub struct Timing {
    timer: Mutex<Timer>,
    histogram: Histogram,
}

impl Timing {
    /// A timing whose Mesos timer keeps `window`; its histogram is
    /// registered in `registry` as `name` (seconds).
    pub fn new(registry: &mut Registry, name: &str, help: &str, window: Duration) -> Timing {
        let histogram = Histogram::new(latency_buckets());
        registry.register_with_unit(
            name,
            help,
            prometheus_client::registry::Unit::Seconds,
            histogram.clone(),
        );
        Timing {
            timer: Mutex::new(Timer::new(window, DEFAULT_CAPACITY)),
            histogram,
        }
    }

    /// Records `took`, measured at `at`.
    pub fn observe(&self, at: Instant, took: Duration) {
        self.histogram.observe(took.as_secs_f64());
        let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
        timer.record(at, took.as_secs_f64() * 1000.0);
    }

    /// Writes the Mesos timer under `key` (see [`Timer::write`]), its
    /// window expired at `now`.
    pub fn write(&self, key: &str, now: Instant, out: &mut Snapshot) {
        let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
        timer.expire(now);
        timer.write(key, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_renders_as_json_or_jsonp() {
        let mut s = Snapshot::new();
        s.insert("master/elected".into(), 1.0);
        s.insert("master/cpus_percent".into(), f64::NAN);
        let plain = render_snapshot(&s, None).unwrap();
        assert_eq!(plain.content_type, "application/json");
        assert_eq!(
            plain.body,
            r#"{"master/cpus_percent":0.0,"master/elected":1.0}"#
        );
        let cb = render_snapshot(&s, Some("angular.callbacks._0")).unwrap();
        assert_eq!(cb.content_type, "text/javascript");
        assert!(cb.body.starts_with("angular.callbacks._0({"));
        assert!(cb.body.ends_with("});"));
        assert!(matches!(
            render_snapshot(&s, Some("alert(1)//")),
            Err(MetricsError::Callback(_))
        ));
        assert!(render_snapshot(&s, Some("")).is_err());
    }

    #[test]
    fn a_timing_feeds_its_timer_and_histogram() {
        let mut registry = Registry::default();
        let t = Timing::new(
            &mut registry,
            "keel_test_latency",
            "a test",
            Duration::from_secs(60),
        );
        let now = Instant::now();
        t.observe(now, Duration::from_millis(2));
        t.observe(now, Duration::from_millis(4));
        let mut out = Snapshot::new();
        t.write("x/y_ms", now, &mut out);
        assert_eq!(out["x/y_ms/count"], 2.0);
        assert_eq!(out["x/y_ms/max"], 4.0);
        let text = encode(&registry).unwrap();
        assert!(text.contains("keel_test_latency_seconds_count 2"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
