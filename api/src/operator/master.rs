//! `GET_HEALTH`, `GET_FLAGS`, `GET_VERSION` and `GET_MASTER`, with the
//! `MasterInfo` and `VersionInfo` messages.

use serde::{Deserialize, Serialize};

use crate::keel::Cluster;
use crate::mesos::Capability;

/// `get_health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetHealth {
    pub healthy: bool,
}

/// One master flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `get_flags`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetFlags {
    #[serde(default)]
    pub flags: Vec<Flag>,
}

/// `VersionInfo`: `get_version.version_info`, and the body of `/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The Mesos API level, digits only (pymesos parses it with `int()`).
    pub version: String,
    /// `YYYY-MM-DD HH:MM:SS` (UTC) of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    /// Seconds since the epoch of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_tag: Option<String>,
    /// Keel's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keel_version: Option<String>,
}

/// `get_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetVersion {
    pub version_info: VersionInfo,
}

/// `Address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub port: u16,
}

/// `MasterInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    /// The IPv4 address as libprocess packs it: the network-order bytes
    /// read as a little-endian u32.
    pub ip: u32,
    pub port: u16,
    /// `master@ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// `get_master`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetMaster {
    pub master_info: MasterInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elected_time: Option<f64>,
    /// Keel's view of the replicated masters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keel_cluster: Option<Cluster>,
}

/// `get_logging_level`: glog's verbosity (0 normal, higher more verbose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetLoggingLevel {
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub level: u32,
}

/// `set_logging_level`: a verbosity for a while, then back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetLoggingLevel {
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub level: u32,
    pub duration: crate::mesos::Nanos,
}
