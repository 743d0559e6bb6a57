//! `POST /api/keel/v1/agents/{id}/grant` (`docs/design/0006-trust.md`,
//! "The agent's port"): a sandbox grant, signed with this master's key,
//! for the sandboxes of some frameworks on one agent, to a caller allowed
//! `access_sandboxes` for each framework's user. The agent checks it
//! itself (`keel_pki::grant`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keel_api::keel::{GrantRequest, SandboxGrant};
use keel_pki::Grant;

use super::json;
use super::keel::error;
use crate::auth::{Action, Caller};
use crate::core::{Master, unix_now};

/// How long a grant reads sandboxes.
pub const GRANT_TTL: Duration = Duration::from_secs(15 * 60);
/// The most frameworks one grant names.
pub const MAX_GRANT_FRAMEWORKS: usize = 64;

pub async fn create(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(agent_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(signer) = master.config().grants.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this master serves plaintext: agents' ports are open and need no grant",
        );
    };
    let req = match serde_json::from_slice::<GrantRequest>(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"frameworks\": [\"<framework id>\", ...]}}: {e}"),
            );
        }
    };
    let mut frameworks = req.frameworks;
    frameworks.sort();
    frameworks.dedup();
    if frameworks.is_empty() || frameworks.len() > MAX_GRANT_FRAMEWORKS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a grant names 1 to {MAX_GRANT_FRAMEWORKS} frameworks"),
        );
    }
    if !master.has_agent(&agent_id) {
        return error(StatusCode::NOT_FOUND, format!("unknown agent {agent_id}"));
    }
    let trust = &master.config().trust;
    for fw in &frameworks {
        // A framework this master does not know is checked as any user.
        let user = master.framework_info(fw).map(|f| f.user);
        if let Err(denied) = trust.check(&caller, Action::AccessSandbox, user.as_deref()) {
            return error(StatusCode::FORBIDDEN, denied.to_string());
        }
    }
    let grant = Grant {
        agent_id: agent_id.clone(),
        frameworks: frameworks.clone(),
        principal: caller.name().map(str::to_string),
        expires_at: unix_now() as i64 + GRANT_TTL.as_secs() as i64,
    };
    match signer.sign(&grant) {
        Ok(token) => json(
            StatusCode::OK,
            &SandboxGrant {
                token,
                agent_id,
                frameworks,
                expires_at: grant.expires_at,
            },
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
