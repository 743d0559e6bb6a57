//! The agent's side of trust (`docs/design/0006-trust.md`): TLS to the
//! masters checked against the cluster CA, and the agent's own identity.
//!
//! An agent without a certificate presents its join token (or nothing,
//! where admission is open) and a request for a key it made itself; the
//! master answers with a certificate naming the agent id, kept in
//! `<work_dir>/tls/` and presented from then on (the key never leaves the
//! machine). A certificate given with `--tls-cert` is used as it is.
//! Past half its life, the certificate is renewed at the next
//! registration.
//!
//! An agent with a TPM (`--tpm`) and neither a certificate nor a join
//! token is admitted by its TPM instead ([`tpm`]): its registration
//! carries the TPM's evidence and it answers the master's challenge; so
//! do its renewals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_pki::Material;

mod esapi;
#[cfg(test)]
pub(crate) mod fake;
pub mod port;
pub mod tpm;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
pub use tpm::{Attestor, EsapiAttestor};

const CERT: &str = "agent.crt";
const KEY: &str = "agent.key";
/// The key a request is pending for (until the certificate arrives).
const PENDING_KEY: &str = "pending.key";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("TLS material: {0}")]
    Tls(#[from] keel_pki::TlsError),
    #[error("agent key or request: {0}")]
    Ca(#[from] keel_pki::CaError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the master's certificate for this agent is unusable: {0}")]
    BadCertificate(String),
    #[error("the cluster CA: {0}")]
    Pin(#[from] keel_pki::pinned::PinError),
}

/// Where the CA fetched by its fingerprint is kept.
pub fn pinned_ca_path(work_dir: &Path) -> PathBuf {
    work_dir.join("tls").join("ca.crt")
}

/// The cluster CA whose fingerprint is `pinned` (`--tls-ca-fingerprint`,
/// `keel.ca=`): the copy kept in the work dir if it matches, else fetched
/// from the masters (`GET /api/keel/v1/ca`, see `keel_pki::pinned`) and
/// kept. Tries the masters in turn until one answers with the right
/// certificate; a wrong one is said and not kept.
pub async fn pinned_ca(
    masters: &[String],
    pinned: &str,
    work_dir: &Path,
) -> Result<PathBuf, TrustError> {
    keel_pki::pinned::parse_fingerprint(pinned)?;
    let path = pinned_ca_path(work_dir);
    if let Ok(pem) = std::fs::read_to_string(&path)
        && keel_pki::pinned::check_pinned(&pem, pinned).is_ok()
    {
        return Ok(path);
    }
    let config =
        keel_pki::pinned::fetch_config().map_err(|e| TrustError::BadCertificate(e.to_string()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&config))
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        for master in masters {
            let url = format!("https://{master}/api/keel/v1/ca");
            let fetched = async {
                http.get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await
            };
            match fetched.await {
                Ok(pem) => match keel_pki::pinned::check_pinned(&pem, pinned) {
                    Ok(pem) => {
                        write(&path, &pem)?;
                        tracing::info!(%master, fingerprint = %pinned, "cluster CA fetched and pinned");
                        return Ok(path);
                    }
                    Err(e) => tracing::warn!(%master, error = %e, "refusing the master's CA"),
                },
                Err(e) => tracing::warn!(%master, error = %e, "cannot fetch the cluster CA"),
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(30));
    }
}

/// What the agent trusts and who it is.
#[derive(Debug, Clone)]
pub struct Trust {
    ca_pem: String,
    /// `--tls-cert` and `--tls-key`: used as they are, never renewed.
    fixed: Option<(PathBuf, PathBuf)>,
    /// `<work_dir>/tls`: the certificate the masters issued.
    dir: PathBuf,
    join_token: Option<String>,
    /// The TPM, when admission may use it.
    attestor: Option<Arc<dyn Attestor>>,
}

/// What a registration carries to be admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionRequest {
    pub join_token: String,
    pub csr_pem: String,
    /// Whether to send the TPM's evidence (no certificate, no join token,
    /// a TPM).
    pub tpm: bool,
}

impl Trust {
    pub fn new(
        ca: &Path,
        fixed: Option<(PathBuf, PathBuf)>,
        work_dir: &Path,
        join_token: Option<String>,
    ) -> Result<Trust, TrustError> {
        let ca_pem = std::fs::read_to_string(ca).map_err(|source| TrustError::Io {
            path: ca.to_path_buf(),
            source,
        })?;
        // Refuse a CA file that is no CA before anything else.
        Material::from_pem(&ca_pem, None)?;
        Ok(Trust {
            ca_pem,
            fixed,
            dir: work_dir.join("tls"),
            join_token: join_token.filter(|t| !t.is_empty()),
            attestor: None,
        })
    }

    /// Admission by TPM with `attestor` (`--tpm`).
    pub fn with_attestor(mut self, attestor: Arc<dyn Attestor>) -> Trust {
        self.attestor = Some(attestor);
        self
    }

    /// The TPM, when admission may use it.
    pub fn attestor(&self) -> Option<Arc<dyn Attestor>> {
        self.attestor.clone()
    }

    /// `<work_dir>/tls`: the agent's certificate, key and attestation key.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TLS material now: the CA, and the certificate this agent holds
    /// (given, or issued by the masters), if any.
    pub fn material(&self) -> Result<Material, TrustError> {
        if let Some((cert, key)) = &self.fixed {
            let cert = read(cert)?;
            let key = read(key)?;
            return Ok(Material::from_pem(&self.ca_pem, Some((&cert, &key)))?);
        }
        match self.issued()? {
            Some((cert, key)) => Ok(Material::from_pem(&self.ca_pem, Some((&cert, &key)))?),
            None => Ok(Material::from_pem(&self.ca_pem, None)?),
        }
    }

    /// The client configuration for a session (HTTP/2).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TrustError> {
        Ok(self.material()?.client_config(&[b"h2"])?)
    }

    /// What the next registration carries: the join token while the agent
    /// has no certificate, and a request when it needs one (none yet, or
    /// past half its life).
    pub fn admission_request(&self, now_unix: i64) -> Result<AdmissionRequest, TrustError> {
        if self.fixed.is_some() {
            return Ok(AdmissionRequest::default());
        }
        let issued = self.issued()?;
        let renew = match &issued {
            None => true,
            Some((cert, _)) => past_half_life(cert, now_unix),
        };
        if !renew {
            return Ok(AdmissionRequest::default());
        }
        let key = self.pending_key()?;
        let first = issued.is_none();
        Ok(AdmissionRequest {
            join_token: match first {
                true => self.join_token.clone().unwrap_or_default(),
                false => String::new(),
            },
            csr_pem: keel_pki::request(&key)?,
            // A renewal shows the TPM too: a master admitting by TPM
            // issues certificates on attestations only.
            tpm: self.join_token.is_none() && self.attestor.is_some(),
        })
    }

    /// Keeps the certificate the master issued for the pending key.
    pub fn store(&self, cert_pem: &str) -> Result<(), TrustError> {
        let key = read(&self.dir.join(PENDING_KEY))?;
        // It must work with the key and the CA before it replaces anything.
        let material = Material::from_pem(&self.ca_pem, Some((cert_pem, &key)))
            .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        material
            .client_config(&[])
            .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        write(&self.dir.join(CERT), cert_pem)?;
        let (from, to) = (self.dir.join(PENDING_KEY), self.dir.join(KEY));
        std::fs::rename(&from, &to).map_err(|source| TrustError::Io { path: to, source })?;
        Ok(())
    }

    fn issued(&self) -> Result<Option<(String, String)>, TrustError> {
        let (cert, key) = (self.dir.join(CERT), self.dir.join(KEY));
        if !cert.exists() || !key.exists() {
            return Ok(None);
        }
        Ok(Some((read(&cert)?, read(&key)?)))
    }

    /// The key a request is made for: kept until its certificate comes, so
    /// that every attempt asks for the same key.
    fn pending_key(&self) -> Result<String, TrustError> {
        let path = self.dir.join(PENDING_KEY);
        if path.exists() {
            return read(&path);
        }
        let key = keel_pki::new_key()?;
        write(&path, &key)?;
        Ok(key)
    }
}

/// When the certificate the masters issued is half through its life,
/// from `now` (unix seconds): the session ends then, so that the
/// re-registration asks for a new one before it expires (a session may
/// outlive a certificate: TLS checks it only at the handshake). `None`:
/// no issued certificate, a fixed one, or past that point already (the
/// registration just asked).
pub fn renewal_in(trust: &Trust, now: i64) -> Option<std::time::Duration> {
    if trust.fixed.is_some() {
        return None;
    }
    let (cert, _) = trust.issued().ok()??;
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).ok()?;
    let (from, until) = keel_pki::validity(&der).ok()?;
    let half = from + (until - from) / 2;
    (half > now).then(|| std::time::Duration::from_secs((half - now) as u64))
}

fn past_half_life(cert_pem: &str, now: i64) -> bool {
    let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return true;
    };
    match keel_pki::validity(&der) {
        Ok((from, until)) => now >= from + (until - from) / 2,
        Err(_) => true,
    }
}

fn read(path: &Path) -> Result<String, TrustError> {
    std::fs::read_to_string(path).map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` owner-only (keys), durably, through a rename;
/// the directory is made if missing. The one writer of `<work-dir>/tls/`.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write(path: &Path, text: &str) -> Result<(), TrustError> {
    write_private(path, text.as_bytes()).map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keel_pki::{Ca, Role};

    use super::*;

    #[test]
    fn a_new_agent_asks_once_then_presents_its_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::create("c").unwrap();
        let ca_file = tmp.path().join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let trust = Trust::new(&ca_file, None, tmp.path(), Some("keel1.x.y".into())).unwrap();
        assert!(trust.material().unwrap().identity().unwrap().is_none());

        let now = 1_000_000_000;
        let first = trust.admission_request(now).unwrap();
        assert_eq!(first.join_token, "keel1.x.y");
        // A retry asks for the same key.
        let pending = std::fs::read(tmp.path().join("tls").join(PENDING_KEY)).unwrap();
        trust.admission_request(now).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("tls").join(PENDING_KEY)).unwrap(),
            pending
        );

        let cert = ca
            .sign_request(
                &first.csr_pem,
                Role::Agent,
                "agent-1",
                Duration::from_secs(3600),
            )
            .unwrap();
        // Garbage is refused and changes nothing.
        assert!(trust.store("junk").is_err());
        trust.store(&cert).unwrap();
        let id = trust.material().unwrap().identity().unwrap().unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Agent, "agent-1"));
        // Admitted: no token, no request until half its life is over.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(
            trust.admission_request(now).unwrap(),
            AdmissionRequest::default()
        );
        let half = renewal_in(&trust, now).unwrap().as_secs() as i64;
        assert!((1600..=1800).contains(&half), "{half}");
        assert_eq!(renewal_in(&trust, now + 1900), None);
        let later = trust.admission_request(now + 3000).unwrap();
        assert!(later.join_token.is_empty() && !later.csr_pem.is_empty());
        assert!(!later.tpm, "a renewal is by certificate");
    }

    #[test]
    fn a_tpm_admits_an_agent_without_a_token_or_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::create("c").unwrap();
        let ca_file = tmp.path().join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let tpm: Arc<dyn Attestor> = Arc::new(fake::SoftAttestor::new());
        let trust = Trust::new(&ca_file, None, tmp.path(), None)
            .unwrap()
            .with_attestor(tpm.clone());
        let first = trust.admission_request(0).unwrap();
        assert!(first.tpm && first.join_token.is_empty() && !first.csr_pem.is_empty());
        // A join token is the operator's choice: it goes first.
        let with_token = Trust::new(&ca_file, None, tmp.path(), Some("keel1.x.y".into()))
            .unwrap()
            .with_attestor(tpm);
        assert!(!with_token.admission_request(0).unwrap().tpm);
        // No TPM, no evidence.
        let without = Trust::new(&ca_file, None, tmp.path(), None).unwrap();
        assert!(!without.admission_request(0).unwrap().tpm);
        // Admitted, then renewing past half the certificate's life: the
        // TPM again.
        let cert = ca
            .sign_request(
                &first.csr_pem,
                Role::Agent,
                "agent-1",
                Duration::from_secs(3600),
            )
            .unwrap();
        trust.store(&cert).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(
            trust.admission_request(now).unwrap(),
            AdmissionRequest::default()
        );
        assert!(trust.admission_request(now + 3000).unwrap().tpm);
    }
}
