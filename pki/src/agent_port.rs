//! TLS on an agent's own port (`docs/design/0006-trust.md`, "The agent's
//! port").
//!
//! The agent serves with the certificate the masters issued it, which
//! names its agent id and no address (an agent's address is what it says
//! it is, so a certificate cannot vouch for it). The certificate changes
//! when it is renewed: the server asks [`CurrentKey`] at each handshake.
//! A client checks the agent it asked for instead of a host name: the
//! certificate must chain to the cluster CA, be valid, have the agent role
//! and name that agent id ([`agent_client_config`]).

use std::sync::Arc;

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, Error, RootCertStore, ServerConfig};

use crate::verify::Verifier;
use crate::{Material, PeerIdentity, Role, TlsError};

/// The certificate to present now; `None` until the agent has one (the
/// handshake then fails).
pub trait CurrentKey: std::fmt::Debug + Send + Sync {
    fn current(&self) -> Option<Arc<CertifiedKey>>;
}

/// `material`'s own certificate and key, ready for a server.
pub fn certified_key(material: &Material) -> Result<Option<Arc<CertifiedKey>>, TlsError> {
    let Some((chain, key)) = material.own() else {
        return Ok(None);
    };
    let key = crate::provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| TlsError::Rustls {
            what: "the key".into(),
            source,
        })?;
    Ok(Some(Arc::new(CertifiedKey::new(chain.to_vec(), key))))
}

#[derive(Debug)]
struct Resolver(Arc<dyn CurrentKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current()
    }
}

/// The agent port's server configuration: the certificate from `key` at
/// each handshake, client certificates asked for and checked against the
/// CA of `material` but not required (a grant may authenticate instead).
pub fn server_config(
    material: &Material,
    key: Arc<dyn CurrentKey>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crate::provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(material.roots().clone(), provider.clone())
            .allow_unauthenticated()
            .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions".into(),
            source,
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Resolver(key)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts the certificate of agent `agent_id` from the CA in `roots`,
/// whatever address it was reached at.
fn agent_verifier(roots: Arc<RootCertStore>, agent_id: String) -> Verifier {
    let algs = crate::provider().signature_verification_algorithms;
    Verifier::new(Box::new(move |end_entity, intermediates, now| {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&parsed, &roots, intermediates, now, algs.all)?;
        let id = PeerIdentity::of(end_entity).map_err(|e| Error::General(e.to_string()))?;
        if id.role != Role::Agent || id.name != agent_id {
            return Err(Error::General(format!(
                "the certificate names {} {:?}, not agent {agent_id:?}",
                id.role, id.name
            )));
        }
        Ok(())
    }))
}

/// A client's configuration for the port of agent `agent_id`: the server
/// checked as that agent (see the module doc), this process's certificate
/// presented when it has one; HTTP/1.1.
pub fn agent_client_config(
    material: &Material,
    agent_id: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = agent_verifier(material.roots().clone(), agent_id.to_string());
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions".into(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match material.own() {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.to_vec(), key.clone_key())
            .map_err(|source| TlsError::Rustls {
                what: "the certificate and key".into(),
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::Ca;

    #[derive(Debug)]
    struct Fixed(Option<Arc<CertifiedKey>>);

    impl CurrentKey for Fixed {
        fn current(&self) -> Option<Arc<CertifiedKey>> {
            self.0.clone()
        }
    }

    fn material(ca: &Ca, role: Role, name: &str) -> Material {
        let issued = ca.issue(role, name, &[], Duration::from_secs(600)).unwrap();
        Material::from_pem(ca.cert_pem(), Some((&issued.cert_pem, &issued.key_pem))).unwrap()
    }

    /// Whether a client expecting `expected` completes a handshake with a
    /// server presenting `server`'s certificate.
    fn handshake(ca: &Ca, server: Option<&Material>, expected: &str) -> Result<(), String> {
        let key = match server {
            Some(m) => certified_key(m).unwrap(),
            None => None,
        };
        let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
        let server = server_config(&anon, Arc::new(Fixed(key))).unwrap();
        let client = agent_client_config(&anon, expected).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (a, b) = tokio::io::duplex(1 << 16);
            let accept = tokio::spawn(async move { TlsAcceptor::from(server).accept(b).await });
            let name = ServerName::try_from("10.0.0.9").unwrap();
            let connected = TlsConnector::from(client).connect(name, a).await;
            let _ = accept.await;
            connected.map(|_| ()).map_err(|e| e.to_string())
        })
    }

    #[test]
    fn clients_check_the_agent_they_asked_for_not_an_address() {
        let ca = Ca::create("c").unwrap();
        let agent = material(&ca, Role::Agent, "a-S0");
        handshake(&ca, Some(&agent), "a-S0").unwrap();
        let err = handshake(&ca, Some(&agent), "a-S1").unwrap_err();
        assert!(err.contains("not agent"), "{err}");
        // A master's certificate is no agent's.
        let master = material(&ca, Role::Master, "a-S0");
        assert!(handshake(&ca, Some(&master), "a-S0").is_err());
        // Another cluster's agent.
        let other = Ca::create("other").unwrap();
        assert!(handshake(&ca, Some(&material(&other, Role::Agent, "a-S0")), "a-S0").is_err());
        // No certificate yet: no handshake.
        assert!(handshake(&ca, None, "a-S0").is_err());
    }
}
