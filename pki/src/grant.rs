//! Sandbox grants: what a master signs to let one caller read the
//! sandboxes of some frameworks on one agent, for a while
//! (`docs/design/0006-trust.md`, "The agent's port").
//!
//! The master authorizes (`access_sandboxes` for each framework's user)
//! and signs with its own TLS key; the agent checks the grant by itself,
//! without asking a master: the grant carries the signing master's
//! certificate, which must chain to the cluster CA and have the master
//! role. The text is five parts joined by dots:
//!
//! ```text
//! keelgrant1 . base64url(payload JSON) . scheme (decimal TLS SignatureScheme)
//!            . base64url(signature over "keelgrant1.<payload>") . base64url(certificate DER)
//! ```
//!
//! The signed message starts with the prefix, so no TLS handshake
//! signature (which starts with 64 spaces) can be passed off as a grant.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rustls::SignatureScheme;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::SigningKey;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Material, PeerIdentity, Role};

/// The first part of every grant.
pub const PREFIX: &str = "keelgrant1";
/// The longest grant text taken.
pub const MAX_GRANT_BYTES: usize = 8 << 10;

/// What a grant allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The agent whose sandboxes it opens.
    pub agent_id: String,
    /// The frameworks whose sandboxes on that agent it opens.
    pub frameworks: Vec<String>,
    /// Who asked the master for it (for the agent's log).
    #[serde(default)]
    pub principal: Option<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("this process has no certificate and key to sign grants with")]
    NoKey,
    #[error("grants are signed by masters; this certificate has the {0} role")]
    NotMaster(Role),
    #[error("the key cannot sign: {0}")]
    Key(String),
    #[error("not a grant: {0}")]
    Malformed(&'static str),
    #[error("longer than {MAX_GRANT_BYTES} bytes")]
    TooLong,
    #[error("the signing certificate: {0}")]
    Certificate(String),
    #[error("the signature does not verify")]
    Signature,
    #[error("expired at {0} (unix seconds)")]
    Expired(i64),
}

/// Signs grants with a master's own key.
#[derive(Debug)]
pub struct GrantSigner {
    key: Arc<dyn SigningKey>,
    cert: CertificateDer<'static>,
}

/// The schemes a grant may be signed with, best first.
const SCHEMES: [SignatureScheme; 5] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA256,
];

impl GrantSigner {
    /// With the certificate and key of `material`, which must be a
    /// master's.
    pub fn new(material: &Material) -> Result<GrantSigner, GrantError> {
        let (chain, key) = material.own().ok_or(GrantError::NoKey)?;
        let cert = chain.first().ok_or(GrantError::NoKey)?.clone();
        let role = PeerIdentity::of(&cert)
            .map_err(|e| GrantError::Certificate(e.to_string()))?
            .role;
        if role != Role::Master {
            return Err(GrantError::NotMaster(role));
        }
        let key = crate::provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| GrantError::Key(e.to_string()))?;
        Ok(GrantSigner { key, cert })
    }

    /// The grant's text.
    pub fn sign(&self, grant: &Grant) -> Result<String, GrantError> {
        let signer = self
            .key
            .choose_scheme(&SCHEMES)
            .ok_or_else(|| GrantError::Key("no scheme fits the key".into()))?;
        let payload = serde_json::to_vec(grant).map_err(|e| GrantError::Key(e.to_string()))?;
        let signed = format!("{PREFIX}.{}", B64.encode(payload));
        let signature = signer
            .sign(signed.as_bytes())
            .map_err(|e| GrantError::Key(e.to_string()))?;
        Ok(format!(
            "{signed}.{}.{}.{}",
            u16::from(signer.scheme()),
            B64.encode(signature),
            B64.encode(self.cert.as_ref())
        ))
    }
}

/// Checks grants against the cluster CA.
#[derive(Debug, Clone)]
pub struct GrantVerifier {
    material: Material,
}

impl GrantVerifier {
    pub fn new(material: &Material) -> GrantVerifier {
        GrantVerifier {
            material: material.clone(),
        }
    }

    /// The grant in `text` if a master of this cluster signed it and it
    /// has not expired at `now` (unix seconds).
    pub fn verify(&self, text: &str, now: i64) -> Result<Grant, GrantError> {
        if text.len() > MAX_GRANT_BYTES {
            return Err(GrantError::TooLong);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [prefix, payload, scheme, signature, cert] = parts[..] else {
            return Err(GrantError::Malformed("five parts joined by dots"));
        };
        if prefix != PREFIX {
            return Err(GrantError::Malformed("it does not start with keelgrant1"));
        }
        let decode = |part: &str, what: &'static str| {
            B64.decode(part).map_err(|_| GrantError::Malformed(what))
        };
        let cert = CertificateDer::from(decode(cert, "the certificate is not base64url")?);
        let signature = decode(signature, "the signature is not base64url")?;
        let scheme = scheme
            .parse::<u16>()
            .map(SignatureScheme::from)
            .map_err(|_| GrantError::Malformed("the scheme is not a number"))?;
        self.check_signer(&cert)?;
        let signed = format!("{prefix}.{payload}");
        check_signature(&cert, scheme, signed.as_bytes(), &signature)?;
        let grant: Grant =
            serde_json::from_slice(&decode(payload, "the payload is not base64url")?)
                .map_err(|_| GrantError::Malformed("the payload is not a grant"))?;
        if grant.expires_at <= now {
            return Err(GrantError::Expired(grant.expires_at));
        }
        Ok(grant)
    }

    /// `cert` chains to the CA, is valid now and names a master.
    fn check_signer(&self, cert: &CertificateDer<'_>) -> Result<(), GrantError> {
        let bad = |e: String| GrantError::Certificate(e);
        let parsed = ParsedCertificate::try_from(cert).map_err(|e| bad(e.to_string()))?;
        let algs = crate::provider().signature_verification_algorithms;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            self.material.roots(),
            &[],
            UnixTime::now(),
            algs.all,
        )
        .map_err(|e| bad(e.to_string()))?;
        let role = PeerIdentity::of(cert).map_err(|e| bad(e.to_string()))?.role;
        if role != Role::Master {
            return Err(GrantError::NotMaster(role));
        }
        Ok(())
    }
}

/// `signature` over `message` by the key of `cert` with `scheme`.
fn check_signature(
    cert: &CertificateDer<'_>,
    scheme: SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), GrantError> {
    if !SCHEMES.contains(&scheme) {
        return Err(GrantError::Malformed("an unknown signature scheme"));
    }
    let algs = crate::provider().signature_verification_algorithms;
    let (_, candidates) = algs
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .ok_or(GrantError::Malformed("an unknown signature scheme"))?;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| GrantError::Certificate(e.to_string()))?;
    let key = &parsed.public_key().subject_public_key.data;
    candidates
        .iter()
        .any(|alg| alg.verify_signature(key, message, signature).is_ok())
        .then_some(())
        .ok_or(GrantError::Signature)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Ca;

    fn material(ca: &Ca, role: Role) -> Material {
        let issued = ca
            .issue(role, "m1", &["127.0.0.1".into()], Duration::from_secs(600))
            .unwrap();
        Material::from_pem(ca.cert_pem(), Some((&issued.cert_pem, &issued.key_pem))).unwrap()
    }

    fn grant() -> Grant {
        Grant {
            agent_id: "a-S0".into(),
            frameworks: vec!["fw-1".into()],
            principal: Some("ops".into()),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_grant_signed_by_a_master_verifies_until_it_expires() {
        let ca = Ca::create("c").unwrap();
        let signer = GrantSigner::new(&material(&ca, Role::Master)).unwrap();
        let text = signer.sign(&grant()).unwrap();
        let verifier = GrantVerifier::new(&Material::from_pem(ca.cert_pem(), None).unwrap());
        assert_eq!(verifier.verify(&text, 1_000).unwrap(), grant());
        assert!(matches!(
            verifier.verify(&text, 2_000),
            Err(GrantError::Expired(2_000))
        ));
    }

    #[test]
    fn forged_and_foreign_grants_are_refused() {
        let ca = Ca::create("c").unwrap();
        let text = GrantSigner::new(&material(&ca, Role::Master))
            .unwrap()
            .sign(&grant())
            .unwrap();
        let verifier = GrantVerifier::new(&Material::from_pem(ca.cert_pem(), None).unwrap());
        // Another payload under the same signature.
        let mut parts: Vec<String> = text.split('.').map(str::to_string).collect();
        let mut wider = grant();
        wider.frameworks.push("fw-2".into());
        parts[1] = B64.encode(serde_json::to_vec(&wider).unwrap());
        assert!(matches!(
            verifier.verify(&parts.join("."), 1_000),
            Err(GrantError::Signature)
        ));
        // Signed by a master of another cluster.
        let other = Ca::create("other").unwrap();
        let foreign = GrantSigner::new(&material(&other, Role::Master))
            .unwrap()
            .sign(&grant())
            .unwrap();
        assert!(matches!(
            verifier.verify(&foreign, 1_000),
            Err(GrantError::Certificate(_))
        ));
        // Only masters sign.
        assert!(matches!(
            GrantSigner::new(&material(&ca, Role::Operator)),
            Err(GrantError::NotMaster(Role::Operator))
        ));
        // Garbage.
        for junk in ["", "keelgrant1", "a.b.c.d.e", "keelgrant1.!.1.!.!"] {
            assert!(verifier.verify(junk, 1_000).is_err(), "{junk}");
        }
        assert!(matches!(
            verifier.verify(&"x".repeat(MAX_GRANT_BYTES + 1), 1_000),
            Err(GrantError::TooLong)
        ));
    }
}
