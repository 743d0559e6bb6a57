//! The later operator calls: GET_OPERATIONS (what the engine remembers for
//! operation feedback), the deprecated SET_QUOTA and REMOVE_QUOTA (on the
//! UPDATE_QUOTA code, refused as Mesos refuses them) and SET_LOGGING_LEVEL
//! (the process's log filter, for a while).

use std::time::Duration;

use axum::http::StatusCode;
use keel_api::mesos::Id;
use keel_api::operator::{GetOperations, OperationEntry};
use keel_api::resources::Resources;

use super::operator::error_status;
use super::visible::Viewer;
use crate::core::Master;
use crate::registry::QuotaConfig;

/// SET_LOGGING_LEVEL: the verbosity now, back to the start's after
/// `duration` (unless set again meanwhile).
pub(super) fn set_logging_level(
    level: u32,
    duration: Duration,
) -> Result<StatusCode, (StatusCode, String)> {
    let generation = keel_telemetry::set_verbosity(level)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    tracing::info!(level, ?duration, "logging level set");
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        keel_telemetry::reset_verbosity(generation);
    });
    Ok(StatusCode::OK)
}

/// Whether `role` has a quota.
fn has_quota(master: &Master, role: &str) -> bool {
    master.quotas().iter().any(|q| q.role == role)
}

/// SET_QUOTA as Mesos answers it: refused for a role that has a quota.
pub(super) async fn set_quota(
    master: &Master,
    q: &QuotaConfig,
) -> Result<StatusCode, (StatusCode, String)> {
    if has_quota(master, &q.role) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "Failed to validate set quota request: Can not set quota for role '{}' which already has quota",
                q.role
            ),
        ));
    }
    master
        .update_quotas(vec![q.clone()])
        .await
        .map(|()| StatusCode::OK)
        .map_err(|e| (error_status(&e), e.to_string()))
}

/// REMOVE_QUOTA: refused for a role without one.
pub(super) async fn remove_quota(
    master: &Master,
    role: &str,
) -> Result<StatusCode, (StatusCode, String)> {
    if !has_quota(master, role) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("Failed to remove quota: Role '{role}' has no quota set"),
        ));
    }
    let none = QuotaConfig {
        role: role.to_string(),
        guarantees: Resources::default(),
        limits: Resources::default(),
    };
    master
        .update_quotas(vec![none])
        .await
        .map(|()| StatusCode::OK)
        .map_err(|e| (error_status(&e), e.to_string()))
}

/// `GET_OPERATIONS`: the operations of frameworks the viewer may see.
pub(super) fn get_operations(master: &Master, viewer: Viewer<'_>) -> GetOperations {
    let operations = master
        .operations()
        .into_iter()
        .filter(|o| {
            master
                .framework_info(&o.framework_id)
                .is_some_and(|info| viewer.framework(&info))
        })
        .map(|o| OperationEntry {
            framework_id: Some(Id::new(&o.framework_id)),
            agent_id: o.agent_id.as_deref().map(Id::new),
            info: o.info,
            statuses: vec![o.latest_status.clone()],
            latest_status: o.latest_status,
            uuid: keel_api::scheduler::Uuid {
                value: keel_api::mesos::base64_encode(&o.uuid),
            },
        })
        .collect();
    GetOperations { operations }
}
