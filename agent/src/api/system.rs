//! GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL,
//! SET_LOGGING_LEVEL, GET_AGENT; and `/flags`, `/version`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use keel_api::agent::state::{GetAgent, Response as Answer};
use keel_api::mesos::Id;
use keel_api::operator::{
    AgentInfo, Flag, GetFlags, GetHealth, GetLoggingLevel, GetMetrics, GetVersion, Metric,
    SetLoggingLevel, VersionInfo,
};
use keel_api::{KEEL_VERSION, MESOS_COMPAT_VERSION};

use super::ApiError;
use crate::AgentConfig;
use crate::access::Access;
use crate::http::AgentView;

/// The longest SET_LOGGING_LEVEL (a day).
pub const MAX_LOGGING_DURATION: Duration = Duration::from_secs(86_400);

/// The agent's flags under Mesos' names where Mesos has the flag.
pub fn flags_of(config: &AgentConfig, port: u16) -> BTreeMap<String, String> {
    let t = &config.tasks;
    let secs = |d: Duration| format!("{}secs", d.as_secs_f64());
    let mut f = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        f.insert(k.to_string(), v);
    };
    set("master", config.masters.join(","));
    set("ip", config.ip.to_string());
    set("port", port.to_string());
    if let Some(h) = &config.hostname {
        set("hostname", h.clone());
    }
    set("work_dir", config.work_dir.display().to_string());
    set("resources", config.resources.to_string());
    set("attributes", config.attributes.to_legacy_json().to_string());
    set(
        "registration_backoff_factor",
        secs(config.registration_backoff_factor),
    );
    set("isolation", format!("{:?}", t.isolation).to_lowercase());
    if let Some(root) = &t.cgroups_root {
        set("cgroups_root", root.display().to_string());
    }
    set("cgroups_enable_cfs", t.limits.cfs.to_string());
    set("switch_user", t.switch_user.to_string());
    set("executor_shutdown_grace_period", secs(t.kill_grace_period));
    set(
        "max_completed_executors_per_framework",
        crate::executor::runtime::MAX_COMPLETED_EXECUTORS.to_string(),
    );
    if let Some(net) = &t.network {
        set("network", net.name.clone());
    }
    f
}

pub fn health() -> Answer {
    Answer::GetHealth(GetHealth { healthy: true })
}

pub fn get_flags(view: &AgentView) -> Answer {
    let flags = view
        .flags
        .iter()
        .map(|(name, value)| Flag {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    Answer::GetFlags(GetFlags { flags })
}

/// `VersionInfo`: the Mesos API level this agent speaks, as the master's.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: MESOS_COMPAT_VERSION.to_string(),
        build_date: None,
        build_time: None,
        build_user: Some("keel".to_string()),
        git_sha: None,
        git_branch: None,
        git_tag: Some(format!("keel-{KEEL_VERSION}")),
        keel_version: Some(KEEL_VERSION.to_string()),
    }
}

pub fn get_version() -> Answer {
    Answer::GetVersion(GetVersion {
        version_info: version_info(),
    })
}

/// The keys and values of `/metrics/snapshot`.
pub fn get_metrics(view: &AgentView) -> Answer {
    let snapshot = view.metrics.snapshot(&crate::http::metrics_frame(view));
    let metrics = snapshot
        .into_iter()
        .map(|(name, value)| Metric {
            name,
            value: Some(if value.is_finite() { value } else { 0.0 }),
        })
        .collect();
    Answer::GetMetrics(GetMetrics { metrics })
}

pub fn get_logging_level() -> Answer {
    Answer::GetLoggingLevel(GetLoggingLevel {
        level: keel_telemetry::verbosity(),
    })
}

/// The verbosity now, back to the start's after `duration` (unless set
/// again meanwhile). Only who may read every sandbox may change it.
pub fn set_logging_level(access: &Access, s: &SetLoggingLevel) -> Result<(), ApiError> {
    if *access != Access::All {
        return Err(ApiError::Forbidden(
            "SET_LOGGING_LEVEL wants an admin or operator certificate".into(),
        ));
    }
    let nanos = s.duration.nanoseconds;
    if nanos <= 0 || nanos as u128 > MAX_LOGGING_DURATION.as_nanos() {
        return Err(ApiError::BadRequest(format!(
            "set_logging_level: the duration must be positive and at most {}s",
            MAX_LOGGING_DURATION.as_secs()
        )));
    }
    let duration = Duration::from_nanos(nanos as u64);
    let generation =
        keel_telemetry::set_verbosity(s.level).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::info!(level = s.level, ?duration, "logging level set");
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        keel_telemetry::reset_verbosity(generation);
    });
    Ok(())
}

pub fn get_agent(view: &AgentView) -> Answer {
    let id = view.status.borrow().agent_id.clone();
    Answer::GetAgent(GetAgent {
        agent_info: Some(AgentInfo {
            hostname: view.hostname.clone(),
            port: view.port(),
            resources: view.resources.to_v1(),
            attributes: view.attributes.to_v1(),
            id: id.map(Id::new),
        }),
    })
}

/// `/flags` (`/slave(1)/flags`): `{"flags": {name: value}}`.
pub async fn flags_endpoint(State(view): State<Arc<AgentView>>) -> Response {
    super::json(&keel_api::legacy::Flags {
        flags: view.flags.clone(),
    })
}

/// `/version` (`/slave(1)/version`).
pub async fn version_endpoint() -> Response {
    super::json(&version_info())
}
