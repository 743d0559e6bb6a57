//! The one place the edge authenticates and authorizes.
//!
//! [`authenticate`] runs before every route but `/health`, `/version` and
//! `/redirect` (open, as in Mesos): it finds out who is asking
//! ([`Caller`], a request extension the handlers read) or answers `401`
//! with `WWW-Authenticate` (Mesos' realm of the endpoint) and the reason.
//! The handlers then check the actions their typed call needs
//! ([`operator`], [`scheduler`], [`subscribe`]) and answer `403` naming
//! the action refused; views are filtered instead (`visible.rs`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_api::mesos::{FrameworkInfo, TaskInfo};
use keel_api::resources::v1::Resource;
use keel_api::scheduler::{CallKind, Operation, OperationKind};

use super::error::ApiError;
use super::operator::OperatorCall;
use crate::auth::{Action, Caller, Denied, PeerIdentity, Trust};
use crate::core::{Master, unix_now};
use crate::engine::VolumeChange;

/// Mesos' realms: the scheduler API, the writing endpoints, the reading ones.
const SCHEDULER_REALM: &str = "mesos-master-scheduler";
const READWRITE_REALM: &str = "mesos-master-readwrite";
const READONLY_REALM: &str = "mesos-master-readonly";

fn realm(method: &Method, path: &str) -> &'static str {
    if path.ends_with("/api/v1/scheduler") {
        SCHEDULER_REALM
    } else if path.starts_with("/api/v1")
        || path.starts_with("/master/api/v1")
        || (path.starts_with("/api/keel/") && method != Method::GET)
        || legacy_write(method, path)
    {
        READWRITE_REALM
    } else {
        READONLY_REALM
    }
}

/// The legacy writes (`/master/teardown`, ..., the maintenance POSTs),
/// in Mesos' read-write realm.
fn legacy_write(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let path = path.strip_prefix("/master").unwrap_or(path);
    matches!(
        path,
        "/teardown" | "/reserve" | "/unreserve" | "/machine/down" | "/machine/up"
    ) || (path == "/maintenance/schedule" && method == Method::POST)
}

/// A refusal in the endpoint's own form: Keel's API answers
/// `{"error": ...}`, the Mesos endpoints plain text.
fn refusal(path: &str, status: StatusCode, reason: String) -> Response {
    if super::ui::is_ui(path) {
        return super::ui::refused(status, &reason);
    }
    if path.starts_with("/api/keel/") {
        super::keel::error(status, reason)
    } else {
        ApiError::new(status, reason).into_response()
    }
}

/// Middleware: who is asking, or `401`. Certificates of the cluster's own
/// roles (master, agent) are refused with `403`.
pub async fn authenticate(
    State(master): State<Arc<Master>>,
    mut req: Request,
    next: Next,
) -> Response {
    super::ui::cookie_bearer(&mut req);
    let trust = Arc::clone(&master.config().trust);
    let cert = req.extensions().get::<PeerIdentity>().cloned();
    let path = req.uri().path().to_string();
    match trust.authenticate(
        req.headers(),
        cert.as_ref(),
        |id| master.token(id),
        unix_now(),
    ) {
        Ok(caller) if trust.admits(&caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(_) => refusal(
            &path,
            StatusCode::FORBIDDEN,
            "certificates of the cluster's own roles (master, agent) may not use this API".into(),
        ),
        Err(e) => {
            tracing::debug!(path, error = %e, "request not authenticated");
            let realm = realm(req.method(), &path);
            let mut resp = refusal(&path, StatusCode::UNAUTHORIZED, e.to_string());
            let h = resp.headers_mut();
            for scheme in ["Basic", "Bearer"] {
                if let Ok(v) = HeaderValue::from_str(&format!("{scheme} realm=\"{realm}\"")) {
                    h.append(header::WWW_AUTHENTICATE, v);
                }
            }
            resp
        }
    }
}

/// `403` naming what was refused.
pub fn forbidden(denied: &Denied) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, denied.to_string())
}

fn check_all(
    trust: &Trust,
    caller: &Caller,
    needs: &[(Action, Option<String>)],
) -> Result<(), Denied> {
    needs
        .iter()
        .try_for_each(|(action, object)| trust.check(caller, *action, object.as_deref()))
}

/// What an operator call needs beyond authentication (reads are filtered
/// instead, see `visible.rs`). `framework_principal` looks up a framework's
/// principal (`None`: unknown, or it has none: checked as ANY).
pub fn operator_needs(
    call: &OperatorCall,
    framework: impl Fn(&str) -> Option<FrameworkInfo>,
) -> Vec<(Action, Option<String>)> {
    let roles = |action: Action, roles: &mut dyn Iterator<Item = &String>| {
        let mut roles: Vec<&String> = roles.collect();
        roles.sort();
        roles.dedup();
        roles
            .into_iter()
            .map(|r| (action, Some(r.clone())))
            .collect::<Vec<_>>()
    };
    match call {
        OperatorCall::GetFlags => vec![(Action::ViewFlags, None)],
        OperatorCall::GetAgents => vec![(Action::ViewAgent, None)],
        OperatorCall::UpdateWeights(w) => {
            roles(Action::UpdateWeight, &mut w.iter().map(|(r, _)| r))
        }
        OperatorCall::UpdateQuota(q) => roles(Action::UpdateQuota, &mut q.iter().map(|c| &c.role)),
        OperatorCall::SetLoggingLevel { .. } => vec![(Action::SetLogLevel, None)],
        OperatorCall::SetQuota(q) => vec![(Action::UpdateQuota, Some(q.role.clone()))],
        OperatorCall::RemoveQuota { role } => vec![(Action::UpdateQuota, Some(role.clone()))],
        OperatorCall::ReserveResources { resources, .. } => roles(
            Action::ReserveResources,
            &mut resources.iter().map(|r| &r.role),
        ),
        // Keel does not record who reserved: any reserver.
        OperatorCall::UnreserveResources { .. } => vec![(Action::UnreserveResources, None)],
        OperatorCall::Teardown { framework_id } => {
            vec![(
                Action::TeardownFramework,
                framework(framework_id).and_then(|f| f.principal),
            )]
        }
        // Mesos authorizes it for ANY agent only.
        OperatorCall::MarkAgentGone { .. } => vec![(Action::MarkAgentGone, None)],
        // The maintenance ACLs are checked for ANY machine, the drain
        // ACLs for the agent.
        OperatorCall::GetMaintenanceSchedule => vec![(Action::GetMaintenanceSchedule, None)],
        OperatorCall::GetMaintenanceStatus => vec![(Action::GetMaintenanceStatus, None)],
        OperatorCall::UpdateMaintenanceSchedule(_) => {
            vec![(Action::UpdateMaintenanceSchedule, None)]
        }
        OperatorCall::StartMaintenance(_) => vec![(Action::StartMaintenance, None)],
        OperatorCall::StopMaintenance(_) => vec![(Action::StopMaintenance, None)],
        OperatorCall::DrainAgent { agent_id, .. } => {
            vec![(Action::DrainAgent, Some(agent_id.clone()))]
        }
        OperatorCall::DeactivateAgent(agent_id) => {
            vec![(Action::DeactivateAgent, Some(agent_id.clone()))]
        }
        OperatorCall::ReactivateAgent(agent_id) => {
            vec![(Action::ReactivateAgent, Some(agent_id.clone()))]
        }
        // As for a sandbox grant: a framework this master does not know is
        // checked as any user.
        OperatorCall::Files(f) => vec![(
            Action::AccessSandbox,
            framework(&f.path().framework_id).map(|f| f.user),
        )],
        OperatorCall::Volumes { change, .. } => {
            let mut needs: Vec<_> = match change {
                VolumeChange::Create(vs) => vs
                    .iter()
                    .map(|v| (Action::CreateVolume, Some(v.role.clone())))
                    .collect(),
                VolumeChange::Destroy(vs) => vs
                    .iter()
                    .map(|v| (Action::DestroyVolume, v.principal.clone()))
                    .collect(),
                VolumeChange::Grow { role, .. } | VolumeChange::Shrink { role, .. } => {
                    vec![(Action::ResizeVolume, Some(role.clone()))]
                }
            };
            needs.sort();
            needs.dedup();
            needs
        }
        OperatorCall::GetHealth
        | OperatorCall::GetVersion
        | OperatorCall::GetMaster
        | OperatorCall::GetState
        | OperatorCall::GetFrameworks
        | OperatorCall::GetTasks
        | OperatorCall::GetExecutors
        | OperatorCall::GetLoggingLevel
        | OperatorCall::GetOperations
        | OperatorCall::GetRoles
        | OperatorCall::GetWeights
        | OperatorCall::GetQuota
        | OperatorCall::Subscribe
        | OperatorCall::GetMetrics => Vec::new(),
    }
}

/// An operator call, authorized or `403`.
pub fn operator(master: &Master, caller: &Caller, call: &OperatorCall) -> Result<(), ApiError> {
    let needs = operator_needs(call, |id| master.framework_info(id));
    check_all(&master.config().trust, caller, &needs).map_err(|d| forbidden(&d))
}

/// The user a task runs as, as Mesos reads it for `run_tasks`: the task's
/// command, else its executor's, else the framework's.
fn task_user<'a>(
    task: &'a TaskInfo,
    executor: Option<&'a keel_api::mesos::ExecutorInfo>,
    framework: &'a FrameworkInfo,
) -> &'a str {
    let command = |c: Option<&'a keel_api::mesos::CommandInfo>| c.and_then(|c| c.user.as_deref());
    command(task.command.as_ref())
        .or_else(|| command(task.executor.as_ref().and_then(|e| e.command.as_ref())))
        .or_else(|| command(executor.and_then(|e| e.command.as_ref())))
        .unwrap_or(&framework.user)
}

fn reserver(r: &Resource) -> Option<String> {
    let last = r.reservations.as_ref().and_then(|rs| rs.last());
    last.or(r.reservation.as_ref())
        .and_then(|r| r.principal.clone())
}

fn creator(r: &Resource) -> Option<String> {
    r.disk.as_ref()?.persistence.as_ref()?.principal.clone()
}

/// What the operations of an ACCEPT need: `run_tasks` for each task's
/// user, `reserve_resources` / `create_volumes` for each role,
/// `unreserve_resources` / `destroy_volumes` for who reserved or created.
pub fn accept_needs(
    operations: &[Operation],
    framework: &FrameworkInfo,
) -> Vec<(Action, Option<String>)> {
    let mut needs = Vec::new();
    for op in operations {
        match &op.kind {
            OperationKind::Launch { task_infos } => needs.extend(task_infos.iter().map(|t| {
                (
                    Action::RunTask,
                    Some(task_user(t, None, framework).to_string()),
                )
            })),
            OperationKind::LaunchGroup { executor, tasks } => needs.extend(tasks.iter().map(|t| {
                let user = task_user(t, Some(executor), framework).to_string();
                (Action::RunTask, Some(user))
            })),
            OperationKind::Reserve { resources } => needs.extend(resources.iter().map(|r| {
                (
                    Action::ReserveResources,
                    Some(r.reserved_role().to_string()),
                )
            })),
            OperationKind::Unreserve { resources } => needs.extend(
                resources
                    .iter()
                    .map(|r| (Action::UnreserveResources, reserver(r))),
            ),
            OperationKind::Create { volumes } => needs.extend(
                volumes
                    .iter()
                    .map(|r| (Action::CreateVolume, Some(r.reserved_role().to_string()))),
            ),
            OperationKind::Destroy { volumes } => {
                needs.extend(volumes.iter().map(|r| (Action::DestroyVolume, creator(r))))
            }
            OperationKind::Unsupported { .. } => {}
        }
    }
    needs.sort();
    needs.dedup();
    needs
}

/// SUBSCRIBE, before the master sees it. A framework's `principal` must
/// be the authenticated one (Mesos' validation, `400`); one that sets none
/// gets it. Then `register_frameworks` for each of its roles: a refusal is
/// the framework's ERROR event, as Mesos answers it.
pub fn subscribe(
    trust: &Trust,
    caller: &Caller,
    info: &mut FrameworkInfo,
) -> Result<Result<(), Denied>, ApiError> {
    if let Some(name) = caller.name() {
        match &info.principal {
            Some(p) if p != name => {
                return Err(ApiError::bad_request(format!(
                    "Failed to validate scheduler::Call: Authenticated principal '{name}' does not \
                     match principal '{p}' set in `FrameworkInfo`"
                )));
            }
            Some(_) => {}
            None => info.principal = Some(name.to_string()),
        }
    }
    Ok(trust.check_each(caller, Action::RegisterFramework, &info.effective_roles()))
}

/// Every scheduler call but SUBSCRIBE: the caller must be the framework's
/// principal (`403` otherwise); UPDATE_FRAMEWORK is authorized as a
/// subscription, ACCEPT for what its operations do. An unknown framework
/// is left to the master (`400`).
pub fn scheduler(
    master: &Master,
    caller: &Caller,
    framework_id: &str,
    kind: &mut CallKind,
) -> Result<(), ApiError> {
    let trust = &master.config().trust;
    let Some(framework) = master.framework_info(framework_id) else {
        return Ok(());
    };
    if let Some(name) = caller.name()
        && framework.principal.as_deref() != Some(name)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Authenticated principal '{name}' does not match principal '{}' set in `FrameworkInfo`",
                framework.principal.as_deref().unwrap_or_default()
            ),
        ));
    }
    match kind {
        CallKind::UpdateFramework(sub) => {
            match subscribe(trust, caller, &mut sub.framework_info)? {
                Ok(()) => Ok(()),
                Err(d) => Err(forbidden(&d)),
            }
        }
        CallKind::Accept { operations, .. } => {
            check_all(trust, caller, &accept_needs(operations, &framework))
                .map_err(|d| forbidden(&d))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
