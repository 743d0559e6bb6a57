//! Mesos-native health checks (`TaskInfo.health_check`): COMMAND, HTTP and
//! TCP, run by the agent next to the task ([`probe`]), judged by a pure
//! [`Tracker`]:
//!
//! ```text
//!  delay_seconds (15) --> check every interval_seconds (10), each within timeout_seconds (20)
//!  a result that changes the task's health  --> TASK_RUNNING, healthy=true|false,
//!                                              REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
//!  failures in grace_period_seconds (10) after the start are ignored until the first success
//!  consecutive_failures (3) in a row         --> the task is killed (its kill policy);
//!                                              TASK_KILLED carries healthy=false
//! ```
//!
//! HTTP is healthy for a status in [200, 399]; TCP when a connection opens.
//! They go to 127.0.0.1, or to the container's address when it has its own
//! network namespace. COMMAND runs `/bin/sh -c` (or the argv form) with the
//! check's environment, inside the task's namespaces when it has any.

pub mod probe;

use std::time::Duration;

use keel_api::mesos::{self, CommandInfo};
use tokio::time::Instant;

pub const REASON_TASK_HEALTH_CHECK_STATUS_UPDATED: &str = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Command(CommandInfo),
    Http {
        scheme: String,
        port: u16,
        path: String,
    },
    Tcp {
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub delay: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub consecutive_failures: u32,
    pub grace_period: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub policy: Policy,
}

/// A `HealthCheck` the agent cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthCheckError {
    #[error("unsupported health check type {0:?}")]
    Kind(String),
    #[error("{0} check without {1}")]
    Missing(&'static str, &'static str),
    #[error("COMMAND check without a command value")]
    NoCommandValue,
    #[error("unsupported scheme {0}")]
    Scheme(String),
    #[error("a valid port is required")]
    Port,
    #[error("{0} must be a non-negative number")]
    Seconds(&'static str),
}

fn seconds(v: Option<f64>, key: &'static str, default: f64) -> Result<Duration, HealthCheckError> {
    match v {
        None => Ok(Duration::from_secs_f64(default)),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Some(_) => Err(HealthCheckError::Seconds(key)),
    }
}

fn port(p: u32) -> Result<u16, HealthCheckError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(HealthCheckError::Port)
}

impl HealthCheck {
    /// What the agent runs for a task's `HealthCheck`, Mesos' defaults
    /// filled in.
    pub fn from_mesos(v: &mesos::HealthCheck) -> Result<HealthCheck, HealthCheckError> {
        let probe = match v.kind.as_deref().unwrap_or("") {
            "COMMAND" => {
                let cmd = v
                    .command
                    .clone()
                    .ok_or(HealthCheckError::Missing("COMMAND", "command"))?;
                if cmd.value.as_deref().unwrap_or("").is_empty() {
                    return Err(HealthCheckError::NoCommandValue);
                }
                Probe::Command(cmd)
            }
            "HTTP" => {
                let http = v
                    .http
                    .as_ref()
                    .ok_or(HealthCheckError::Missing("HTTP", "http"))?;
                let scheme = http.scheme.as_deref().unwrap_or("http");
                if scheme != "http" && scheme != "https" {
                    return Err(HealthCheckError::Scheme(scheme.to_string()));
                }
                let path = http.path.as_deref().unwrap_or("/");
                Probe::Http {
                    scheme: scheme.to_string(),
                    port: port(http.port)?,
                    path: if path.starts_with('/') {
                        path.to_string()
                    } else {
                        format!("/{path}")
                    },
                }
            }
            "TCP" => Probe::Tcp {
                port: port(
                    v.tcp
                        .as_ref()
                        .ok_or(HealthCheckError::Missing("TCP", "tcp"))?
                        .port,
                )?,
            },
            other => return Err(HealthCheckError::Kind(other.to_string())),
        };
        Ok(HealthCheck {
            probe,
            policy: Policy {
                delay: seconds(v.delay_seconds, "delay_seconds", 15.0)?,
                interval: seconds(v.interval_seconds, "interval_seconds", 10.0)?
                    .max(Duration::from_millis(10)),
                timeout: seconds(v.timeout_seconds, "timeout_seconds", 20.0)?
                    .max(Duration::from_millis(10)),
                consecutive_failures: v.consecutive_failures.unwrap_or(3),
                grace_period: seconds(v.grace_period_seconds, "grace_period_seconds", 10.0)?,
            },
        })
    }
}

/// What a check result leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The task's health changed (first result, or a flip).
    Report(bool),
    /// Too many failures in a row: kill the task.
    Kill,
}

/// Consecutive failures, the grace period and reported health (pure; time
/// is passed in).
#[derive(Debug, Clone)]
pub struct Tracker {
    policy: Policy,
    started: Instant,
    reported: Option<bool>,
    failures: u32,
    ever_healthy: bool,
    killing: bool,
}

impl Tracker {
    pub fn new(policy: Policy, started: Instant) -> Self {
        Tracker {
            policy,
            started,
            reported: None,
            failures: 0,
            ever_healthy: false,
            killing: false,
        }
    }

    pub fn record(&mut self, healthy: bool, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        if healthy {
            self.failures = 0;
            self.ever_healthy = true;
        } else {
            let in_grace = !self.ever_healthy && now < self.started + self.policy.grace_period;
            if in_grace {
                return out;
            }
            self.failures += 1;
        }
        if self.reported != Some(healthy) {
            self.reported = Some(healthy);
            out.push(Decision::Report(healthy));
        }
        let limit = self.policy.consecutive_failures;
        if !healthy && limit > 0 && self.failures >= limit && !self.killing {
            self.killing = true;
            out.push(Decision::Kill);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(failures: u32, grace: u64) -> Policy {
        Policy {
            delay: Duration::ZERO,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            consecutive_failures: failures,
            grace_period: Duration::from_secs(grace),
        }
    }

    /// `HealthCheck::from_mesos` of a check written as JSON.
    fn parse(v: &serde_json::Value) -> Result<HealthCheck, HealthCheckError> {
        HealthCheck::from_mesos(&mesos::parse(v.clone()).unwrap())
    }

    #[test]
    fn parses_the_three_kinds_with_mesos_defaults() {
        let tcp = parse(&json!({"type": "TCP", "tcp": {"port": 8080}})).unwrap();
        assert_eq!(tcp.probe, Probe::Tcp { port: 8080 });
        assert_eq!(tcp.policy.delay, Duration::from_secs(15));
        assert_eq!(tcp.policy.interval, Duration::from_secs(10));
        assert_eq!(tcp.policy.timeout, Duration::from_secs(20));
        assert_eq!(tcp.policy.consecutive_failures, 3);
        assert_eq!(tcp.policy.grace_period, Duration::from_secs(10));
        let http = parse(
            &json!({"type": "HTTP", "http": {"port": 80, "path": "health"},
            "interval_seconds": 0.5, "consecutive_failures": 2}),
        )
        .unwrap();
        assert_eq!(
            http.probe,
            Probe::Http {
                scheme: "http".into(),
                port: 80,
                path: "/health".into()
            }
        );
        assert_eq!(http.policy.interval, Duration::from_millis(500));
        let cmd = parse(&json!({"type": "COMMAND", "command": {"value": "true"}})).unwrap();
        assert!(matches!(cmd.probe, Probe::Command(_)));
        for bad in [
            json!({"type": "NONE"}),
            json!({"type": "TCP", "tcp": {"port": 0}}),
            json!({"type": "HTTP", "http": {"port": 80, "scheme": "ftp"}}),
            json!({"type": "COMMAND", "command": {}}),
            json!({"type": "TCP", "tcp": {"port": 1}, "timeout_seconds": -1}),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reports_changes_only_and_kills_after_consecutive_failures() {
        let t0 = Instant::now();
        let mut t = Tracker::new(policy(3, 0), t0);
        assert_eq!(t.record(true, t0), [Decision::Report(true)]);
        assert!(t.record(true, t0).is_empty());
        assert_eq!(t.record(false, t0), [Decision::Report(false)]);
        assert!(t.record(false, t0).is_empty());
        assert_eq!(
            t.record(true, t0),
            [Decision::Report(true)],
            "the count starts over"
        );
        t.record(false, t0);
        t.record(false, t0);
        assert_eq!(t.record(false, t0), [Decision::Kill]);
        assert!(t.record(false, t0).is_empty(), "killed once");
    }

    #[test]
    fn the_grace_period_hides_failures_until_the_first_success() {
        let t0 = Instant::now();
        let mut t = Tracker::new(policy(1, 10), t0);
        assert!(t.record(false, t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(
            t.record(true, t0 + Duration::from_secs(6)),
            [Decision::Report(true)]
        );
        // After a success, the grace period no longer applies.
        assert_eq!(
            t.record(false, t0 + Duration::from_secs(7)),
            [Decision::Report(false), Decision::Kill]
        );
        let mut late = Tracker::new(policy(1, 10), t0);
        assert_eq!(
            late.record(false, t0 + Duration::from_secs(11)),
            [Decision::Report(false), Decision::Kill]
        );
        let mut never = Tracker::new(policy(0, 0), t0);
        assert_eq!(
            never.record(false, t0),
            [Decision::Report(false)],
            "0: never killed"
        );
    }
}
