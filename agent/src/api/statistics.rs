//! GET_CONTAINERS and `/monitor/statistics`: each live executor's
//! container with its `ResourceStatistics`, read from its cgroup
//! ([`crate::isolation::cgroups::stats`]); the limits are the cgroup's
//! when it has them, otherwise what the executor and its tasks asked for.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Extension, State};
use axum::response::Response;
use keel_api::agent::GetContainersCall;
use keel_api::agent::state::{Container, GetContainers, MonitorEntry, ResourceStatistics};
use keel_api::mesos::{ContainerId, ContainerStatus, Id, IpAddress, NetworkInfo};
use keel_api::resources::Resources;

use crate::access::Access;
use crate::executor::runtime::{ExecutorSnapshot, RuntimeSnapshot};
use crate::http::AgentView;
use crate::isolation::cgroups::stats::{self, CgroupStats};

const MIB: f64 = 1024.0 * 1024.0;

/// Mesos' statistics from a cgroup's (`None`: the container has no
/// cgroup, or it could not be read), its limits falling back on
/// `resources`.
pub fn from_cgroup(
    cg: Option<&CgroupStats>,
    resources: &Resources,
    timestamp: f64,
) -> ResourceStatistics {
    let asked = |name| resources.has(name).then(|| resources.scalar(name));
    let secs = |usec: Option<u64>| usec.map(|u| u as f64 / 1e6);
    let Some(cg) = cg else {
        return ResourceStatistics {
            timestamp,
            cpus_limit: asked("cpus"),
            mem_limit_bytes: asked("mem").map(|mb| (mb * MIB) as u64),
            ..Default::default()
        };
    };
    ResourceStatistics {
        timestamp,
        processes: cg.processes,
        cpus_user_time_secs: secs(cg.cpu_user_usec),
        cpus_system_time_secs: secs(cg.cpu_system_usec),
        cpus_limit: cg.cpus_limit().or(asked("cpus")),
        cpus_nr_periods: cg.cpu_nr_periods,
        cpus_nr_throttled: cg.cpu_nr_throttled,
        cpus_throttled_time_secs: secs(cg.cpu_throttled_usec),
        mem_total_bytes: cg.memory_current,
        mem_rss_bytes: cg.memory_anon,
        mem_anon_bytes: cg.memory_anon,
        mem_file_bytes: cg.memory_file,
        mem_cache_bytes: cg.memory_file,
        mem_mapped_file_bytes: cg.memory_file_mapped,
        mem_swap_bytes: cg.memory_swap,
        mem_limit_bytes: cg.memory_max.or(asked("mem").map(|mb| (mb * MIB) as u64)),
    }
}

/// The executor's container status (its id, pid and address).
pub fn container_status(e: &ExecutorSnapshot) -> ContainerStatus {
    ContainerStatus {
        container_id: Some(ContainerId::new(&e.container_id)),
        executor_pid: e.pid,
        network_infos: e
            .ip
            .map(|ip| NetworkInfo {
                ip_addresses: vec![IpAddress::of(ip.into())],
                ..Default::default()
            })
            .into_iter()
            .collect(),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Statistics of every live executor (cgroup files read off the async
/// threads).
async fn live_statistics(s: &RuntimeSnapshot) -> Vec<(ExecutorSnapshot, ResourceStatistics)> {
    let executors: Vec<ExecutorSnapshot> = s
        .frameworks
        .iter()
        .flat_map(|f| f.executors.iter().cloned())
        .collect();
    tokio::task::spawn_blocking(move || {
        executors
            .into_iter()
            .map(|e| {
                let cg = e.cgroup.as_deref().and_then(|dir| {
                    stats::read(dir)
                        .inspect_err(|err| tracing::debug!(error = %err, "no container statistics"))
                        .ok()
                });
                let st = from_cgroup(cg.as_ref(), &e.resources, now());
                (e, st)
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// GET_CONTAINERS (`show_nested` and `show_standalone` are accepted; the
/// executors' containers are what this agent runs).
pub async fn get_containers(s: &RuntimeSnapshot, _call: GetContainersCall) -> GetContainers {
    let containers = live_statistics(s)
        .await
        .into_iter()
        .map(|(e, st)| Container {
            framework_id: Id::new(&e.framework_id),
            executor_id: Id::new(&e.executor_id),
            executor_name: super::state::executor_info(&e).name.unwrap_or_default(),
            container_id: ContainerId::new(&e.container_id),
            container_status: Some(container_status(&e)),
            resource_statistics: Some(st),
        })
        .collect();
    GetContainers { containers }
}

/// `/monitor/statistics` (`/slave(1)/monitor/statistics`): a JSON array,
/// one entry per live executor.
pub async fn monitor_endpoint(
    State(view): State<Arc<AgentView>>,
    access: Option<Extension<Access>>,
) -> Response {
    let access = match super::access_of(access) {
        Ok(a) => a,
        Err(e) => return crate::access::refusal(&e),
    };
    let s = super::snapshot(&view, &access).await;
    let entries: Vec<MonitorEntry> = live_statistics(&s)
        .await
        .into_iter()
        .map(|(e, statistics)| MonitorEntry {
            executor_name: super::state::executor_info(&e).name.unwrap_or_default(),
            source: super::state::executor_source(&e),
            executor_id: e.executor_id,
            framework_id: e.framework_id,
            statistics,
        })
        .collect();
    super::json(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn cgroup_statistics_in_mesos_units() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/cgroups/v2-busy");
        let cg = stats::read(&dir).unwrap();
        let asked = Resources::parse("cpus:2;mem:256").unwrap();
        let st = from_cgroup(Some(&cg), &asked, 5.0);
        assert_eq!(st.timestamp, 5.0);
        assert_eq!(st.cpus_user_time_secs, Some(2.01209));
        assert_eq!(st.cpus_system_time_secs, Some(0.40126));
        // cpu.max says half a CPU: the cgroup's limit wins over the ask.
        assert_eq!(st.cpus_limit, Some(0.5));
        assert_eq!(st.cpus_throttled_time_secs, Some(1.830021));
        assert_eq!(st.mem_total_bytes, Some(67_371_008));
        assert_eq!(st.mem_rss_bytes, Some(62_914_560));
        assert_eq!(st.mem_cache_bytes, Some(3_145_728));
        assert_eq!(st.mem_limit_bytes, Some(134_217_728));
        assert_eq!(st.processes, Some(3));

        let unlimited = stats::read(&dir.with_file_name("v2-unlimited")).unwrap();
        let st = from_cgroup(Some(&unlimited), &asked, 5.0);
        assert_eq!(st.cpus_limit, Some(2.0));
        assert_eq!(st.mem_limit_bytes, Some(256 * 1024 * 1024));

        let none = from_cgroup(None, &asked, 6.0);
        assert_eq!(
            (none.cpus_limit, none.cpus_user_time_secs),
            (Some(2.0), None)
        );
    }
}
