//! Who may hold an agent session (`docs/design/0006-trust.md`), decided
//! at the edge before a registration reaches the engine.
//!
//! - A peer certificate with the agent role admits: it names the agent id
//!   the masters issued it for (or, issued by an operator with `keelctl
//!   pki issue`, a name), and the agent may register only as that id or as
//!   a new agent.
//! - Any other certificate (a master's, an operator's) holds no agent
//!   session.
//! - Without a certificate: `open` admits anyone (development, said
//!   loudly), `token` wants a join token with uses left, which the caller
//!   consumes through the registry ([`Check::ConsumeToken`]).
//!
//! An admitted agent that sends a certificate request gets a certificate
//! naming its agent id, signed with the cluster CA's key when this master
//! holds it (`--tls-ca-key`); it presents that from then on.

use std::str::FromStr;
use std::time::Duration;

use keel_pki::{Ca, PeerIdentity, Role};

/// How long an issued agent certificate is valid; agents renew it past
/// half its life.
pub const AGENT_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// `--agent-admission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Token,
}

impl FromStr for Mode {
    type Err = AdmissionError;

    fn from_str(s: &str) -> Result<Mode, AdmissionError> {
        match s {
            "open" => Ok(Mode::Open),
            "token" => Ok(Mode::Token),
            "tpm" => Err(AdmissionError::Unsupported("tpm")),
            other => Err(AdmissionError::UnknownMode(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("unknown admission mode {0:?} (open, token)")]
    UnknownMode(String),
    #[error("--agent-admission {0} is not built yet (open or token)")]
    Unsupported(&'static str),
    #[error("a {0} certificate cannot hold an agent session")]
    WrongRole(Role),
    #[error("the certificate names agent {cert:?}, not {claimed:?}")]
    WrongAgent { cert: String, claimed: String },
    #[error(
        "this cluster admits agents by join token: start the agent with --join-token \
         (keelctl tokens create)"
    )]
    NoToken,
    #[error("join token refused: {0}")]
    Token(String),
}

/// What admitting a registration takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Admitted now.
    Admitted(Admitted),
    /// Admitted once this join token is consumed in the registry.
    ConsumeToken(String),
}

/// On what grounds an agent was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Certificate(String),
    Token,
    Open,
}

/// The master's admission policy and, when it holds the CA key, its
/// signer of agent certificates.
pub struct Admission {
    mode: Mode,
    signer: Option<Ca>,
    validity: Duration,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("mode", &self.mode)
            .field("signs", &self.signer.is_some())
            .finish()
    }
}

impl Admission {
    /// Anyone is admitted, no certificates are issued (plaintext clusters,
    /// tests).
    pub fn open() -> Admission {
        Admission {
            mode: Mode::Open,
            signer: None,
            validity: AGENT_CERT_VALIDITY,
        }
    }

    pub fn new(mode: Mode, signer: Option<Ca>) -> Admission {
        Admission {
            mode,
            signer,
            validity: AGENT_CERT_VALIDITY,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a registration from `peer` (its TLS certificate), claiming
    /// `claimed` and carrying `join_token`, may go on.
    pub fn check(
        &self,
        peer: Option<&PeerIdentity>,
        claimed: Option<&str>,
        join_token: &str,
    ) -> Result<Check, AdmissionError> {
        if let Some(peer) = peer {
            if peer.role != Role::Agent {
                return Err(AdmissionError::WrongRole(peer.role));
            }
            if let Some(claimed) = claimed
                && claimed != peer.name
            {
                return Err(AdmissionError::WrongAgent {
                    cert: peer.name.clone(),
                    claimed: claimed.to_string(),
                });
            }
            return Ok(Check::Admitted(Admitted::Certificate(peer.name.clone())));
        }
        match self.mode {
            Mode::Open => Ok(Check::Admitted(Admitted::Open)),
            Mode::Token if join_token.is_empty() => Err(AdmissionError::NoToken),
            Mode::Token => Ok(Check::ConsumeToken(join_token.to_string())),
        }
    }

    /// A certificate for agent `agent_id` from its request; empty when
    /// there is no request, no signer, or the request is bad (said in the
    /// log: the agent asks again at its next registration).
    pub fn certify(&self, agent_id: &str, csr_pem: &str) -> String {
        let Some(ca) = &self.signer else {
            return String::new();
        };
        if csr_pem.is_empty() {
            return String::new();
        }
        match ca.sign_request(csr_pem, Role::Agent, agent_id, self.validity) {
            Ok(cert) => {
                tracing::info!(%agent_id, "agent certificate issued");
                cert
            }
            Err(e) => {
                tracing::warn!(%agent_id, error = %e, "agent certificate request refused");
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Role, name: &str) -> PeerIdentity {
        PeerIdentity {
            role,
            name: name.into(),
        }
    }

    #[test]
    fn certificates_admit_their_own_agent_only() {
        let a = Admission::new(Mode::Token, None);
        let agent = peer(Role::Agent, "a-1");
        assert_eq!(
            a.check(Some(&agent), Some("a-1"), ""),
            Ok(Check::Admitted(Admitted::Certificate("a-1".into())))
        );
        assert_eq!(
            a.check(Some(&agent), None, ""),
            Ok(Check::Admitted(Admitted::Certificate("a-1".into())))
        );
        assert!(matches!(
            a.check(Some(&agent), Some("a-2"), ""),
            Err(AdmissionError::WrongAgent { .. })
        ));
        for role in [Role::Master, Role::Admin, Role::Operator, Role::Reader] {
            assert_eq!(
                a.check(Some(&peer(role, "x")), None, "keel1.t"),
                Err(AdmissionError::WrongRole(role))
            );
        }
    }

    #[test]
    fn without_a_certificate_the_mode_decides() {
        let open = Admission::open();
        assert_eq!(
            open.check(None, None, ""),
            Ok(Check::Admitted(Admitted::Open))
        );
        let token = Admission::new(Mode::Token, None);
        assert_eq!(
            token.check(None, Some("a-1"), ""),
            Err(AdmissionError::NoToken)
        );
        assert_eq!(
            token.check(None, None, "keel1.abc.def"),
            Ok(Check::ConsumeToken("keel1.abc.def".into()))
        );
        assert_eq!("token".parse(), Ok(Mode::Token));
        assert_eq!(
            "tpm".parse::<Mode>(),
            Err(AdmissionError::Unsupported("tpm"))
        );
        assert!(matches!(
            "nope".parse::<Mode>(),
            Err(AdmissionError::UnknownMode(_))
        ));
    }

    #[test]
    fn requests_are_signed_for_the_agent_id() {
        let ca = Ca::create("c").unwrap();
        let a = Admission::new(
            Mode::Token,
            Some(Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap()),
        );
        let key = keel_pki::new_key().unwrap();
        let csr = keel_pki::request(&key).unwrap();
        let cert = a.certify("agent-9", &csr);
        let m = keel_pki::Material::from_pem(ca.cert_pem(), Some((&cert, &key))).unwrap();
        assert_eq!(m.identity().unwrap().unwrap().name, "agent-9");
        assert_eq!(a.certify("agent-9", "junk"), "");
        assert_eq!(a.certify("agent-9", ""), "");
        assert_eq!(Admission::open().certify("agent-9", &csr), "");
    }
}
