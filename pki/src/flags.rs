//! The TLS flags every Keel process takes: `--tls-ca`, `--tls-cert`,
//! `--tls-key` (`#[command(flatten)]` them).

use std::path::PathBuf;

use crate::tls::{Material, TlsError};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// The cluster CA certificate (PEM): TLS on, peers checked against it.
    #[arg(long, env = "KEEL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), issued by the cluster CA.
    #[arg(long, env = "KEEL_TLS_CERT", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, env = "KEEL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsFlags {
    /// The material the flags name; `None` without `--tls-ca` (plaintext).
    pub fn material(&self) -> Result<Option<Material>, TlsError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(TlsError::HalfIdentity),
        };
        Material::load(ca, identity).map(Some)
    }
}
