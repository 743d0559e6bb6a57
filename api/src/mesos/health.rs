//! `HealthCheck` (Mesos v1): how the agent checks a task's health. Kinds
//! and protocols travel by name (`"TCP"`, `"IPv4"`) and are judged by the
//! agent, which also applies Mesos' defaults (delay 15 s, interval 10 s,
//! timeout 20 s, 3 consecutive failures, grace 10 s) to what is unset.

use serde::{Deserialize, Serialize};

use super::lenient;
use super::types::CommandInfo;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `COMMAND`, `HTTP` or `TCP`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub delay_seconds: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub interval_seconds: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub timeout_seconds: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u32"
    )]
    pub consecutive_failures: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64"
    )]
    pub grace_period_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheckInfo>,
}

/// `HealthCheck.HTTPCheckInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HttpCheckInfo {
    /// `IPv4` (the default) or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `http` (the default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(deserialize_with = "lenient::u32")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u32>,
}

/// `HealthCheck.TCPCheckInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TcpCheckInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(deserialize_with = "lenient::u32")]
    pub port: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::parse;
    use serde_json::json;

    #[test]
    fn reads_what_frameworks_send_and_writes_it_back() {
        let v = json!({"type": "HTTP", "delay_seconds": 1.5, "interval_seconds": 2.0,
            "consecutive_failures": 2, "http": {"scheme": "https", "port": 8443,
            "path": "/health", "statuses": [200]}});
        let h: HealthCheck = parse(v.clone()).unwrap();
        assert_eq!(h.kind.as_deref(), Some("HTTP"));
        assert_eq!(h.http.as_ref().unwrap().port, 8443);
        assert_eq!(serde_json::to_value(&h).unwrap(), v);
        // stout: numbers as strings, nulls unset.
        let h: HealthCheck = parse(json!({"type": "TCP", "tcp": {"port": "80"},
            "timeout_seconds": "3", "consecutive_failures": "5", "command": null}))
        .unwrap();
        assert_eq!(h.tcp.unwrap().port, 80);
        assert_eq!(
            (h.timeout_seconds, h.consecutive_failures),
            (Some(3.0), Some(5))
        );
        let cmd: HealthCheck =
            parse(json!({"type": "COMMAND", "command": {"value": "true"}})).unwrap();
        assert_eq!(cmd.command.unwrap().value.as_deref(), Some("true"));
    }

    #[test]
    fn a_port_is_required_and_must_fit() {
        let e = parse::<HealthCheck>(json!({"type": "TCP", "tcp": {}})).unwrap_err();
        assert_eq!(e.to_string(), "Missing required fields: port");
        assert!(parse::<HealthCheck>(json!({"tcp": {"port": 1u64 << 33}})).is_err());
        assert!(parse::<HealthCheck>(json!({"consecutive_failures": -1})).is_err());
    }
}
