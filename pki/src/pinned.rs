//! Fetching the cluster CA before the node trusts anything: the appliance
//! knows only the CA's fingerprint (`keel.ca=sha256:<hex>` on the kernel
//! command line). The fetch runs over TLS whose server certificate is not
//! checked, because nothing to check it against exists yet; what comes
//! back is used only if its SHA-256 is the pinned one, and every
//! connection after that verifies the masters against it. A
//! man-in-the-middle can make the fetch fail, nothing else: the CA
//! certificate is public.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ca::fingerprint;
use crate::verify::Verifier;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("{0:?} is not a fingerprint: expected sha256:<64 hex digits>")]
    Malformed(String),
    #[error("the master's CA has fingerprint {got}, not the pinned {want}")]
    Mismatch { got: String, want: String },
    #[error("the master sent no PEM certificate")]
    NoCertificate,
}

/// `sha256:<hex>` in lower case, checked.
pub fn parse_fingerprint(text: &str) -> Result<String, PinError> {
    let t = text.trim().to_ascii_lowercase();
    match t.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(t),
        _ => Err(PinError::Malformed(text.to_string())),
    }
}

/// Checks fetched PEM against `pinned`; the PEM to keep.
pub fn check_pinned(pem: &str, pinned: &str) -> Result<String, PinError> {
    let want = parse_fingerprint(pinned)?;
    let der =
        CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| PinError::NoCertificate)?;
    let got = fingerprint(&der);
    if got != want {
        return Err(PinError::Mismatch { got, want });
    }
    Ok(pem.to_string())
}

/// The client configuration of the fetch: any server certificate, the
/// handshake's signatures still checked (HTTP/1.1).
pub fn fetch_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let verifier = Arc::new(Verifier::new(Box::new(|_, _, _| Ok(()))));
    let mut config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ca;

    #[test]
    fn only_the_pinned_ca_is_kept() {
        let ca = Ca::create("c").unwrap();
        let fp = ca.fingerprint().unwrap();
        assert_eq!(
            check_pinned(
                ca.cert_pem(),
                &fp.to_uppercase().replace("SHA256", "sha256")
            )
            .unwrap(),
            ca.cert_pem()
        );
        let other = Ca::create("other").unwrap();
        assert!(matches!(
            check_pinned(other.cert_pem(), &fp),
            Err(PinError::Mismatch { .. })
        ));
        assert_eq!(check_pinned("junk", &fp), Err(PinError::NoCertificate));
        for bad in ["", "sha256:", "md5:00", "sha256:xyz", &format!("{fp}00")] {
            assert!(
                matches!(parse_fingerprint(bad), Err(PinError::Malformed(_))),
                "{bad}"
            );
        }
        fetch_config().unwrap();
    }
}
