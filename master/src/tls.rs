//! The master's TLS and agent admission, from its flags
//! (`docs/design/0006-trust.md`): the listener's configuration, the one
//! that reaches the other masters, and the [`Admission`] policy with the
//! CA key that signs admitted agents' certificates.

use std::path::PathBuf;
use std::sync::Arc;

use keel_pki::{Ca, Role, TlsFlags};

use crate::admission::{Admission, AdmissionError, Mode};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityFlags {
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The cluster CA's key (PEM): this master then issues certificates to
    /// the agents it admits.
    #[arg(long, env = "KEEL_TLS_CA_KEY", requires = "tls_ca")]
    pub tls_ca_key: Option<PathBuf>,
    /// Who may register as an agent without an agent certificate: `token`
    /// (a join token from `keelctl tokens create`; the default with TLS)
    /// or `open` (anyone; the only choice without TLS).
    #[arg(long, env = "KEEL_AGENT_ADMISSION")]
    pub agent_admission: Option<String>,
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
        "--agent-admission token needs --tls-ca-key: admitted agents get a certificate from \
         the masters, or their token would be spent again at every reconnection"
    )]
    NeedsCaKey,
}

/// What the flags set up.
pub struct Security {
    /// The listener's TLS; `None`: plaintext.
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// TLS to the other masters.
    pub raft_client: Option<Arc<rustls::ClientConfig>>,
    pub admission: Arc<Admission>,
    /// The cluster CA (PEM), served unauthenticated at `/api/keel/v1/ca`
    /// for nodes that pin its fingerprint.
    pub ca_pem: Option<String>,
}

impl SecurityFlags {
    pub fn setup(&self) -> Result<Security, SecurityError> {
        let asked = self
            .agent_admission
            .as_deref()
            .map(str::parse::<Mode>)
            .transpose()?;
        let Some(material) = self.tls.material()? else {
            if asked == Some(Mode::Token) {
                return Err(SecurityError::NeedsTls("token"));
            }
            tracing::warn!(
                "no --tls-ca: serving PLAINTEXT, and any process that reaches the port may \
                 speak Raft, register as an agent and call every API; for development only"
            );
            return Ok(Security {
                server: None,
                raft_client: None,
                admission: Arc::new(Admission::open()),
                ca_pem: None,
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
        match mode {
            Mode::Token if signer.is_none() => return Err(SecurityError::NeedsCaKey),
            Mode::Open => tracing::warn!(
                "--agent-admission open: ANY machine that reaches this port may register as \
                 an agent and receive tasks; use token admission outside a lab"
            ),
            Mode::Token => tracing::info!("agents are admitted by join token or certificate"),
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
            ca_pem,
            server: Some(material.server_config()?),
            raft_client: Some(material.client_config(&[b"h2"])?),
            admission: Arc::new(Admission::new(mode, signer)),
        })
    }
}
