//! Master, agent and version answers in the typed shapes of `keel-api`:
//! v1 operator objects, legacy (`/master/state`) objects and Keel's own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use keel_api::keel::{self, AgentSummary};
use keel_api::legacy::Slave;
use keel_api::mesos::Nanos;
use keel_api::operator::maintenance::{self, ProtoDuration};
use keel_api::operator::{Address, Agent, AgentInfo, DrainInfo, Flag, MasterInfo, VersionInfo};
use keel_api::resources::Resources;
use keel_api::resources::v1::Resource;
use keel_api::{KEEL_VERSION, MESOS_COMPAT_VERSION};
use serde_json::Value as Json;

use crate::core::Master;
use crate::registry::{AgentRecord, AgentState, DrainState, Maintenance};

pub fn nanos(secs: f64) -> Nanos {
    Nanos {
        nanoseconds: (secs * 1e9) as i64,
    }
}

/// `MasterInfo.ip` is the IPv4 address as libprocess stores it: the
/// network-order bytes read as a little-endian u32.
fn packed_ipv4(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        IpAddr::V6(_) => 0,
    }
}

pub fn master_pid(master: &Master) -> String {
    let c = master.config();
    format!("master@{}:{}", c.ip, c.port)
}

pub fn master_info(master: &Master) -> MasterInfo {
    master_info_with(master, master.master_id())
}

fn master_info_with(master: &Master, master_id: String) -> MasterInfo {
    let c = master.config();
    MasterInfo {
        id: master_id,
        ip: packed_ipv4(c.ip),
        port: c.port,
        pid: Some(master_pid(master)),
        hostname: Some(c.hostname.clone()),
        version: Some(MESOS_COMPAT_VERSION.to_string()),
        address: Some(Address {
            hostname: Some(c.hostname.clone()),
            ip: Some(c.ip.to_string()),
            port: c.port,
        }),
        capabilities: Vec::new(),
    }
}

/// [`master_info`] as JSON, for callers that already hold the master's
/// state lock (the scheduler API's SUBSCRIBED event).
pub fn master_info_of(master: &Master, master_id: &str) -> Json {
    serde_json::to_value(master_info_with(master, master_id.to_string())).unwrap_or_default()
}

/// When this master was built: `SOURCE_DATE_EPOCH` when the build set it,
/// otherwise the time its sources were last compiled (`build.rs`).
fn build_time() -> Option<f64> {
    option_env!("KEEL_BUILD_TIME").and_then(|t| t.parse().ok())
}

/// `VersionInfo`, for `GET_VERSION`, `/version` and `/master/state`.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: MESOS_COMPAT_VERSION.to_string(),
        build_date: option_env!("KEEL_BUILD_DATE").map(str::to_string),
        build_time: build_time(),
        build_user: Some("keel".to_string()),
        git_sha: None,
        git_branch: None,
        git_tag: Some(format!("keel-{KEEL_VERSION}")),
        keel_version: Some(KEEL_VERSION.to_string()),
    }
}

/// Agents as Mesos lists them: unreachable agents are not "registered".
pub fn registered_agents(agents: &[AgentRecord]) -> impl Iterator<Item = &AgentRecord> {
    agents.iter().filter(|a| a.state != AgentState::Unreachable)
}

pub fn agent_pid(a: &AgentRecord) -> String {
    format!("slave(1)@{}:{}", a.info.ip, a.info.port)
}

/// The agent's total, persistent volumes included.
fn total_with_volumes(a: &AgentRecord) -> Vec<Resource> {
    let mut items = a.total_resources().to_v1();
    items.extend(
        a.volumes
            .iter()
            .filter_map(|v| serde_json::from_value(v.to_resource_json(None, false)).ok()),
    );
    items
}

/// The agent's drain as the APIs show it.
pub fn drain_info(m: &Maintenance, agent_id: &str) -> Option<DrainInfo> {
    let d = m.drains.get(agent_id)?;
    Some(DrainInfo {
        state: match d.state {
            DrainState::Draining => maintenance::DrainState::DRAINING,
            DrainState::Drained => maintenance::DrainState::DRAINED,
        },
        config: maintenance::DrainConfig {
            max_grace_period: d.max_grace_period_ns.map(ProtoDuration::from_nanos),
            mark_gone: Some(d.mark_gone),
        },
    })
}

/// `GET_AGENTS` entry.
pub fn agent_v1(a: &AgentRecord, m: &Maintenance, used: &Resources, offered: &Resources) -> Agent {
    Agent {
        agent_info: AgentInfo {
            hostname: a.info.hostname.clone(),
            port: Some(a.info.port),
            resources: a.total_resources().to_v1(),
            attributes: a.info.attributes.to_v1(),
            id: Some(keel_api::mesos::Id::new(&a.id)),
        },
        active: a.state == AgentState::Active,
        deactivated: m.deactivated.contains(&a.id),
        version: a.info.version.clone(),
        pid: Some(agent_pid(a)),
        registered_time: Some(nanos(a.registered_time)),
        reregistered_time: a.reregistered_time.map(nanos),
        total_resources: total_with_volumes(a),
        allocated_resources: used.to_v1(),
        offered_resources: offered.to_v1(),
        capabilities: Vec::new(),
        resource_providers: Vec::new(),
        drain_info: drain_info(m, &a.id),
    }
}

fn split_by_role(rs: &Resources) -> (Resources, BTreeMap<String, Resources>) {
    let mut unreserved = Resources::default();
    let mut reserved: BTreeMap<String, Resources> = BTreeMap::new();
    for r in &rs.0 {
        if r.role == "*" {
            unreserved.0.push(r.clone());
        } else {
            reserved
                .entry(r.role.clone())
                .or_default()
                .0
                .push(r.clone());
        }
    }
    (unreserved, reserved)
}

/// `/master/state` `slaves[]` entry, with what tasks use and offers hold.
/// Totals include persistent volumes' disk, as Mesos counts them.
pub fn agent_legacy(
    a: &AgentRecord,
    m: &Maintenance,
    used: &Resources,
    offered: &Resources,
) -> Slave {
    let mut total = a.total_resources();
    for v in &a.volumes {
        total.add(&v.disk());
    }
    let (unreserved, reserved) = split_by_role(&total);
    let mut reserved_full: BTreeMap<String, Vec<Resource>> = BTreeMap::new();
    for r in total_with_volumes(a) {
        let role = r.reserved_role().to_string();
        if role != "*" {
            reserved_full.entry(role).or_default().push(r);
        }
    }
    Slave {
        id: a.id.clone(),
        hostname: a.info.hostname.clone(),
        port: a.info.port,
        attributes: a.info.attributes.to_legacy(),
        pid: agent_pid(a),
        registered_time: a.registered_time,
        reregistered_time: a.reregistered_time,
        resources: total.to_legacy(),
        used_resources: used.to_legacy(),
        offered_resources: offered.to_legacy(),
        reserved_resources: reserved
            .iter()
            .map(|(role, rs)| (role.clone(), rs.to_legacy()))
            .collect(),
        reserved_resources_full: reserved_full,
        unreserved_resources: unreserved.to_legacy(),
        active: a.state == AgentState::Active,
        deactivated: m.deactivated.contains(&a.id),
        version: a.info.version.clone(),
        capabilities: Vec::new(),
        drain_info: drain_info(m, &a.id),
    }
}

fn keel_state(s: AgentState) -> keel::AgentState {
    match s {
        AgentState::Active => keel::AgentState::Active,
        AgentState::Disconnected => keel::AgentState::Disconnected,
        AgentState::Unreachable => keel::AgentState::Unreachable,
    }
}

/// Keel's own agent summary (`/api/keel/v1/agents`).
pub fn agent_keel(a: &AgentRecord) -> AgentSummary {
    let total = a.total_resources();
    AgentSummary {
        id: a.id.clone(),
        hostname: a.info.hostname.clone(),
        ip: a.info.ip.clone(),
        port: a.info.port,
        state: keel_state(a.state),
        version: a.info.version.clone(),
        registered_time: a.registered_time,
        reregistered_time: a.reregistered_time,
        unreachable_time: a.unreachable_time,
        resources: total.to_legacy(),
        resources_text: total.to_string(),
        attributes: a.info.attributes.to_legacy(),
    }
}

pub fn flags(master: &Master) -> Vec<Flag> {
    master
        .config()
        .flags
        .iter()
        .map(|(name, value)| Flag {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

pub fn flags_map(master: &Master) -> BTreeMap<String, String> {
    master.config().flags.iter().cloned().collect()
}
