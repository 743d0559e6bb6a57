//! TLS material (the CA, a certificate and its key) and the rustls
//! configurations built from it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::role::{IdentityError, PeerIdentity};

/// The most bytes of a PEM file read (a certificate chain or a key).
pub const MAX_PEM_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{what}: no PEM {kind} in it")]
    Pem { what: String, kind: &'static str },
    #[error("{what}: {source}")]
    Rustls { what: String, source: rustls::Error },
    #[error("the CA certificate: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("a server needs a certificate and its key")]
    NoIdentity,
    #[error("--tls-cert and --tls-key go together")]
    HalfIdentity,
    #[error("own certificate: {0}")]
    Identity(#[from] IdentityError),
}

/// The cluster CA, and this process's certificate and key if it has one.
#[derive(Debug, Clone)]
pub struct Material {
    roots: Arc<RootCertStore>,
    ca: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl Material {
    /// From files: the CA certificate(s), and optionally a certificate
    /// chain and its key.
    pub fn load(ca: &Path, cert_and_key: Option<(&Path, &Path)>) -> Result<Material, TlsError> {
        let identity = match cert_and_key {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        let named = |p: &Path| p.display().to_string();
        Material::parse(
            (&read(ca)?, &named(ca)),
            identity
                .as_ref()
                .zip(cert_and_key)
                .map(|((c, k), (cp, kp))| ((c.as_slice(), named(cp)), (k.as_slice(), named(kp)))),
        )
    }

    /// From PEM text.
    pub fn from_pem(ca: &str, cert_and_key: Option<(&str, &str)>) -> Result<Material, TlsError> {
        Material::parse(
            (ca.as_bytes(), "the CA"),
            cert_and_key.map(|(c, k)| {
                (
                    (c.as_bytes(), "the certificate".to_string()),
                    (k.as_bytes(), "the key".to_string()),
                )
            }),
        )
    }

    #[allow(clippy::type_complexity)]
    fn parse(
        ca: (&[u8], &str),
        identity: Option<((&[u8], String), (&[u8], String))>,
    ) -> Result<Material, TlsError> {
        let ca_certs = certs(ca.0, ca.1)?;
        let mut roots = RootCertStore::empty();
        for cert in &ca_certs {
            roots.add(cert.clone()).map_err(|source| TlsError::Rustls {
                what: ca.1.to_string(),
                source,
            })?;
        }
        let identity = match identity {
            Some(((cert, cert_name), (key, key_name))) => {
                let chain = certs(cert, &cert_name)?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::Pem {
                    what: key_name,
                    kind: "private key",
                })?;
                Some((chain, Arc::new(key)))
            }
            None => None,
        };
        Ok(Material {
            roots: Arc::new(roots),
            ca: ca_certs,
            identity,
        })
    }

    /// The CA certificates (DER).
    pub fn ca(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    pub(crate) fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// This process's certificate chain and key, if it has them.
    pub(crate) fn own(&self) -> Option<(&[CertificateDer<'static>], &PrivateKeyDer<'static>)> {
        self.identity
            .as_ref()
            .map(|(chain, key)| (chain.as_slice(), key.as_ref()))
    }

    /// Who this process is, by its own certificate.
    pub fn identity(&self) -> Result<Option<PeerIdentity>, TlsError> {
        match &self.identity {
            Some((chain, _)) => match chain.first() {
                Some(leaf) => Ok(Some(PeerIdentity::of(leaf)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// A server's configuration: its certificate, HTTP/2 and HTTP/1.1 by
    /// ALPN, client certificates asked for and checked against the CA but
    /// not required (frameworks may authenticate by password or token;
    /// what needs a certificate checks the identity per request).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.identity.as_ref().ok_or(TlsError::NoIdentity)?;
        let provider = crate::provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| rustls_error("TLS versions", source))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|source| rustls_error("the certificate and key", source))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client's configuration: the server checked against the CA, this
    /// process's certificate presented when it has one; `alpn` as asked
    /// (`h2` for gRPC).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| rustls_error("TLS versions", source))?
            .with_root_certificates(self.roots.clone());
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|source| rustls_error("the certificate and key", source))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn rustls_error(what: &str, source: rustls::Error) -> TlsError {
    TlsError::Rustls {
        what: what.to_string(),
        source,
    }
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem {
            what: what.to_string(),
            kind: "certificate",
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_string(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let err = |source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.display().to_string(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Ca, Role};

    #[test]
    fn configurations_build_from_issued_material() {
        let ca = Ca::create("c").unwrap();
        let m = ca
            .issue(
                Role::Master,
                "m1",
                &["127.0.0.1".into()],
                Duration::from_secs(60),
            )
            .unwrap();
        let material = Material::from_pem(ca.cert_pem(), Some((&m.cert_pem, &m.key_pem))).unwrap();
        assert_eq!(material.identity().unwrap().unwrap().role, Role::Master);
        material.server_config().unwrap();
        material.client_config(&[b"h2"]).unwrap();
        // A client without a certificate of its own.
        let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
        assert!(anon.identity().unwrap().is_none());
        assert!(matches!(anon.server_config(), Err(TlsError::NoIdentity)));
        anon.client_config(&[]).unwrap();
    }

    #[test]
    fn garbage_material_is_a_clear_error() {
        let err = Material::from_pem("not pem", None).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let ca = Ca::create("c").unwrap();
        let err = Material::from_pem(ca.cert_pem(), Some((ca.cert_pem(), "junk"))).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; (MAX_PEM_BYTES + 10) as usize]).unwrap();
        assert!(matches!(
            Material::load(&big, None),
            Err(TlsError::TooLarge { .. })
        ));
        let missing = dir.path().join("missing.pem");
        let err = Material::load(&missing, None).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
