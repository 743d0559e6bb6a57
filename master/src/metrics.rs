//! The master's metrics (`docs/design/0008-metrics.md`): one
//! `prometheus-client` registry with mesos_exporter's names and Keel's
//! latency histograms, and Mesos' `/metrics/snapshot` keys, both drawn
//! from one [`Frame`] (the engine's gauges and counters, read under the
//! lock at request time) and from the [`Timing`]s the shell feeds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use keel_telemetry::metrics::prometheus_client::metrics::family::Family;
use keel_telemetry::metrics::prometheus_client::metrics::gauge::Gauge;
use keel_telemetry::metrics::prometheus_client::registry::Registry;
use keel_telemetry::metrics::{MetricsError, Snapshot, Timing};

use crate::engine::{Counters, Gauges, Sample};

type Label = [(&'static str, &'static str); 1];
type GaugeF = Gauge<f64, AtomicU64>;

/// What the engine says at one moment.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub gauges: Gauges,
    pub counters: Counters,
}

/// Mesos keeps its allocator timer for an hour and its registrar's for a
/// day; Keel keeps both for an hour (at most 1000 samples each).
const WINDOW: Duration = Duration::from_secs(3600);

pub struct MasterMetrics {
    registry: Registry,
    started: Instant,
    /// Refresh and encode one scrape at a time.
    encoding: Mutex<()>,
    resources: [Family<Label, GaugeF>; 4],
    elected: Gauge,
    uptime: GaugeF,
    slaves_state: Family<Label, Gauge>,
    frameworks_state: Family<Label, Gauge>,
    offers_pending: Gauge,
    task_states_current: Family<Label, Gauge>,
    task_states_exit: Family<Label, Counter>,
    registration_events: Family<Label, Counter>,
    removal_events: Family<Label, Counter>,
    status_updates: Family<Label, Counter>,
    allocation_runs: Counter,
    pub allocation: Timing,
    pub registry_write: Timing,
    pub offer_to_accept: Timing,
    pub accept_to_running: Timing,
}

impl Default for MasterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MasterMetrics {
    pub fn new() -> MasterMetrics {
        let mut r = Registry::default();
        let resources = ["cpus", "mem", "disk", "gpus"].map(|name| {
            let f = Family::<Label, GaugeF>::default();
            r.register(
                format!("mesos_master_{name}"),
                format!("Current {name} resources in cluster (free, used)"),
                f.clone(),
            );
            f
        });
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let elected = reg!(
            "mesos_master_elected",
            "1 if master is elected leader, 0 if not",
            Gauge::default()
        );
        let uptime = reg!(
            "mesos_master_uptime_seconds",
            "Number of seconds the master process is running",
            GaugeF::default()
        );
        let slaves_state = reg!(
            "mesos_master_slaves_state",
            "Current number of agents known to the master per connection and registration state",
            Family::default()
        );
        let frameworks_state = reg!(
            "mesos_master_frameworks_state",
            "Current number of frameworks known to the master per connection and registration state",
            Family::default()
        );
        let offers_pending = reg!(
            "mesos_master_offers_pending",
            "Current number of offers not yet accepted or declined",
            Gauge::default()
        );
        let task_states_current = reg!(
            "mesos_master_task_states_current",
            "Current number of tasks by state",
            Family::default()
        );
        let task_states_exit = reg!(
            "mesos_master_task_states_exit",
            "Total number of tasks processed by exit state",
            Family::default()
        );
        let registration_events = reg!(
            "mesos_master_slave_registration_events",
            "Total number of registration events on this master since it booted",
            Family::default()
        );
        let removal_events = reg!(
            "mesos_master_slave_removal_events",
            "Total number of removal events on this master since it booted",
            Family::default()
        );
        let status_updates = reg!(
            "mesos_master_status_updates",
            "Total number of status updates from agents by outcome",
            Family::default()
        );
        let allocation_runs = reg!(
            "mesos_master_allocation_runs",
            "Number of times the allocation algorithm has run",
            Counter::default()
        );
        let allocation = Timing::new(
            &mut r,
            "keel_master_allocation_run",
            "Time of one allocation cycle",
            WINDOW,
        );
        let registry_write = Timing::new(
            &mut r,
            "keel_master_registry_write",
            "Time to commit one registry command through the replicator (the Raft commit with --masters)",
            WINDOW,
        );
        let offer_to_accept = Timing::new(
            &mut r,
            "keel_master_offer_to_accept",
            "Time from an offer to the ACCEPT that took it",
            WINDOW,
        );
        let accept_to_running = Timing::new(
            &mut r,
            "keel_master_accept_to_running",
            "Time from the ACCEPT that launched a task to its first TASK_RUNNING",
            WINDOW,
        );
        MasterMetrics {
            registry: r,
            started: Instant::now(),
            encoding: Mutex::new(()),
            resources,
            elected,
            uptime,
            slaves_state,
            frameworks_state,
            offers_pending,
            task_states_current,
            task_states_exit,
            registration_events,
            removal_events,
            status_updates,
            allocation_runs,
            allocation,
            registry_write,
            offer_to_accept,
            accept_to_running,
        }
    }

    /// Latencies the engine measured.
    pub fn observe(&self, samples: Vec<Sample>, at: Instant) {
        for s in samples {
            match s {
                Sample::OfferToAccept(d) => self.offer_to_accept.observe(at, d),
                Sample::AcceptToRunning(d) => self.accept_to_running.observe(at, d),
            }
        }
    }

    /// One allocation cycle took `took`.
    pub fn allocation_ran(&self, at: Instant, took: Duration) {
        self.allocation_runs.inc();
        self.allocation.observe(at, took);
    }

    fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// `/metrics`: the registry, its gauges and counters set from `frame`.
    pub fn prometheus(&self, frame: &Frame) -> Result<String, MetricsError> {
        let _one = self.encoding.lock().unwrap_or_else(|p| p.into_inner());
        let (g, c) = (&frame.gauges, &frame.counters);
        for (family, (_, total, used)) in self.resources.iter().zip(g.resources) {
            family.get_or_create(&[("type", "free")]).set(total - used);
            family.get_or_create(&[("type", "used")]).set(used);
            family.get_or_create(&[("type", "total")]).set(total);
        }
        self.elected.set(i64::from(g.elected));
        self.uptime.set(self.uptime_secs());
        let set = |f: &Family<Label, Gauge>, label: &'static str, v: u64| {
            f.get_or_create(&[("state", label)]).set(v as i64);
        };
        set(&self.slaves_state, "connected_active", g.agents_connected);
        set(&self.slaves_state, "connected_inactive", 0);
        set(
            &self.slaves_state,
            "disconnected_inactive",
            g.agents_disconnected,
        );
        set(&self.slaves_state, "unreachable", g.agents_unreachable);
        let fw = &self.frameworks_state;
        set(fw, "connected_active", g.frameworks_connected);
        set(fw, "connected_inactive", 0);
        set(fw, "disconnected_inactive", g.frameworks_disconnected);
        self.offers_pending.set(g.outstanding_offers as i64);
        let cur = &self.task_states_current;
        set(cur, "staging", g.tasks_staging);
        set(cur, "starting", g.tasks_starting);
        set(cur, "running", g.tasks_running);
        set(cur, "killing", g.tasks_killing);
        set(cur, "unreachable", g.tasks_unreachable);
        // Counters are counted by the engine: the registry shows its
        // totals as they are.
        let store = |f: &Family<Label, Counter>, key: &'static str, label: &'static str, v: u64| {
            f.get_or_create(&[(key, label)])
                .inner()
                .store(v, Ordering::Relaxed);
        };
        let exit = &self.task_states_exit;
        for (label, v) in [
            ("errored", c.tasks_error),
            ("failed", c.tasks_failed),
            ("finished", c.tasks_finished),
            ("killed", c.tasks_killed),
            ("lost", c.tasks_lost),
            ("dropped", c.tasks_dropped),
            ("gone", c.tasks_gone),
            ("gone_by_operator", c.tasks_gone_by_operator),
        ] {
            store(exit, "state", label, v);
        }
        store(
            &self.registration_events,
            "event",
            "register",
            c.slave_registrations,
        );
        store(
            &self.registration_events,
            "event",
            "reregister",
            c.slave_reregistrations,
        );
        store(&self.removal_events, "event", "died", c.slave_removals);
        store(
            &self.status_updates,
            "outcome",
            "valid",
            c.valid_status_updates,
        );
        store(
            &self.status_updates,
            "outcome",
            "invalid",
            c.invalid_status_updates,
        );
        keel_telemetry::metrics::encode(&self.registry)
    }

    /// `/metrics/snapshot` (and `GET_METRICS`): Mesos' keys from `frame`
    /// and the timers.
    pub fn snapshot(&self, frame: &Frame) -> Snapshot {
        let (g, c) = (&frame.gauges, &frame.counters);
        let mut s = Snapshot::new();
        let mut put = |k: &str, v: f64| {
            s.insert(format!("master/{k}"), v);
        };
        for (name, total, used) in g.resources {
            put(&format!("{name}_total"), total);
            put(&format!("{name}_used"), used);
            put(
                &format!("{name}_percent"),
                if total > 0.0 { used / total } else { 0.0 },
            );
        }
        let n = |v: u64| v as f64;
        put("elected", if g.elected { 1.0 } else { 0.0 });
        put("uptime_secs", self.uptime_secs());
        put("slaves_active", n(g.agents_connected));
        put("slaves_inactive", n(g.agents_disconnected));
        put("slaves_connected", n(g.agents_connected));
        put("slaves_disconnected", n(g.agents_disconnected));
        put("slaves_unreachable", n(g.agents_unreachable));
        put("frameworks_active", n(g.frameworks_connected));
        put("frameworks_inactive", n(g.frameworks_disconnected));
        put("frameworks_connected", n(g.frameworks_connected));
        put("frameworks_disconnected", n(g.frameworks_disconnected));
        put("outstanding_offers", n(g.outstanding_offers));
        put("tasks_staging", n(g.tasks_staging));
        put("tasks_starting", n(g.tasks_starting));
        put("tasks_running", n(g.tasks_running));
        put("tasks_killing", n(g.tasks_killing));
        put("tasks_unreachable", n(g.tasks_unreachable));
        put("tasks_finished", n(c.tasks_finished));
        put("tasks_failed", n(c.tasks_failed));
        put("tasks_killed", n(c.tasks_killed));
        put("tasks_lost", n(c.tasks_lost));
        put("tasks_error", n(c.tasks_error));
        put("tasks_dropped", n(c.tasks_dropped));
        put("tasks_gone", n(c.tasks_gone));
        put("tasks_gone_by_operator", n(c.tasks_gone_by_operator));
        put("slave_registrations", n(c.slave_registrations));
        put("slave_reregistrations", n(c.slave_reregistrations));
        put("slave_removals", n(c.slave_removals));
        put("valid_status_updates", n(c.valid_status_updates));
        put("invalid_status_updates", n(c.invalid_status_updates));
        put(
            "messages_status_update",
            n(c.valid_status_updates + c.invalid_status_updates),
        );
        s.insert(
            "allocator/mesos/allocation_runs".into(),
            self.allocation_runs.get() as f64,
        );
        let now = Instant::now();
        self.allocation
            .write("allocator/mesos/allocation_run_ms", now, &mut s);
        self.registry_write
            .write("registrar/state_store_ms", now, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let mut f = Frame::default();
        f.gauges.elected = true;
        f.gauges.resources = [
            ("cpus", 8.0, 2.0),
            ("mem", 1024.0, 256.0),
            ("disk", 0.0, 0.0),
            ("gpus", 0.0, 0.0),
        ];
        f.gauges.agents_connected = 2;
        f.gauges.tasks_running = 3;
        f.counters.tasks_finished = 5;
        f.counters.slave_registrations = 2;
        f
    }

    #[test]
    fn the_snapshot_has_mesos_keys_and_meaning() {
        let m = MasterMetrics::new();
        let now = Instant::now();
        m.allocation_ran(now, Duration::from_millis(2));
        m.allocation_ran(now, Duration::from_millis(4));
        let s = m.snapshot(&frame());
        assert_eq!(s["master/cpus_percent"], 0.25);
        assert_eq!(s["master/disk_percent"], 0.0);
        assert_eq!(s["master/elected"], 1.0);
        assert_eq!(s["master/slaves_active"], 2.0);
        assert_eq!(s["master/tasks_running"], 3.0);
        assert_eq!(s["master/tasks_finished"], 5.0);
        assert_eq!(s["master/slave_registrations"], 2.0);
        assert_eq!(s["allocator/mesos/allocation_runs"], 2.0);
        assert_eq!(s["allocator/mesos/allocation_run_ms/count"], 2.0);
        assert_eq!(s["allocator/mesos/allocation_run_ms/max"], 4.0);
        assert!(!s.contains_key("registrar/state_store_ms"));
    }

    #[test]
    fn prometheus_uses_mesos_exporter_names() {
        let m = MasterMetrics::new();
        m.observe(
            vec![Sample::AcceptToRunning(Duration::from_millis(20))],
            Instant::now(),
        );
        let text = m.prometheus(&frame()).unwrap();
        for line in [
            "mesos_master_cpus{type=\"used\"} 2.0",
            "mesos_master_cpus{type=\"free\"} 6.0",
            "mesos_master_elected 1",
            "mesos_master_task_states_current{state=\"running\"} 3",
            "mesos_master_task_states_exit_total{state=\"finished\"} 5",
            "mesos_master_slave_registration_events_total{event=\"register\"} 2",
            "mesos_master_slaves_state{state=\"connected_active\"} 2",
            "keel_master_accept_to_running_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A second scrape shows the same totals (counters are set, not added).
        let again = m.prometheus(&frame()).unwrap();
        assert!(again.contains("mesos_master_task_states_exit_total{state=\"finished\"} 5"));
    }
}
