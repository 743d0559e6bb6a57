//! Per-task network namespaces on a Keel bridge. Host networking is the
//! default (as in Mesos); a task joins the agent's network by naming it in
//! `ContainerInfo.network_infos` (Mesos' CNI style), with `port_mappings`
//! for the host ports it was offered:
//!
//! ```json
//! "container": {"type": "MESOS", "network_infos": [{"name": "keel",
//!     "port_mappings": [{"host_port": 31001, "container_port": 8080}]}]}
//! ```
//!
//! ```text
//!  host: bridge keel0 (gateway, e.g. 10.211.0.1/16) -- kv<hash> ==veth== eth0 (10.211.0.N/16)
//!        listener 0.0.0.0:31001 --(TCP proxy in the agent)--> 10.211.0.N:8080
//!        socket 0.0.0.0:31002/udp --(UDP flows, one per client)--> 10.211.0.N:5353
//! ```
//!
//! - [`ipam`]: addresses from the agent's range (pure; rebuilt from checkpoints).
//! - [`bridge`]: the real [`Network`], all netlink work on dedicated threads
//!   (rtnetlink, no `fork`), the namespace kept as an nsfs bind mount in an
//!   unbindable directory (so containers' mount namespaces never copy it).
//! - [`proxy`]: host ports forwarded to the task (TCP and UDP).
//! - [`fake`]: a recording [`Network`].

pub mod bridge;
pub mod fake;
pub mod ipam;
pub mod proxy;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use keel_api::mesos::ContainerInfo;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {what}: {reason}")]
    Netlink { what: String, reason: String },
    #[error("network namespace {path}: {reason}")]
    Namespace { path: PathBuf, reason: String },
    #[error("no address left in {0}")]
    Exhausted(String),
    #[error("invalid network request: {0}")]
    Invalid(String),
    #[error("host port {port}: {reason}")]
    Port { port: u16, reason: String },
}

impl NetworkError {
    pub fn netlink(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        NetworkError::Netlink {
            what: what.into(),
            reason: e.to_string(),
        }
    }
}

/// A port mapping's `protocol` (Mesos: `tcp` when not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// `NetworkInfo.PortMapping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// Absent in checkpoints written before UDP was forwarded: TCP.
    #[serde(default)]
    pub protocol: Protocol,
}

/// What a task asked for in `ContainerInfo.network_infos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub name: String,
    pub port_mappings: Vec<PortMapping>,
}

/// The request of a task's `ContainerInfo` (`None`: host networking).
/// Several networks, a network without a name, ports that are not ports,
/// a protocol other than `tcp`/`udp`, or the same host port and protocol
/// mapped twice are refused.
pub fn request(container: Option<&ContainerInfo>) -> Result<Option<NetworkRequest>, NetworkError> {
    let infos = match container.map(|c| c.network_infos.as_slice()) {
        Some(infos) if !infos.is_empty() => infos,
        _ => return Ok(None),
    };
    if infos.len() > 1 {
        return Err(NetworkError::Invalid("one network per container".into()));
    }
    let info = &infos[0];
    let name = info
        .name
        .clone()
        .ok_or_else(|| NetworkError::Invalid("network_infos[0] has no name".into()))?;
    let mut port_mappings = Vec::new();
    for m in &info.port_mappings {
        let port = |k: &str, p: u32| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| NetworkError::Invalid(format!("port mapping without a valid {k}")))
        };
        let protocol = match m.protocol.as_deref().unwrap_or("tcp") {
            p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
            p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
            p => {
                return Err(NetworkError::Invalid(format!(
                    "port mapping protocol {p}: only tcp and udp are forwarded"
                )));
            }
        };
        let mapping = PortMapping {
            host_port: port("host_port", m.host_port)?,
            container_port: port("container_port", m.container_port)?,
            protocol,
        };
        if port_mappings
            .iter()
            .any(|o: &PortMapping| (o.host_port, o.protocol) == (mapping.host_port, protocol))
        {
            return Err(NetworkError::Invalid(format!(
                "host port {} is mapped twice",
                mapping.host_port
            )));
        }
        port_mappings.push(mapping);
    }
    Ok(Some(NetworkRequest {
        name,
        port_mappings,
    }))
}

/// A container's place on the network (checkpointed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub port_mappings: Vec<PortMapping>,
}

/// The agent's network (`--network-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The name tasks use in `network_infos`.
    pub name: String,
    pub bridge: String,
    /// The range containers get addresses from; its first address is the
    /// bridge's (the containers' gateway).
    pub subnet: ipam::Subnet,
    /// Where network namespaces are bind-mounted (one file per container).
    pub netns_dir: PathBuf,
}

/// The network kernel surface.
pub trait Network: Send + Sync + 'static {
    /// Creates (idempotently) the container's namespace with `eth0` on the
    /// bridge; returns the namespace file to join.
    fn attach(&self, container_id: &str, att: &NetworkAttachment) -> Result<PathBuf, NetworkError>;

    /// Removes the container's veth and namespace (absent ones are fine).
    fn detach(&self, container_id: &str) -> Result<(), NetworkError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    /// `request` of a container written as JSON.
    fn request(c: Option<&Json>) -> Result<Option<NetworkRequest>, NetworkError> {
        let typed: Option<ContainerInfo> = c.map(|c| keel_api::mesos::parse(c.clone()).unwrap());
        super::request(typed.as_ref())
    }

    #[test]
    fn reads_network_infos() {
        assert_eq!(request(None).unwrap(), None);
        assert_eq!(request(Some(&json!({"type": "MESOS"}))).unwrap(), None);
        let c = json!({"network_infos": [{"name": "keel",
            "port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "TCP"}]}]});
        assert_eq!(
            request(Some(&c)).unwrap(),
            Some(NetworkRequest {
                name: "keel".into(),
                port_mappings: vec![PortMapping {
                    host_port: 31001,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                }]
            })
        );
        let both = json!({"network_infos": [{"name": "keel", "port_mappings": [
            {"host_port": 31001, "container_port": 53},
            {"host_port": 31001, "container_port": 53, "protocol": "udp"}]}]});
        let got = request(Some(&both)).unwrap().unwrap().port_mappings;
        assert_eq!(
            got.iter().map(|m| m.protocol).collect::<Vec<_>>(),
            [Protocol::Tcp, Protocol::Udp]
        );
        // Checkpoints from before UDP: TCP.
        let old: PortMapping =
            serde_json::from_value(json!({"host_port": 1, "container_port": 2})).unwrap();
        assert_eq!(old.protocol, Protocol::Tcp);
        for bad in [
            json!({"network_infos": [{"name": "a"}, {"name": "b"}]}),
            json!({"network_infos": [{}]}),
            json!({"network_infos": [{"name": "k", "port_mappings": [{"host_port": 1, "container_port": 2, "protocol": "sctp"}]}]}),
            json!({"network_infos": [{"name": "k", "port_mappings": [
                {"host_port": 1, "container_port": 2, "protocol": "udp"},
                {"host_port": 1, "container_port": 3, "protocol": "UDP"}]}]}),
            json!({"network_infos": [{"name": "k", "port_mappings": [{"host_port": 70000, "container_port": 2}]}]}),
        ] {
            assert!(request(Some(&bad)).is_err(), "{bad}");
        }
    }
}
