//! Mesos' timers, pure: the samples of a window, and the statistics
//! libprocess reports for them (`/count`, `/min`, `/max`, `/p50` ...
//! `/p9999`), percentiles interpolated as stout's `Statistics` does.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Samples a timer keeps at most (libprocess' time series capacity).
pub const DEFAULT_CAPACITY: usize = 1000;

/// The percentiles Mesos reports, with their key suffixes.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
];

/// The samples of one timer within its window, oldest first.
#[derive(Debug, Clone)]
pub struct Timer {
    window: Duration,
    capacity: usize,
    samples: VecDeque<(Instant, f64)>,
}

/// What a timer reports over its window.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerStats {
    pub count: usize,
    pub min: f64,
    pub max: f64,
    /// `(suffix, value)` for each of [`PERCENTILES`].
    pub percentiles: Vec<(&'static str, f64)>,
}

impl Timer {
    /// A timer keeping samples for `window`, at most `capacity` of them
    /// (the oldest go first).
    pub fn new(window: Duration, capacity: usize) -> Timer {
        Timer {
            window,
            capacity: capacity.max(1),
            samples: VecDeque::new(),
        }
    }

    /// Records `value` (in the timer's unit, milliseconds for Mesos) taken
    /// at `at`.
    pub fn record(&mut self, at: Instant, value: f64) {
        self.samples.push_back((at, value));
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
    }

    /// Drops the samples older than the window at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.samples.front() {
            if now.saturating_duration_since(*at) <= self.window {
                break;
            }
            self.samples.pop_front();
        }
    }

    /// The latest sample (the timer's own value in a Mesos snapshot).
    pub fn last(&self) -> Option<f64> {
        self.samples.back().map(|(_, v)| *v)
    }

    /// Statistics over the samples; `None` below two samples, as
    /// libprocess reports none.
    pub fn stats(&self) -> Option<TimerStats> {
        if self.samples.len() < 2 {
            return None;
        }
        let mut values: Vec<f64> = self.samples.iter().map(|(_, v)| *v).collect();
        values.sort_by(f64::total_cmp);
        Some(TimerStats {
            count: values.len(),
            min: values[0],
            max: values[values.len() - 1],
            percentiles: PERCENTILES
                .iter()
                .map(|(name, p)| (*name, percentile(&values, *p)))
                .collect(),
        })
    }

    /// Writes the timer under `key` into a Mesos snapshot: `key` (the
    /// latest sample) and, from two samples on, `key/count`, `key/min`,
    /// `key/max` and the percentiles.
    pub fn write(&self, key: &str, out: &mut BTreeMap<String, f64>) {
        if let Some(last) = self.last() {
            out.insert(key.to_string(), last);
        }
        if let Some(s) = self.stats() {
            out.insert(format!("{key}/count"), s.count as f64);
            out.insert(format!("{key}/min"), s.min);
            out.insert(format!("{key}/max"), s.max);
            for (suffix, v) in s.percentiles {
                out.insert(format!("{key}/{suffix}"), v);
            }
        }
    }
}

/// The `p` (0..=1) percentile of sorted `values`, linearly interpolated
/// between the two nearest ranks.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let position = p.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let index = position.floor() as usize;
    let delta = position - index as f64;
    let lower = values[index];
    let upper = values[(index + 1).min(values.len() - 1)];
    lower + (upper - lower) * delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_stout() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 5.5);
        assert!((percentile(&v, 0.9) - 9.1).abs() < 1e-9);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn one_sample_has_a_value_but_no_statistics() {
        let now = Instant::now();
        let mut t = Timer::new(Duration::from_secs(60), 10);
        let mut out = BTreeMap::new();
        t.write("a/b_ms", &mut out);
        assert!(out.is_empty());
        t.record(now, 3.0);
        t.write("a/b_ms", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out["a/b_ms"], 3.0);
    }

    #[test]
    fn snapshot_keys_follow_mesos() {
        let now = Instant::now();
        let mut t = Timer::new(Duration::from_secs(60), 100);
        for v in [4.0, 1.0, 3.0, 2.0] {
            t.record(now, v);
        }
        let mut out = BTreeMap::new();
        t.write("allocator/mesos/allocation_run_ms", &mut out);
        let k = |s: &str| out[&format!("allocator/mesos/allocation_run_ms{s}")];
        assert_eq!(k(""), 2.0, "the latest sample");
        assert_eq!(k("/count"), 4.0);
        assert_eq!(k("/min"), 1.0);
        assert_eq!(k("/max"), 4.0);
        assert_eq!(k("/p50"), 2.5);
        assert_eq!(out.len(), 1 + 3 + PERCENTILES.len());
    }

    #[test]
    fn capacity_and_window_drop_the_oldest() {
        let start = Instant::now();
        let mut t = Timer::new(Duration::from_secs(10), 3);
        for i in 0..5 {
            t.record(start + Duration::from_secs(i), i as f64);
        }
        assert_eq!(t.stats().map(|s| (s.count, s.min)), Some((3, 2.0)));
        t.expire(start + Duration::from_secs(13));
        assert_eq!(t.stats().map(|s| (s.count, s.min)), Some((2, 3.0)));
        t.expire(start + Duration::from_secs(100));
        assert_eq!(t.last(), None);
    }
}
