//! `ContainerInfo` (Mesos v1): the parts the agent reads are typed (host
//! name, `network_infos` with their port mappings); what it does not
//! interpret (volumes, docker, linux_info, ...) is kept as sent.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::labels::Labels;
use super::lenient;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// `MESOS` or `DOCKER`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesos: Option<Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_info: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlimit_info: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_info: Option<Json>,
}

/// `NetworkInfo`: a network the container joins.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
}

/// `NetworkInfo.IPAddress`: `protocol` is `IPv4` or `IPv6`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

impl IpAddress {
    /// The address with its protocol.
    pub fn of(ip: std::net::IpAddr) -> Self {
        let protocol = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        IpAddress {
            protocol: Some(protocol.to_string()),
            ip_address: Some(ip.to_string()),
        }
    }
}

/// `ContainerID`: a nested container names its parent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

impl ContainerId {
    pub fn new(value: impl Into<String>) -> Self {
        ContainerId {
            value: value.into(),
            parent: None,
        }
    }
}

/// `ContainerStatus` in a `TaskStatus`: the container, its executor's pid
/// and the addresses of its own network namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub executor_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
}

/// `NetworkInfo.PortMapping`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(deserialize_with = "lenient::u32")]
    pub host_port: u32,
    #[serde(deserialize_with = "lenient::u32")]
    pub container_port: u32,
    /// `tcp` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::parse;
    use serde_json::json;

    #[test]
    fn round_trips_and_keeps_what_it_does_not_read() {
        let v = json!({"type": "MESOS", "hostname": "web",
            "volumes": [{"container_path": "/data", "mode": "RW", "host_path": "/srv"}],
            "linux_info": {"share_pid_namespace": false},
            "network_infos": [{"name": "keel", "labels": {"labels": [{"key": "k"}]},
                "port_mappings": [{"host_port": 31001, "container_port": 80, "protocol": "udp"}]}]});
        let c: ContainerInfo = parse(v.clone()).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("web"));
        let m = &c.network_infos[0].port_mappings[0];
        assert_eq!((m.host_port, m.container_port), (31001, 80));
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
        let lenient: ContainerInfo = parse(json!({"network_infos": [{"name": null,
            "port_mappings": [{"host_port": "1", "container_port": 2.0}]}]}))
        .unwrap();
        assert_eq!(lenient.network_infos[0].name, None);
        assert_eq!(lenient.network_infos[0].port_mappings[0].host_port, 1);
    }
}
