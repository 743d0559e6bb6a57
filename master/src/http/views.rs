//! JSON renderings of master state in the shapes Mesos clients expect:
//! v1 operator API objects and legacy (`/master/state`) objects.

use std::collections::BTreeMap;
use std::net::IpAddr;

use keel_api::resources::Resources;
use keel_api::{KEEL_VERSION, MESOS_COMPAT_VERSION};
use serde_json::{Value as Json, json};

use crate::core::Master;
use crate::registry::{AgentRecord, AgentState};

fn nanos(secs: f64) -> Json {
    json!({ "nanoseconds": (secs * 1e9) as i64 })
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

pub fn master_info(master: &Master) -> Json {
    master_info_of(master, &master.master_id())
}

/// [`master_info`] for callers that already hold the master's state lock.
pub fn master_info_of(master: &Master, master_id: &str) -> Json {
    let c = master.config();
    json!({
        "id": master_id,
        "ip": packed_ipv4(c.ip),
        "port": c.port,
        "pid": master_pid(master),
        "hostname": c.hostname,
        "version": MESOS_COMPAT_VERSION,
        "address": { "hostname": c.hostname, "ip": c.ip.to_string(), "port": c.port },
        "capabilities": [],
    })
}

pub fn version_info() -> Json {
    json!({
        "version": MESOS_COMPAT_VERSION,
        "build_user": "keel",
        "git_tag": format!("keel-{KEEL_VERSION}"),
        "keel_version": KEEL_VERSION,
    })
}

/// Agents as Mesos lists them: unreachable agents are not "registered".
pub fn registered_agents(agents: &[AgentRecord]) -> impl Iterator<Item = &AgentRecord> {
    agents.iter().filter(|a| a.state != AgentState::Unreachable)
}

pub fn agent_pid(a: &AgentRecord) -> String {
    format!("slave(1)@{}:{}", a.info.ip, a.info.port)
}

/// The agent's total as v1 JSON, persistent volumes included.
fn total_with_volumes(a: &AgentRecord) -> Json {
    let mut items = match a.total_resources().to_v1_json() {
        Json::Array(items) => items,
        _ => Vec::new(),
    };
    items.extend(a.volumes.iter().map(|v| v.to_resource_json(None, false)));
    Json::Array(items)
}

/// `GET_AGENTS` entry.
pub fn agent_v1(a: &AgentRecord) -> Json {
    let mut v = json!({
        "agent_info": {
            "hostname": a.info.hostname,
            "port": a.info.port,
            "resources": a.total_resources().to_v1_json(),
            "attributes": a.info.attributes.to_v1_json(),
            "id": { "value": a.id },
        },
        "active": a.state == AgentState::Active,
        "deactivated": false,
        "version": a.info.version,
        "pid": agent_pid(a),
        "registered_time": nanos(a.registered_time),
        "total_resources": total_with_volumes(a),
        "allocated_resources": [],
        "offered_resources": [],
        "capabilities": [],
        "resource_providers": [],
    });
    if let Some(t) = a.reregistered_time {
        v["reregistered_time"] = nanos(t);
    }
    v
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

/// `/master/state` `slaves[]` entry.
pub fn agent_legacy(a: &AgentRecord) -> Json {
    let total = a.total_resources();
    let (unreserved, reserved) = split_by_role(&total);
    let reserved: serde_json::Map<String, Json> = reserved
        .iter()
        .map(|(role, rs)| (role.clone(), rs.to_legacy_json()))
        .collect();
    let mut v = json!({
        "id": a.id,
        "hostname": a.info.hostname,
        "port": a.info.port,
        "attributes": a.info.attributes.to_legacy_json(),
        "pid": agent_pid(a),
        "registered_time": a.registered_time,
        "resources": total.to_legacy_json(),
        "used_resources": Resources::default().to_legacy_json(),
        "offered_resources": Resources::default().to_legacy_json(),
        "reserved_resources": reserved,
        "unreserved_resources": unreserved.to_legacy_json(),
        "active": a.state == AgentState::Active,
        "deactivated": false,
        "version": a.info.version,
        "capabilities": [],
    });
    if let Some(t) = a.reregistered_time {
        v["reregistered_time"] = json!(t);
    }
    v
}

/// Keel's own agent summary (`/api/keel/v1/agents`).
pub fn agent_keel(a: &AgentRecord) -> Json {
    json!({
        "id": a.id,
        "hostname": a.info.hostname,
        "ip": a.info.ip,
        "port": a.info.port,
        "state": a.state.as_str(),
        "version": a.info.version,
        "registered_time": a.registered_time,
        "reregistered_time": a.reregistered_time,
        "unreachable_time": a.unreachable_time,
        "resources": a.total_resources().to_legacy_json(),
        "resources_text": a.total_resources().to_string(),
        "attributes": a.info.attributes.to_legacy_json(),
    })
}

pub fn flags(master: &Master) -> Json {
    Json::Array(
        master
            .config()
            .flags
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

pub fn flags_object(master: &Master) -> Json {
    Json::Object(
        master
            .config()
            .flags
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect(),
    )
}
