//! The agent's metrics (`docs/design/0008-metrics.md`): `slave/*`,
//! `containerizer/*` and `system/*` in Mesos' `/metrics/snapshot`, the
//! same values in one `prometheus-client` registry for `/metrics`
//! (mesos_exporter's `mesos_slave_*` names where it has them). `system/*`
//! is read from `<root>/proc` at request time ([`read_system`], tested on
//! fixtures); tasks, executors, fetches and launch phases are counted by
//! the task runtime ([`tasks`]).

pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keel_api::resources::Resources;
use keel_telemetry::metrics::prometheus_client::metrics::counter::Counter;
use keel_telemetry::metrics::prometheus_client::metrics::family::Family;
use keel_telemetry::metrics::prometheus_client::metrics::gauge::Gauge;
use keel_telemetry::metrics::prometheus_client::registry::Registry;
use keel_telemetry::metrics::{MetricsError, Snapshot};

type GaugeF = Gauge<f64, AtomicU64>;
type Label = [(&'static str, &'static str); 1];

#[derive(Debug, thiserror::Error)]
pub enum AgentMetricsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {what}")]
    Parse { path: PathBuf, what: &'static str },
    #[error(transparent)]
    View(#[from] MetricsError),
}

/// What `/proc` says about the machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct System {
    pub cpus_total: u64,
    pub load: [f64; 3],
    pub mem_total_bytes: u64,
    /// `MemAvailable` (what stout reports as free), `MemFree` on kernels
    /// without it.
    pub mem_free_bytes: u64,
}

fn read(path: PathBuf) -> Result<(String, PathBuf), AgentMetricsError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(source) => Err(AgentMetricsError::Read { path, source }),
    }
}

/// Reads `proc/cpuinfo`, `proc/loadavg` and `proc/meminfo` under `root`.
pub fn read_system(root: &Path) -> Result<System, AgentMetricsError> {
    let proc = root.join("proc");
    let (cpuinfo, _) = read(proc.join("cpuinfo"))?;
    let cpus_total = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count() as u64;
    let (loadavg, path) = read(proc.join("loadavg"))?;
    let mut load = [0.0; 3];
    let mut fields = loadavg.split_whitespace();
    for slot in &mut load {
        *slot = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or(AgentMetricsError::Parse {
                path: path.clone(),
                what: "three load averages",
            })?;
    }
    let (meminfo, path) = read(proc.join("meminfo"))?;
    let kb = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total = kb("MemTotal").ok_or(AgentMetricsError::Parse {
        path: path.clone(),
        what: "MemTotal",
    })?;
    let free = kb("MemAvailable")
        .or_else(|| kb("MemFree"))
        .ok_or(AgentMetricsError::Parse {
            path,
            what: "MemAvailable or MemFree",
        })?;
    Ok(System {
        cpus_total,
        load,
        mem_total_bytes: total * 1024,
        mem_free_bytes: free * 1024,
    })
}

/// The agent's state at request time.
#[derive(Debug, Clone, Default)]
pub struct AgentFrame {
    pub registered: bool,
    pub registrations: u64,
    pub system: Option<System>,
}

pub struct AgentMetrics {
    registry: Registry,
    started: Instant,
    encoding: Mutex<()>,
    resources: Resources,
    registered: Gauge,
    uptime: GaugeF,
    registrations: Gauge,
    slave_resources: [Family<Label, GaugeF>; 4],
    system_cpus: Gauge,
    system_load: Family<Label, GaugeF>,
    system_mem: Family<Label, GaugeF>,
    task_states_current: Family<Label, Gauge>,
    task_states_exit: Family<Label, Counter>,
    executors_state: Family<Label, Gauge>,
    executors_terminated: Counter,
    task_fetches: Family<Label, Counter>,
    runtime: Arc<tasks::RuntimeMetrics>,
}

const RESOURCES: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

impl AgentMetrics {
    /// Metrics of an agent offering `resources`.
    pub fn new(resources: Resources) -> AgentMetrics {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:expr, $help:expr, $metric:expr) => {{
                let m = $metric;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let slave_resources = RESOURCES.map(|name| {
            reg!(
                format!("mesos_slave_{name}"),
                format!("Current {name} resources of the agent (total, used)"),
                Family::<Label, GaugeF>::default()
            )
        });
        let runtime = Arc::new(tasks::RuntimeMetrics::new(&mut r));
        AgentMetrics {
            task_states_current: reg!(
                "mesos_slave_task_states_current",
                "Current number of tasks by state",
                Family::default()
            ),
            task_states_exit: reg!(
                "mesos_slave_task_states_exit",
                "Tasks that ended, by terminal state",
                Family::default()
            ),
            executors_state: reg!(
                "mesos_slave_executors_state_current",
                "Current number of executors by state",
                Family::default()
            ),
            executors_terminated: reg!(
                "mesos_slave_executors_terminated",
                "Executors whose last task ended",
                Counter::default()
            ),
            task_fetches: reg!(
                "mesos_slave_fetcher_task_fetches",
                "Tasks' URI fetches by result",
                Family::default()
            ),
            runtime,
            registered: reg!(
                "mesos_slave_registered",
                "1 if the agent is registered with a master",
                Gauge::default()
            ),
            uptime: reg!(
                "mesos_slave_uptime_seconds",
                "Number of seconds the agent process is running",
                GaugeF::default()
            ),
            registrations: reg!(
                "keel_agent_registrations",
                "Times this agent process registered with a master",
                Gauge::default()
            ),
            system_cpus: reg!(
                "mesos_slave_system_cpus",
                "CPUs of the machine",
                Gauge::default()
            ),
            system_load: reg!(
                "mesos_slave_system_load",
                "Load average of the machine",
                Family::default()
            ),
            system_mem: reg!(
                "mesos_slave_system_mem_bytes",
                "Memory of the machine (total, free)",
                Family::default()
            ),
            slave_resources,
            registry: r,
            started: Instant::now(),
            encoding: Mutex::new(()),
            resources,
        }
    }

    /// The handle the task runtime counts into.
    pub fn runtime(&self) -> Arc<tasks::RuntimeMetrics> {
        self.runtime.clone()
    }

    fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// `/metrics/snapshot`.
    pub fn snapshot(&self, frame: &AgentFrame) -> Snapshot {
        let mut s = Snapshot::new();
        s.insert(
            "slave/registered".into(),
            f64::from(u8::from(frame.registered)),
        );
        s.insert("slave/uptime_secs".into(), self.uptime_secs());
        for name in RESOURCES {
            let total = self.resources.scalar(name);
            s.insert(format!("slave/{name}_total"), total);
        }
        if let Some(sys) = &frame.system {
            s.insert("system/cpus_total".into(), sys.cpus_total as f64);
            for (k, v) in ["1min", "5min", "15min"].iter().zip(sys.load) {
                s.insert(format!("system/load_{k}"), v);
            }
            s.insert("system/mem_total_bytes".into(), sys.mem_total_bytes as f64);
            s.insert("system/mem_free_bytes".into(), sys.mem_free_bytes as f64);
        }
        self.runtime.read().write(&mut s);
        self.runtime.write_timers(&mut s);
        s
    }

    /// `/metrics`.
    pub fn prometheus(&self, frame: &AgentFrame) -> Result<String, AgentMetricsError> {
        let _one = self.encoding.lock().unwrap_or_else(|p| p.into_inner());
        self.registered.set(i64::from(frame.registered));
        self.uptime.set(self.uptime_secs());
        self.registrations
            .set(i64::try_from(frame.registrations).unwrap_or(i64::MAX));
        for (family, name) in self.slave_resources.iter().zip(RESOURCES) {
            family
                .get_or_create(&[("type", "total")])
                .set(self.resources.scalar(name));
        }
        if let Some(sys) = &frame.system {
            self.system_cpus
                .set(i64::try_from(sys.cpus_total).unwrap_or(i64::MAX));
            for (k, v) in ["1min", "5min", "15min"].into_iter().zip(sys.load) {
                self.system_load.get_or_create(&[("period", k)]).set(v);
            }
            let mem = &self.system_mem;
            mem.get_or_create(&[("type", "total")])
                .set(sys.mem_total_bytes as f64);
            mem.get_or_create(&[("type", "free")])
                .set(sys.mem_free_bytes as f64);
        }
        let tally = self.runtime.read();
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for s in tasks::CURRENT {
            self.task_states_current
                .get_or_create(&[("state", s)])
                .set(gauge(tally.current(s)));
        }
        // Stored, not added: scrapes never double count.
        for s in tasks::EXITS {
            self.task_states_exit
                .get_or_create(&[("state", s)])
                .inner()
                .store(tally.exits(s), Ordering::Relaxed);
        }
        self.executors_state
            .get_or_create(&[("state", "running")])
            .set(gauge(tally.executors_running()));
        self.executors_terminated
            .inner()
            .store(tally.executors_terminated(), Ordering::Relaxed);
        let (ok, failed) = tally.fetches();
        for (result, v) in [("succeeded", ok), ("failed", failed)] {
            self.task_fetches
                .get_or_create(&[("result", result)])
                .inner()
                .store(v, Ordering::Relaxed);
        }
        Ok(keel_telemetry::metrics::encode(&self.registry)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    #[test]
    fn system_is_read_from_a_captured_proc() {
        let s = read_system(&fixture("devbox")).unwrap();
        assert_eq!(s.cpus_total, 2);
        assert_eq!(s.mem_total_bytes, 24_684_084 * 1024);
        assert_eq!(s.mem_free_bytes, 23_906_368 * 1024);
        assert!(s.load.iter().all(|l| *l > 0.0), "{:?}", s.load);
    }

    #[test]
    fn a_proc_without_loadavg_is_an_error_naming_the_path() {
        let e = read_system(&fixture("qemu-q35")).unwrap_err();
        assert!(e.to_string().contains("proc/loadavg"), "{e}");
    }

    #[test]
    fn both_views_show_the_agent() {
        let m = AgentMetrics::new(Resources::parse("cpus:4;mem:2048").unwrap());
        let frame = AgentFrame {
            registered: true,
            registrations: 1,
            system: Some(read_system(&fixture("devbox")).unwrap()),
        };
        let s = m.snapshot(&frame);
        assert_eq!(s["slave/registered"], 1.0);
        assert_eq!(s["slave/cpus_total"], 4.0);
        assert_eq!(s["system/cpus_total"], 2.0);
        assert_eq!(s["slave/tasks_running"], 0.0);
        m.runtime().tally(|t| {
            t.launched("f", "e");
            t.changed("f", "e", None, keel_api::mesos::TaskState::TASK_FAILED);
        });
        m.runtime()
            .phase(tasks::Phase::Spawn, std::time::Duration::from_millis(3));
        let s = m.snapshot(&frame);
        assert_eq!(s["slave/tasks_failed"], 1.0);
        assert_eq!(s["slave/executors_terminated"], 1.0);
        assert_eq!(s["slave/launch_spawn_ms"], 3.0);
        let text = m.prometheus(&frame).unwrap();
        assert!(text.contains("mesos_slave_registered 1"), "{text}");
        assert!(
            text.contains("mesos_slave_cpus{type=\"total\"} 4.0"),
            "{text}"
        );
        assert!(
            text.contains("mesos_slave_task_states_exit_total{state=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keel_agent_launch_spawn_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
