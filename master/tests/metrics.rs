//! Metrics against a real master and agent on loopback: after a scripted
//! workload (tasks finished, failed, killed; an agent lost and back)
//! `/metrics/snapshot` and `GET_METRICS` of the master, and the agent's
//! `/metrics/snapshot` (`slave/tasks_*`, executors, launch timers), equal
//! the truth, `?jsonp=` wraps
//! the snapshot, and Python's `prometheus_client` OpenMetrics parser (PyPI,
//! in a venv under `target/` made once) accepts `/metrics` of the master
//! and of the agent.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use keel_api::mesos::{Id, TaskState};
use keel_client::scheduler::{Call, Kill};
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(20);

fn python() -> PathBuf {
    support::venv::python("prometheus-venv", |python, _| {
        support::venv::pip(python, &["prometheus_client==0.21.1"])
    })
}

/// Parses `text` with the strict OpenMetrics parser; the family names.
fn parse_openmetrics(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "metrics.txt", text);
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nfor f in p(open(sys.argv[1]).read()):\n    print(f.name)\n";
    let out = run_output(Command::new(python()).args(["-c", script]).arg(&file));
    assert!(
        out.status.success(),
        "parser refused:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn snapshot(port: u16) -> BTreeMap<String, f64> {
    let (code, body) = http_get(port, "/metrics/snapshot").unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn run_to_end(s: &mut Scheduler, id: &str, cmd: &str) -> TaskState {
    let offer = s.offer(T);
    launch(s, &offer, vec![command_task(&offer, id, cmd, 0.5, 64.0)]);
    loop {
        let st = s.update(T);
        s.ack(&st);
        if st.state == TaskState::TASK_RUNNING && id == "long" {
            let (code, _) = s.call(Call::Kill(Kill {
                task_id: Id::new("long"),
                agent_id: None,
                kill_policy: None,
            }));
            assert_eq!(code, 202);
        }
        if st.state.is_terminal() {
            return st.state;
        }
    }
}

#[test]
fn counters_equal_the_truth_after_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "2s");
    let agent_args = ["--resources", "cpus:4;mem:4096"];
    let mut agent = start_agent(dir.path(), &m.addr(), &agent_args);
    wait_for(
        T,
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );

    let mut s = Scheduler::subscribe(m.port, framework("metrics"));
    assert_eq!(run_to_end(&mut s, "ok", "true"), TaskState::TASK_FINISHED);
    assert_eq!(run_to_end(&mut s, "bad", "exit 3"), TaskState::TASK_FAILED);
    assert_eq!(
        run_to_end(&mut s, "long", "sleep 100"),
        TaskState::TASK_KILLED
    );

    let snap = snapshot(m.port);
    for (k, v) in [
        ("master/tasks_finished", 1.0),
        ("master/tasks_failed", 1.0),
        ("master/tasks_killed", 1.0),
        ("master/tasks_running", 0.0),
        ("master/slaves_active", 1.0),
        ("master/slave_registrations", 1.0),
        ("master/frameworks_connected", 1.0),
        ("master/cpus_total", 4.0),
        ("master/elected", 1.0),
    ] {
        assert_eq!(snap.get(k), Some(&v), "{k} in {snap:?}");
    }
    assert!(snap["allocator/mesos/allocation_runs"] >= 1.0);
    assert!(snap.contains_key("registrar/state_store_ms"), "{snap:?}");

    // The agent counted the same tasks, as Mesos' agent names them.
    let agent_port = m.keel_agents()[0].port;
    let snap = snapshot(agent_port);
    for (k, v) in [
        ("slave/tasks_finished", 1.0),
        ("slave/tasks_failed", 1.0),
        ("slave/tasks_killed", 1.0),
        ("slave/tasks_lost", 0.0),
        ("slave/tasks_running", 0.0),
        ("slave/tasks_staging", 0.0),
        ("slave/tasks_starting", 0.0),
        ("slave/executors_running", 0.0),
        ("slave/executors_terminated", 3.0),
        ("slave/registered", 1.0),
    ] {
        assert_eq!(snap.get(k), Some(&v), "{k} in {snap:?}");
    }
    assert_eq!(snap["slave/launch_spawn_ms/count"], 3.0, "{snap:?}");
    let (code, text) = http_get(agent_port, "/metrics").unwrap();
    assert_eq!(code, 200);
    let families = parse_openmetrics(&text);
    for name in [
        "mesos_slave_task_states_exit",
        "mesos_slave_task_states_current",
        "keel_agent_launch_spawn_seconds",
    ] {
        assert!(
            families.iter().any(|f| f == name),
            "{name} not in {families:?}"
        );
    }
    assert!(
        text.contains("mesos_slave_task_states_exit_total{state=\"killed\"} 1"),
        "{text}"
    );

    // The agent is lost, then comes back with its id.
    agent.kill9();
    wait_for(
        T,
        "agent unreachable",
        || snapshot(m.port)["master/slaves_unreachable"] == 1.0,
        || m.proc.log_text(),
    );
    assert_eq!(snapshot(m.port)["master/slave_removals"], 1.0);
    let agent = start_agent(dir.path(), &m.addr(), &agent_args);
    wait_for(
        T,
        "agent back",
        || snapshot(m.port)["master/slaves_active"] == 1.0,
        || agent.log_text(),
    );
    let snap = snapshot(m.port);
    assert_eq!(snap["master/slave_reregistrations"], 1.0, "{snap:?}");
    assert_eq!(snap["master/slaves_unreachable"], 0.0);

    // GET_METRICS answers the same keys.
    let metrics = m.api.get_metrics().unwrap().metrics;
    let finished = metrics.iter().find(|x| x.name == "master/tasks_finished");
    assert_eq!(finished.and_then(|x| x.value), Some(1.0));

    // jsonp, for the Mesos web UI; a callback that is not a name is refused.
    let (code, body) = http_get(m.port, "/metrics/snapshot?jsonp=angular.callbacks._0").unwrap();
    assert_eq!(code, 200);
    assert!(
        body.starts_with("angular.callbacks._0({") && body.ends_with("});"),
        "{body}"
    );
    let (code, _) = http_get(m.port, "/metrics/snapshot?jsonp=alert(1)").unwrap();
    assert_eq!(code, 400);

    // A maintained parser accepts /metrics, with mesos_exporter's names.
    let (code, text) = http_get(m.port, "/metrics").unwrap();
    assert_eq!(code, 200);
    let families = parse_openmetrics(&text);
    for name in [
        "mesos_master_cpus",
        "mesos_master_elected",
        "mesos_master_task_states_exit",
        "mesos_master_task_states_current",
        "keel_master_accept_to_running_seconds",
        "keel_master_allocation_run_seconds",
    ] {
        assert!(
            families.iter().any(|f| f == name),
            "{name} not in {families:?}"
        );
    }
    assert!(
        text.contains("mesos_master_task_states_exit_total{state=\"killed\"} 1"),
        "{text}"
    );

    // The agent's own port.
    let state = m.keel_agents()[0].port;
    let (code, body) = http_get(state, "/metrics/snapshot").unwrap();
    assert_eq!(code, 200, "{body}");
    let snap: BTreeMap<String, f64> = serde_json::from_str(&body).unwrap();
    assert_eq!(snap["slave/registered"], 1.0, "{snap:?}");
    assert_eq!(snap["slave/cpus_total"], 4.0);
    assert!(snap["system/mem_total_bytes"] > 0.0);
    let (code, text) = http_get(state, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        parse_openmetrics(&text)
            .iter()
            .any(|f| f == "mesos_slave_registered")
    );
}
