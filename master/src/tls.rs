//! The master's TLS and agent admission, from its flags
//! (`docs/design/0006-trust.md`): the listener's configuration, the one
//! that reaches the other masters, and the [`Admission`] policy with the
//! CA key that signs admitted agents' certificates.

use std::path::PathBuf;
use std::sync::Arc;

use keel_pki::{Ca, Role, TlsFlags};

use crate::admission::{Admission, AdmissionError, Mode};
use crate::attestation::{AttestationError, EkPolicy};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityFlags {
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The cluster CA's key (PEM): this master then issues certificates to
    /// the agents it admits.
    #[arg(long, env = "KEEL_TLS_CA_KEY", requires = "tls_ca")]
    pub tls_ca_key: Option<PathBuf>,
    /// Who may register as an agent without an agent certificate: `token`
    /// (a join token from `keelctl tokens create`; the default with TLS),
    /// `tpm` (the agent's TPM, attested within its session, with an
    /// endorsement key on --tpm-ek-allow, approved by an operator, or
    /// certified by a --tpm-ek-ca) or `open` (anyone; the only choice
    /// without TLS).
    #[arg(long, env = "KEEL_AGENT_ADMISSION")]
    pub agent_admission: Option<String>,
    /// TPM admission: a file of allowed endorsement keys, one
    /// `sha256:<hex>` a line (the SHA-256 of the EK's public key as DER
    /// SubjectPublicKeyInfo, `inventory.tpm.ek.sha256` of `keel-agent
    /// discover`); read again at every attestation.
    #[arg(long, env = "KEEL_TPM_EK_ALLOW")]
    pub tpm_ek_allow: Option<PathBuf>,
    /// TPM admission: a directory of TPM manufacturers' CA certificates
    /// (PEM or DER); an EK certificate one of them issued admits its TPM.
    #[arg(long, env = "KEEL_TPM_EK_CA")]
    pub tpm_ek_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Tls(#[from] keel_pki::TlsError),
    #[error("--tls-ca-key: {0}")]
    CaKey(#[from] keel_pki::CaError),
    #[error("--tls-cert must be a master certificate (it names {0})")]
    NotMaster(String),
    #[error("--agent-admission: {0}")]
    Admission(#[from] AdmissionError),
    #[error("--agent-admission {0} needs TLS (--tls-ca, --tls-cert, --tls-key)")]
    NeedsTls(&'static str),
    #[error(
        "--agent-admission {0} needs --tls-ca-key: admitted agents get a certificate from \
         the masters, or they would be admitted again at every reconnection"
    )]
    NeedsCaKey(&'static str),
    #[error("--tpm-ek-allow and --tpm-ek-ca are for --agent-admission tpm")]
    TpmFlagsWithoutTpm,
    #[error(transparent)]
    EkPolicy(#[from] AttestationError),
    #[error("sandbox grants: {0}")]
    Grants(#[from] keel_pki::GrantError),
}

/// What the flags set up.
pub struct Security {
    /// The listener's TLS; `None`: plaintext.
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// TLS to the other masters.
    pub raft_client: Option<Arc<rustls::ClientConfig>>,
    pub admission: Arc<Admission>,
    /// What TPM admission takes.
    pub ek_policy: Arc<EkPolicy>,
    /// The cluster CA (PEM), served unauthenticated at `/api/keel/v1/ca`
    /// for nodes that pin its fingerprint.
    pub ca_pem: Option<String>,
    /// Signs sandbox grants with this master's key.
    pub grants: Option<Arc<keel_pki::GrantSigner>>,
    /// The CA and this master's certificate, for agents' ports.
    pub agent_tls: Option<Arc<keel_pki::Material>>,
}

impl SecurityFlags {
    pub fn setup(&self) -> Result<Security, SecurityError> {
        let asked = self
            .agent_admission
            .as_deref()
            .map(str::parse::<Mode>)
            .transpose()?;
        let tpm_flags = self.tpm_ek_allow.is_some() || self.tpm_ek_ca.is_some();
        if tpm_flags && asked != Some(Mode::Tpm) {
            return Err(SecurityError::TpmFlagsWithoutTpm);
        }
        let Some(material) = self.tls.material()? else {
            match asked {
                Some(Mode::Token) => return Err(SecurityError::NeedsTls("token")),
                Some(Mode::Tpm) => return Err(SecurityError::NeedsTls("tpm")),
                _ => {}
            }
            tracing::warn!(
                "no --tls-ca: serving PLAINTEXT, and any process that reaches the port may \
                 speak Raft, register as an agent and call every API; for development only"
            );
            return Ok(Security {
                server: None,
                raft_client: None,
                admission: Arc::new(Admission::open()),
                ek_policy: Arc::new(EkPolicy::default()),
                ca_pem: None,
                grants: None,
                agent_tls: None,
            });
        };
        let role = material.identity()?.map(|id| id.role);
        if role != Some(Role::Master) {
            let named = role.map_or("no role".to_string(), |r| format!("the {r} role"));
            return Err(SecurityError::NotMaster(named));
        }
        let signer = match (&self.tls_ca_key, &self.tls.tls_ca) {
            (Some(key), Some(ca)) => Some(Ca::load(ca, key)?),
            _ => None,
        };
        let mode = asked.unwrap_or(Mode::Token);
        let ek_policy = match mode {
            Mode::Tpm => EkPolicy::new(self.tpm_ek_allow.clone(), self.tpm_ek_ca.clone())?,
            _ => EkPolicy::default(),
        };
        match mode {
            Mode::Token if signer.is_none() => return Err(SecurityError::NeedsCaKey("token")),
            Mode::Tpm if signer.is_none() => return Err(SecurityError::NeedsCaKey("tpm")),
            Mode::Open => tracing::warn!(
                "--agent-admission open: ANY machine that reaches this port may register as \
                 an agent and receive tasks; use token admission outside a lab"
            ),
            Mode::Token => tracing::info!("agents are admitted by join token or certificate"),
            Mode::Tpm => tracing::info!(
                "agents are admitted by TPM attestation (allowed endorsement keys) or certificate"
            ),
        }
        let ca_pem = match &self.tls.tls_ca {
            Some(ca) => Some(std::fs::read_to_string(ca).map_err(|source| {
                SecurityError::Tls(keel_pki::TlsError::Read {
                    path: ca.display().to_string(),
                    source,
                })
            })?),
            None => None,
        };
        Ok(Security {
            grants: Some(Arc::new(keel_pki::GrantSigner::new(&material)?)),
            agent_tls: Some(Arc::new(material.clone())),
            ca_pem,
            server: Some(material.server_config()?),
            raft_client: Some(material.client_config(&[b"h2"])?),
            admission: Arc::new(Admission::new(mode, signer)),
            ek_policy: Arc::new(ek_policy),
        })
    }
}
