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
//!   consumes through the registry ([`Check::ConsumeToken`]), `tpm` wants
//!   the agent's TPM attested within its session ([`Check::Attest`],
//!   `crate::attestation`) and then its endorsement key allowed
//!   ([`judge_ek`]): on the `--tpm-ek-allow` list, approved by an
//!   operator, or certified by a `--tpm-ek-ca`; otherwise it is pending.
//!
//! An admitted agent that sends a certificate request gets a certificate
//! naming its agent id, signed with the cluster CA's key when this master
//! holds it (`--tls-ca-key`); it presents that from then on.

use std::str::FromStr;
use std::time::Duration;

use keel_attest::{EkCertificate, PolicyError};
use keel_pki::{Ca, PeerIdentity, Role};

use crate::registry::EkState;

/// How long an issued agent certificate is valid; agents renew it past
/// half its life.
pub const AGENT_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// An agent certificate issued on a TPM attestation: short-lived, and
/// renewed past half its life on a fresh attestation, so that the EK
/// policy (a denial, an EK taken off the allow-list) applies within days.
pub const TPM_CERT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// `--agent-admission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Token,
    Tpm,
}

impl FromStr for Mode {
    type Err = AdmissionError;

    fn from_str(s: &str) -> Result<Mode, AdmissionError> {
        match s {
            "open" => Ok(Mode::Open),
            "token" => Ok(Mode::Token),
            "tpm" => Ok(Mode::Tpm),
            other => Err(AdmissionError::UnknownMode(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("unknown admission mode {0:?} (open, token, tpm)")]
    UnknownMode(String),
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
    #[error(
        "this cluster admits agents by TPM: the agent sent no TPM evidence (does it have a \
         TPM? see the agent's --tpm)"
    )]
    NoTpm,
    #[error("TPM attestation failed: {0}")]
    Attestation(String),
    #[error(
        "pending: the TPM is attested but its endorsement key {0} is not allowed; an operator \
         may run `keelctl agents approve {1}`"
    )]
    Pending(String, String),
    #[error("the endorsement key {0} was denied by an operator")]
    Denied(String),
    #[error("agent {0} was marked gone by an operator: it may not register again")]
    Gone(String),
    #[error(
        "the certificate names the endorsement key {0}, which an operator denied: the \
         certificate is revoked"
    )]
    EkRevoked(String),
}

/// What admitting a registration takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Admitted now.
    Admitted(Admitted),
    /// Admitted once this join token is consumed in the registry.
    ConsumeToken(String),
    /// Admitted once its TPM is attested and its EK allowed.
    Attest,
}

/// On what grounds an agent was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Certificate(String),
    Token,
    Open,
    /// The EK with this fingerprint, on these grounds.
    Tpm(String, EkGrounds),
}

/// Why an attested agent's endorsement key is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EkGrounds {
    /// `--tpm-ek-allow`.
    AllowList,
    /// `keelctl agents approve`.
    Approved,
    /// Its certificate chains to a `--tpm-ek-ca`.
    Certificate(EkCertificate),
}

/// What an attested agent's endorsement key gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EkVerdict {
    Allowed(EkGrounds),
    Pending,
    Denied,
}

/// Judges the EK of an attested agent: an operator's denial first, then
/// the allow-list, an operator's approval, the EK certificate (when the
/// agent sent one and `--tpm-ek-ca` is set); otherwise pending.
pub fn judge_ek(
    listed: bool,
    recorded: Option<EkState>,
    certificate: Option<Result<EkCertificate, PolicyError>>,
) -> EkVerdict {
    if recorded == Some(EkState::Denied) {
        return EkVerdict::Denied;
    }
    if listed {
        return EkVerdict::Allowed(EkGrounds::AllowList);
    }
    if recorded == Some(EkState::Approved) {
        return EkVerdict::Allowed(EkGrounds::Approved);
    }
    match certificate {
        Some(Ok(cert)) => EkVerdict::Allowed(EkGrounds::Certificate(cert)),
        Some(Err(e)) => {
            tracing::info!(error = %e, "EK certificate not accepted");
            EkVerdict::Pending
        }
        None => EkVerdict::Pending,
    }
}

/// The prefix of the URI an agent certificate names its endorsement key by.
const EK_URI_PREFIX: &str = "keel:ek:sha256:";

/// The URI an agent certificate names its endorsement key by.
pub fn ek_uri(fingerprint: &str) -> String {
    format!("{EK_URI_PREFIX}{fingerprint}")
}

/// The fingerprint of the endorsement key an agent certificate names.
pub fn ek_of(peer: &PeerIdentity) -> Option<&str> {
    peer.uris.iter().find_map(|u| u.strip_prefix(EK_URI_PREFIX))
}

/// Revocation, checked before anything else admits a registration: an
/// agent an operator marked gone may not register again, under the id it
/// claims or the one its certificate names, whatever it presents; a
/// certificate naming an endorsement key an operator denied is revoked
/// (without waiting for the renewal that would show the TPM again).
pub fn revoked(
    peer: Option<&PeerIdentity>,
    claimed: Option<&str>,
    gone: impl Fn(&str) -> bool,
    ek_denied: impl Fn(&str) -> bool,
) -> Result<(), AdmissionError> {
    let agent_peer = peer.filter(|p| p.role == Role::Agent);
    let named = agent_peer.map(|p| p.name.as_str());
    for id in claimed.into_iter().chain(named) {
        if gone(id) {
            return Err(AdmissionError::Gone(id.to_string()));
        }
    }
    if let Some(ek) = agent_peer.and_then(ek_of)
        && ek_denied(ek)
    {
        let short = ek.get(..crate::registry::eks::SHORT_ID).unwrap_or(ek);
        return Err(AdmissionError::EkRevoked(short.to_string()));
    }
    Ok(())
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
    /// `claimed` and carrying `join_token` (and TPM evidence, `tpm`), may
    /// go on.
    pub fn check(
        &self,
        peer: Option<&PeerIdentity>,
        claimed: Option<&str>,
        join_token: &str,
        tpm: bool,
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
            // In TPM mode, an agent that renews its certificate shows its
            // TPM again: the EK policy applies at every renewal.
            if self.mode == Mode::Tpm && tpm {
                return Ok(Check::Attest);
            }
            return Ok(Check::Admitted(Admitted::Certificate(peer.name.clone())));
        }
        match self.mode {
            Mode::Open => Ok(Check::Admitted(Admitted::Open)),
            Mode::Token if join_token.is_empty() => Err(AdmissionError::NoToken),
            Mode::Token => Ok(Check::ConsumeToken(join_token.to_string())),
            Mode::Tpm if !tpm => Err(AdmissionError::NoTpm),
            Mode::Tpm => Ok(Check::Attest),
        }
    }

    /// A certificate for agent `agent_id` from its request; empty when
    /// there is no request, no signer, or the request is bad (said in the
    /// log: the agent asks again at its next registration).
    pub fn certify(&self, agent_id: &str, csr_pem: &str) -> String {
        self.certify_with_ek(agent_id, csr_pem, None)
    }

    /// [`Admission::certify`]; an agent admitted by its TPM gets a
    /// certificate naming its EK too ([`ek_uri`]), valid for
    /// [`TPM_CERT_VALIDITY`].
    pub fn certify_with_ek(&self, agent_id: &str, csr_pem: &str, ek: Option<&str>) -> String {
        let Some(ca) = &self.signer else {
            return String::new();
        };
        if csr_pem.is_empty() {
            return String::new();
        }
        if self.mode == Mode::Tpm && ek.is_none() {
            tracing::info!(%agent_id, "no certificate without a TPM attestation (--agent-admission tpm)");
            return String::new();
        }
        let uris: Vec<String> = ek.map(ek_uri).into_iter().collect();
        let validity = match ek {
            Some(_) => TPM_CERT_VALIDITY,
            None => self.validity,
        };
        match ca.sign_request_with_uris(csr_pem, Role::Agent, agent_id, validity, &uris) {
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
    use rustls::pki_types::pem::PemObject;

    use super::*;

    fn peer(role: Role, name: &str) -> PeerIdentity {
        PeerIdentity {
            role,
            name: name.into(),
            uris: Vec::new(),
        }
    }

    #[test]
    fn gone_agents_and_denied_keys_are_revoked() {
        let ek = "ab".repeat(32);
        let cert = PeerIdentity {
            uris: vec!["https://x".into(), ek_uri(&ek)],
            ..peer(Role::Agent, "m-S1")
        };
        assert_eq!(ek_of(&cert), Some(ek.as_str()));
        let gone = |id: &str| id == "m-S1";
        let nothing = |_: &str| false;
        // Whatever the credential: a certificate, or a claimed id alone.
        assert_eq!(
            revoked(Some(&cert), None, gone, nothing),
            Err(AdmissionError::Gone("m-S1".into()))
        );
        assert_eq!(
            revoked(None, Some("m-S1"), gone, nothing),
            Err(AdmissionError::Gone("m-S1".into()))
        );
        assert_eq!(revoked(None, Some("m-S2"), gone, nothing), Ok(()));
        assert_eq!(revoked(None, None, gone, nothing), Ok(()));
        // A certificate naming a denied key.
        let denied = |k: &str| k == ek;
        let refused = revoked(Some(&cert), Some("m-S1"), nothing, denied).unwrap_err();
        assert_eq!(refused, AdmissionError::EkRevoked("ab".repeat(8)));
        assert!(refused.to_string().contains("revoked"), "{refused}");
        assert_eq!(
            revoked(Some(&peer(Role::Agent, "m-S1")), None, nothing, denied),
            Ok(())
        );
        // Another role's certificate names no agent.
        assert_eq!(
            revoked(Some(&peer(Role::Admin, "m-S1")), None, gone, nothing),
            Ok(())
        );
    }

    #[test]
    fn certificates_admit_their_own_agent_only() {
        let a = Admission::new(Mode::Token, None);
        let agent = peer(Role::Agent, "a-1");
        assert_eq!(
            a.check(Some(&agent), Some("a-1"), "", false),
            Ok(Check::Admitted(Admitted::Certificate("a-1".into())))
        );
        assert_eq!(
            a.check(Some(&agent), None, "", false),
            Ok(Check::Admitted(Admitted::Certificate("a-1".into())))
        );
        assert!(matches!(
            a.check(Some(&agent), Some("a-2"), "", false),
            Err(AdmissionError::WrongAgent { .. })
        ));
        for role in [Role::Master, Role::Admin, Role::Operator, Role::Reader] {
            assert_eq!(
                a.check(Some(&peer(role, "x")), None, "keel1.t", false),
                Err(AdmissionError::WrongRole(role))
            );
        }
    }

    #[test]
    fn without_a_certificate_the_mode_decides() {
        let open = Admission::open();
        assert_eq!(
            open.check(None, None, "", false),
            Ok(Check::Admitted(Admitted::Open))
        );
        let token = Admission::new(Mode::Token, None);
        assert_eq!(
            token.check(None, Some("a-1"), "", false),
            Err(AdmissionError::NoToken)
        );
        assert_eq!(
            token.check(None, None, "keel1.abc.def", false),
            Ok(Check::ConsumeToken("keel1.abc.def".into()))
        );
        assert_eq!("token".parse(), Ok(Mode::Token));
        assert_eq!("tpm".parse(), Ok(Mode::Tpm));
        let tpm = Admission::new(Mode::Tpm, None);
        assert_eq!(
            tpm.check(None, None, "keel1.abc.def", false),
            Err(AdmissionError::NoTpm)
        );
        assert_eq!(tpm.check(None, None, "", true), Ok(Check::Attest));
        // A renewal shows the TPM again; without it, the certificate
        // admits (and no new one is issued).
        let agent = peer(Role::Agent, "a-1");
        assert_eq!(
            tpm.check(Some(&agent), Some("a-1"), "", true),
            Ok(Check::Attest)
        );
        assert_eq!(
            tpm.check(Some(&agent), Some("a-1"), "", false),
            Ok(Check::Admitted(Admitted::Certificate("a-1".into())))
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
        // TPM mode: only on an attestation.
        let tpm = Admission::new(
            Mode::Tpm,
            Some(Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap()),
        );
        assert_eq!(tpm.certify("agent-9", &csr), "");
        assert!(
            !tpm.certify_with_ek("agent-9", &csr, Some(&"ab".repeat(32)))
                .is_empty()
        );
        // With the EK: named as a URI, short-lived.
        let cert = a.certify_with_ek("agent-9", &csr, Some(&"ab".repeat(32)));
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let (from, until) = keel_pki::validity(&der).unwrap();
        // (Backdated a little for clocks behind the CA's.)
        let life = (until - from) as u64;
        assert!(
            life >= TPM_CERT_VALIDITY.as_secs() && life < TPM_CERT_VALIDITY.as_secs() + 3600,
            "{life}"
        );
        assert!(
            String::from_utf8_lossy(&der).contains(&ek_uri(&"ab".repeat(32))),
            "the URI is in the certificate"
        );
    }

    #[test]
    fn endorsement_keys_are_judged_in_order() {
        let cert = EkCertificate {
            subject: String::new(),
            issuer: "CN=maker".into(),
        };
        let certified = || Some(Ok(cert.clone()));
        assert_eq!(
            judge_ek(true, Some(EkState::Denied), certified()),
            EkVerdict::Denied
        );
        assert_eq!(
            judge_ek(true, None, None),
            EkVerdict::Allowed(EkGrounds::AllowList)
        );
        assert_eq!(
            judge_ek(false, Some(EkState::Approved), None),
            EkVerdict::Allowed(EkGrounds::Approved)
        );
        assert_eq!(
            judge_ek(false, Some(EkState::Pending), certified()),
            EkVerdict::Allowed(EkGrounds::Certificate(cert.clone()))
        );
        assert_eq!(
            judge_ek(false, Some(EkState::Pending), None),
            EkVerdict::Pending
        );
        assert_eq!(
            judge_ek(false, None, Some(Err(PolicyError::OtherKey))),
            EkVerdict::Pending
        );
    }
}
