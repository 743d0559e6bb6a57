//! Who may use the agent's port, and which sandboxes they may read
//! (`docs/design/0006-trust.md`, "The agent's port").
//!
//! With TLS (the agent has the cluster CA), every route but `/health`
//! wants one of:
//! - a client certificate from the cluster CA: `admin` and `operator`
//!   read every sandbox; `reader` and `master` read the agent's state and
//!   inventory but no sandbox; an `agent` certificate is refused; a
//!   `master` certificate that also carries a sandbox grant reads what
//!   the grant opens (the master's LIST_FILES / READ_FILE on behalf of a
//!   caller it authorized, `docs/design/0011-files-and-volumes.md`);
//! - `Authorization: Bearer <grant>`: a sandbox grant a master signed
//!   for this agent ([`keel_pki::grant`]), which opens the sandboxes of
//!   the frameworks it names (and the state and inventory).
//!
//! Without TLS (development) the port is open, as before, and the agent
//! said so when it started.
//!
//! [`Access`] is pure: what a request may do, and whether a sandbox path
//! is within it. The middleware ([`authenticate`]) puts it in the
//! request's extensions; the files API checks the path it resolved.

use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_pki::{GrantVerifier, PeerIdentity, Role};

/// The realm of the agent's `WWW-Authenticate`.
pub const REALM: &str = "keel-agent";

/// What a request may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every sandbox (no TLS, or an admin or operator certificate).
    All,
    /// The sandboxes of these frameworks on this agent (a grant).
    Frameworks(BTreeSet<String>),
    /// No sandbox (a reader's or a master's certificate).
    NoSandboxes(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "this agent's port wants a client certificate from the cluster CA or a sandbox grant \
         from a master (Authorization: Bearer)"
    )]
    Unauthenticated,
    #[error("the sandbox grant is refused: {0}")]
    BadGrant(String),
    #[error("the sandbox grant is for agent {granted:?}, this is agent {this:?}")]
    OtherAgent { granted: String, this: String },
    #[error("agent certificates may not use another agent's port")]
    AgentCertificate,
    #[error("access_sandboxes refused: {0}")]
    Sandbox(String),
}

impl Access {
    /// Whether `rel` (a sandbox path relative to the sandbox root, as
    /// `Sandboxes::resolve` gives it: `<agent>/frameworks/<fw>/...`) is
    /// within this access, for agent `agent_id`.
    pub fn permits(&self, rel: &Path, agent_id: Option<&str>) -> Result<(), AccessError> {
        match self {
            Access::All => Ok(()),
            Access::NoSandboxes(who) => Err(AccessError::Sandbox(format!(
                "{who} certificates do not read sandboxes"
            ))),
            Access::Frameworks(frameworks) => {
                let mut parts = rel.components().map(|c| match c {
                    Component::Normal(s) => s.to_str(),
                    _ => None,
                });
                let agent = parts.next().flatten();
                let (dir, fw) = (parts.next().flatten(), parts.next().flatten());
                match (agent, dir, fw) {
                    (Some(a), Some("frameworks"), Some(fw))
                        if Some(a) == agent_id && frameworks.contains(fw) =>
                    {
                        Ok(())
                    }
                    _ => Err(AccessError::Sandbox(format!(
                        "the grant opens the sandboxes of frameworks {frameworks:?} of this \
                         agent only"
                    ))),
                }
            }
        }
    }
}

/// What the middleware needs.
#[derive(Clone)]
pub struct PortAuth {
    /// `None`: no TLS, the port is open.
    pub grants: Option<GrantVerifier>,
    /// This agent's id, once registered.
    pub agent_id: Arc<dyn Fn() -> Option<String> + Send + Sync>,
}

/// Who is asking, from the certificate the TLS layer verified or the
/// grant in `authorization`, at `now` (unix seconds).
pub fn access(
    grants: &GrantVerifier,
    cert: Option<&PeerIdentity>,
    authorization: Option<&str>,
    agent_id: Option<&str>,
    now: i64,
) -> Result<Access, AccessError> {
    let bearer = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(id) = cert {
        return match (id.role, bearer) {
            (Role::Admin | Role::Operator, _) => Ok(Access::All),
            (Role::Reader, _) => Ok(Access::NoSandboxes("reader")),
            // A master relays a caller it authorized: the grant says what.
            (Role::Master, Some(token)) => granted(grants, token, agent_id, now),
            (Role::Master, None) => Ok(Access::NoSandboxes("master")),
            (Role::Agent, _) => Err(AccessError::AgentCertificate),
        };
    }
    let token = bearer.ok_or(AccessError::Unauthenticated)?;
    granted(grants, token, agent_id, now)
}

/// What the sandbox grant `token` opens on agent `agent_id`.
fn granted(
    grants: &GrantVerifier,
    token: &str,
    agent_id: Option<&str>,
    now: i64,
) -> Result<Access, AccessError> {
    let grant = grants
        .verify(token, now)
        .map_err(|e| AccessError::BadGrant(e.to_string()))?;
    if Some(grant.agent_id.as_str()) != agent_id {
        return Err(AccessError::OtherAgent {
            granted: grant.agent_id,
            this: agent_id.unwrap_or_default().to_string(),
        });
    }
    tracing::debug!(principal = ?grant.principal, frameworks = ?grant.frameworks,
        "sandbox grant accepted");
    Ok(Access::Frameworks(grant.frameworks.into_iter().collect()))
}

/// The middleware: `/health` passes; otherwise the request gets its
/// [`Access`] or `401` (with `WWW-Authenticate`) / `403` and the reason.
pub async fn authenticate(State(auth): State<PortAuth>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let Some(grants) = &auth.grants else {
        req.extensions_mut().insert(Access::All);
        return next.run(req).await;
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let agent_id = (auth.agent_id)();
    let found = access(
        grants,
        req.extensions().get::<PeerIdentity>(),
        authorization,
        agent_id.as_deref(),
        unix_now(),
    );
    match found {
        Ok(access) => {
            req.extensions_mut().insert(access);
            next.run(req).await
        }
        Err(e) => refusal(&e),
    }
}

/// `401` or `403` with the reason as plain text.
pub fn refusal(e: &AccessError) -> Response {
    let status = match e {
        AccessError::Unauthenticated | AccessError::BadGrant(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    let mut resp = (status, e.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"{REALM}\""))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keel_pki::{Ca, Grant, GrantSigner, Material};

    use super::*;

    fn setup() -> (GrantVerifier, GrantSigner) {
        let ca = Ca::create("c").unwrap();
        let m = ca
            .issue(Role::Master, "m1", &[], Duration::from_secs(600))
            .unwrap();
        let master = Material::from_pem(ca.cert_pem(), Some((&m.cert_pem, &m.key_pem))).unwrap();
        let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
        (
            GrantVerifier::new(&anon),
            GrantSigner::new(&master).unwrap(),
        )
    }

    fn grant(signer: &GrantSigner, agent: &str, fw: &str, expires_at: i64) -> String {
        let g = Grant {
            agent_id: agent.into(),
            frameworks: vec![fw.into()],
            principal: None,
            expires_at,
        };
        format!("Bearer {}", signer.sign(&g).unwrap())
    }

    fn cert(role: Role) -> PeerIdentity {
        PeerIdentity {
            role,
            name: "x".into(),
            uris: Vec::new(),
        }
    }

    #[test]
    fn certificates_and_grants_give_their_access() {
        let (v, s) = setup();
        let here = Some("a-S0");
        let a = |c: Option<PeerIdentity>, h: Option<&str>| access(&v, c.as_ref(), h, here, 100);
        assert_eq!(a(Some(cert(Role::Admin)), None), Ok(Access::All));
        assert_eq!(a(Some(cert(Role::Operator)), None), Ok(Access::All));
        assert!(matches!(
            a(Some(cert(Role::Reader)), None),
            Ok(Access::NoSandboxes(_))
        ));
        assert_eq!(
            a(Some(cert(Role::Agent)), None),
            Err(AccessError::AgentCertificate)
        );
        assert_eq!(a(None, None), Err(AccessError::Unauthenticated));
        assert_eq!(
            a(None, Some("Basic eDp5")),
            Err(AccessError::Unauthenticated)
        );
        let ok = grant(&s, "a-S0", "fw", 200);
        assert_eq!(
            a(None, Some(&ok)),
            Ok(Access::Frameworks(["fw".to_string()].into()))
        );
        assert!(matches!(
            a(None, Some(&grant(&s, "a-S0", "fw", 50))),
            Err(AccessError::BadGrant(_))
        ));
        assert!(matches!(
            a(None, Some(&grant(&s, "a-S9", "fw", 200))),
            Err(AccessError::OtherAgent { .. })
        ));
        assert!(matches!(
            a(None, Some("Bearer junk")),
            Err(AccessError::BadGrant(_))
        ));
        // A master's certificate reads no sandbox by itself, and what its
        // grant opens with one.
        assert!(matches!(
            a(Some(cert(Role::Master)), None),
            Ok(Access::NoSandboxes(_))
        ));
        assert_eq!(
            a(Some(cert(Role::Master)), Some(&ok)),
            Ok(Access::Frameworks(["fw".to_string()].into()))
        );
        assert!(matches!(
            a(Some(cert(Role::Master)), Some("Bearer junk")),
            Err(AccessError::BadGrant(_))
        ));
        assert!(matches!(
            a(Some(cert(Role::Reader)), Some(&ok)),
            Ok(Access::NoSandboxes(_))
        ));
    }

    #[test]
    fn a_grant_opens_its_frameworks_sandboxes_only() {
        let access = Access::Frameworks(["fw".to_string()].into());
        let here = Some("a-S0");
        let ok = |p: &str| access.permits(Path::new(p), here);
        ok("a-S0/frameworks/fw/executors/e/runs/latest/stdout").unwrap();
        ok("a-S0/frameworks/fw").unwrap();
        for denied in [
            "",
            "a-S0",
            "a-S0/frameworks",
            "a-S0/frameworks/other/executors",
            "a-S9/frameworks/fw/executors",
            "a-S0/meta/frameworks/fw",
        ] {
            assert!(ok(denied).is_err(), "{denied}");
        }
        Access::All.permits(Path::new(""), here).unwrap();
        assert!(
            Access::NoSandboxes("reader")
                .permits(Path::new("a-S0/frameworks/fw"), here)
                .is_err()
        );
    }
}
