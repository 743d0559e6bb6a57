//! Credentials sent with every request: HTTP basic with a Mesos principal
//! and secret (as pymesos and the other Mesos clients send them), or a
//! bearer token the master issued (`keelctl tokens create --bearer`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::ClientError;

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { principal: String, secret: String },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { principal, .. } => write!(f, "Basic({principal})"),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

impl Credentials {
    pub fn basic(principal: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials::Basic {
            principal: principal.into(),
            secret: secret.into(),
        }
    }

    pub fn bearer(token: impl Into<String>) -> Credentials {
        Credentials::Bearer(token.into())
    }

    /// Credentials from a principal and secret, or a token (as keelctl
    /// takes them from `KEEL_PRINCIPAL`, `KEEL_SECRET`, `KEEL_TOKEN`); none
    /// when nothing is given.
    pub fn from_parts(
        principal: Option<String>,
        secret: Option<String>,
        token: Option<String>,
    ) -> Result<Option<Credentials>, ClientError> {
        let refuse = |m: &str| Err(ClientError::Credentials(m.to_string()));
        match (principal, secret, token) {
            (None, None, None) => Ok(None),
            (None, None, Some(t)) => Ok(Some(Credentials::bearer(t))),
            (Some(p), Some(s), None) => Ok(Some(Credentials::basic(p, s))),
            (_, _, Some(_)) => refuse("give either a token or a principal and secret, not both"),
            (Some(_), None, None) => refuse("a principal needs its secret"),
            (None, Some(_), None) => refuse("a secret needs its principal"),
        }
    }

    /// The `Authorization` header's value (marked sensitive).
    pub fn header(&self) -> Result<HeaderValue, ClientError> {
        let text = match self {
            Credentials::Basic { principal, secret } => {
                if principal.contains(':') {
                    return Err(ClientError::Credentials(
                        "a principal cannot contain ':' in HTTP basic".into(),
                    ));
                }
                format!("Basic {}", STANDARD.encode(format!("{principal}:{secret}")))
            }
            Credentials::Bearer(token) => format!("Bearer {}", token.trim()),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ClientError::Credentials("the credentials are not visible ASCII".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Headers to send with every request.
    pub(crate) fn headers(credentials: Option<&Credentials>) -> Result<HeaderMap, ClientError> {
        let mut headers = HeaderMap::new();
        if let Some(c) = credentials {
            headers.insert(AUTHORIZATION, c.header()?);
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_parts() {
        let basic = Credentials::basic("fw", "s:1");
        assert_eq!(basic.header().unwrap(), "Basic Znc6czox");
        assert!(basic.header().unwrap().is_sensitive());
        assert_eq!(
            Credentials::bearer("keel1.x.y").header().unwrap(),
            "Bearer keel1.x.y"
        );
        assert!(Credentials::basic("a:b", "s").header().is_err());
        assert!(Credentials::bearer("bad\ntoken").header().is_err());
        assert!(!format!("{basic:?}").contains("s:1"));
        let some = |s: &str| Some(s.to_string());
        assert_eq!(Credentials::from_parts(None, None, None).unwrap(), None);
        assert_eq!(
            Credentials::from_parts(some("p"), some("s"), None).unwrap(),
            Some(Credentials::basic("p", "s"))
        );
        assert_eq!(
            Credentials::from_parts(None, None, some("t")).unwrap(),
            Some(Credentials::bearer("t"))
        );
        assert!(Credentials::from_parts(some("p"), None, None).is_err());
        assert!(Credentials::from_parts(some("p"), some("s"), some("t")).is_err());
    }
}
