//! Who is asking, and may they: authentication of the scheduler and
//! operator APIs (HTTP basic against the `--credentials` file, bearer
//! tokens the master issued, client certificates) and authorization by
//! Mesos ACLs (`--acls`). Pure: the HTTP edge (`http/auth.rs`) hands in
//! the request's headers, its certificate identity and a token lookup,
//! and maps the answers to 401 and 403 (`docs/design/0006-trust.md`).
//!
//! - `credentials.rs`: the Mesos credentials file.
//! - `acls.rs` (and `action.rs`): the Mesos local authorizer's ACLs.
//! - `tokens.rs`: token text, minting and hashing (the registry keeps
//!   the tokens: `registry/tokens.rs`).
//! - `header.rs`: the `Authorization` header.

pub mod acls;
mod action;
pub mod credentials;
mod header;
pub mod tokens;

use axum::http::HeaderMap;

use crate::registry::{TokenKind, TokenRecord, TokenRefusal};
pub use acls::Acls;
pub use action::Action;
pub use credentials::Credentials;
pub use header::Authorization;

/// A client certificate's identity and role (put in each request by the
/// TLS listener, `keel-serve`). As Talos' roles: `admin` may do everything,
/// `operator` everything but managing masters and tokens, `reader` view
/// only; `master` and `agent` certificates are for the cluster's own
/// connections and may not use the scheduler and operator APIs.
pub use keel_pki::{PeerIdentity, Role};

/// How a principal was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Basic,
    Bearer { token_id: String },
    Certificate(Role),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub method: Method,
}

/// Who made a request: a principal, or nobody (authentication is off and
/// the request carried no credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub Option<Principal>);

impl Caller {
    pub fn name(&self) -> Option<&str> {
        self.0.as_ref().map(|p| p.name.as_str())
    }
}

/// Why a request is not authenticated (HTTP 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthnError {
    #[error("authentication required: send HTTP basic credentials or a bearer token")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("unsupported authorization scheme '{0}' (Keel takes Basic and Bearer)")]
    Scheme(String),
    #[error("invalid credentials for principal '{0}'")]
    BadSecret(String),
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error(transparent)]
    Refused(TokenRefusal),
}

/// An action refused to a caller (HTTP 403).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{} is not authorized to {}", who(.principal), .action.describe(.object.as_deref()))]
pub struct Denied {
    pub principal: Option<String>,
    pub action: Action,
    pub object: Option<String>,
}

fn who(principal: &Option<String>) -> String {
    match principal {
        Some(p) => format!("principal '{p}'"),
        None => "an unauthenticated request".into(),
    }
}

/// The master's authentication and authorization settings.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    credentials: Option<Credentials>,
    acls: Acls,
    required: bool,
}

impl Trust {
    /// No authentication required, no ACLs: Keel as it always was.
    pub fn open() -> Trust {
        Trust::default()
    }

    /// `required`: every request to the protected APIs must authenticate
    /// (`--credentials` implies it).
    pub fn new(credentials: Option<Credentials>, acls: Acls, required: bool) -> Trust {
        let required = required || credentials.is_some();
        Trust {
            credentials,
            acls,
            required,
        }
    }

    pub fn required(&self) -> bool {
        self.required
    }

    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// Who sent a request with `headers` over a connection whose client
    /// certificate says `cert`, at `now` (unix seconds); `token` looks up
    /// a token by id. The `Authorization` header, when present, decides;
    /// then the certificate; without either the caller is nobody, which
    /// only an open master accepts.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        cert: Option<&PeerIdentity>,
        token: impl Fn(&str) -> Option<TokenRecord>,
        now: f64,
    ) -> Result<Caller, AuthnError> {
        let principal = match Authorization::read(headers)? {
            Some(Authorization::Basic { principal, secret }) => {
                let known = self
                    .credentials
                    .as_ref()
                    .is_some_and(|c| c.check(&principal, secret.as_bytes()));
                if !known {
                    return Err(AuthnError::BadSecret(principal));
                }
                Principal {
                    name: principal,
                    method: Method::Basic,
                }
            }
            Some(Authorization::Bearer(text)) => {
                let presented = tokens::parse(&text)?;
                let record = token(&presented.id).ok_or_else(|| {
                    AuthnError::Refused(TokenRefusal::Unknown(presented.id.clone()))
                })?;
                record
                    .verify(TokenKind::Bearer, &presented.secret_sha256, now)
                    .map_err(AuthnError::Refused)?;
                Principal {
                    name: record.principal,
                    method: Method::Bearer {
                        token_id: presented.id,
                    },
                }
            }
            None => match cert {
                Some(c) => Principal {
                    name: c.name.clone(),
                    method: Method::Certificate(c.role),
                },
                None if self.required => return Err(AuthnError::Missing),
                None => return Ok(Caller(None)),
            },
        };
        Ok(Caller(Some(principal)))
    }

    /// Whether `caller` may perform `action` on `object` (ANY when none):
    /// a certificate's role bounds what it may do (admin: everything,
    /// ACLs not consulted), then the ACLs decide for the principal.
    pub fn allowed(&self, caller: &Caller, action: Action, object: Option<&str>) -> bool {
        self.decide(caller, action, |acls| {
            acls.authorized(caller.name(), action, object)
        })
    }

    fn decide(&self, caller: &Caller, action: Action, acls: impl FnOnce(&Acls) -> bool) -> bool {
        match caller.0.as_ref().map(|p| &p.method) {
            Some(Method::Certificate(Role::Admin)) => true,
            Some(Method::Certificate(Role::Operator)) => {
                !matches!(action, Action::ManageMasters | Action::ManageTokens) && acls(&self.acls)
            }
            Some(Method::Certificate(Role::Reader)) => action.is_view() && acls(&self.acls),
            Some(Method::Certificate(Role::Agent | Role::Master)) => false,
            _ => acls(&self.acls),
        }
    }

    fn denied(caller: &Caller, action: Action, object: Option<&str>) -> Denied {
        Denied {
            principal: caller.name().map(str::to_string),
            action,
            object: object.map(str::to_string),
        }
    }

    /// [`Trust::allowed`], as an error naming what was refused.
    pub fn check(
        &self,
        caller: &Caller,
        action: Action,
        object: Option<&str>,
    ) -> Result<(), Denied> {
        match self.allowed(caller, action, object) {
            true => Ok(()),
            false => Err(Self::denied(caller, action, object)),
        }
    }

    /// Every one of `objects` (a framework's roles), as Mesos authorizes
    /// REGISTER_FRAMEWORK; none at all is up to `permissive`.
    pub fn check_each(
        &self,
        caller: &Caller,
        action: Action,
        objects: &[String],
    ) -> Result<(), Denied> {
        if objects.is_empty() {
            return match self.decide(caller, action, Acls::permissive) {
                true => Ok(()),
                false => Err(Self::denied(caller, action, None)),
            };
        }
        objects
            .iter()
            .try_for_each(|o| self.check(caller, action, Some(o)))
    }

    /// Whether a caller may use the scheduler and operator APIs at all:
    /// the cluster's own certificates may not.
    pub fn admits(&self, caller: &Caller) -> bool {
        !matches!(
            caller.0.as_ref().map(|p| &p.method),
            Some(Method::Certificate(Role::Agent | Role::Master))
        )
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
