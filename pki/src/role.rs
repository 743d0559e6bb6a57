//! What a certificate says about its holder: a [`Role`] and a name.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The prefix of a role in a certificate subject's organization.
pub const ROLE_PREFIX: &str = "keel:";

/// What the holder of a certificate may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Speaks Raft with the other masters and serves the APIs.
    Master,
    /// Holds an agent session; nothing else.
    Agent,
    /// Everything an operator can do, masters and tokens included.
    Admin,
    /// Everything but managing masters and tokens.
    Operator,
    /// Reads.
    Reader,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Master,
        Role::Agent,
        Role::Admin,
        Role::Operator,
        Role::Reader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Reader => "reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Role, IdentityError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_string()))
    }
}

/// Who is on the other end of a TLS connection, read off the certificate
/// it presented (after rustls verified it against the cluster CA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    pub role: Role,
    /// The subject's common name: a master's address, an agent id, an
    /// operator's principal.
    pub name: String,
    /// The URI subject alternative names (an agent's TPM endorsement key:
    /// `keel:ek:sha256:<hex>`).
    pub uris: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate cannot be parsed: {0}")]
    Parse(String),
    #[error("certificate names no keel role (subject organization '{ROLE_PREFIX}<role>')")]
    NoRole,
    #[error("certificate names more than one keel role")]
    ManyRoles,
    #[error("unknown role {0:?} (master, agent, admin, operator, reader)")]
    UnknownRole(String),
    #[error("certificate has no common name")]
    NoName,
}

impl PeerIdentity {
    /// The identity in `cert` (DER). Verification is rustls' job: this
    /// only reads the subject.
    pub fn of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
        let (_, cert) = X509Certificate::from_der(cert.as_ref())
            .map_err(|e| IdentityError::Parse(e.to_string()))?;
        let subject = cert.subject();
        let mut roles = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .filter_map(|o| o.strip_prefix(ROLE_PREFIX));
        let role = roles.next().ok_or(IdentityError::NoRole)?;
        if roles.next().is_some() {
            return Err(IdentityError::ManyRoles);
        }
        let name = subject
            .iter_common_name()
            .find_map(|n| n.as_str().ok())
            .ok_or(IdentityError::NoName)?;
        let uris = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(IdentityError::Parse(e.to_string())),
        };
        Ok(PeerIdentity {
            role: role.parse()?,
            name: name.to_string(),
            uris,
        })
    }
}

/// When `cert` (DER) becomes valid and stops being valid, in seconds since
/// the epoch.
pub fn validity(cert: &CertificateDer<'_>) -> Result<(i64, i64), IdentityError> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(matches!(
            "root".parse::<Role>(),
            Err(IdentityError::UnknownRole(_))
        ));
    }

    #[test]
    fn garbage_is_no_certificate() {
        let err = PeerIdentity::of(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).unwrap_err();
        assert!(matches!(err, IdentityError::Parse(_)), "{err}");
    }
}
