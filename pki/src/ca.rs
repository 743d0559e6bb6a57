//! The cluster CA: created once (`keelctl pki init`), then used to issue
//! every certificate of the cluster, each with a [`Role`] and a name.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::role::{ROLE_PREFIX, Role};

/// How long the CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Clock skew between machines that a new certificate tolerates.
const BACKDATE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: String },
    #[error("bad subject alternative name {0:?}")]
    BadName(String),
    #[error("validity {0:?} is out of range")]
    Validity(Duration),
    #[error("no randomness from the system")]
    Random,
    #[error("bad certificate signing request: {0}")]
    Request(String),
}

/// A certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA: its certificate and the key that signs.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA named `name` (its common name).
    pub fn create(name: &str) -> Result<Ca, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY)?;
        params.serial_number = Some(serial()?);
        let cert = params.self_signed(&key)?;
        Ca::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// The CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// The CA from its files.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, CaError> {
        Ca::from_pem(&read(cert)?, &read(key)?)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// `sha256:<hex>` of the CA certificate (what `keel.ca=` pins).
    pub fn fingerprint(&self) -> Result<String, CaError> {
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|_| {
            CaError::NoCertificate {
                path: "the CA".into(),
            }
        })?;
        Ok(fingerprint(&der))
    }

    /// A certificate for `name` in `role`, valid for `valid`, for the
    /// host names and addresses in `sans` (servers; may be empty).
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        sans: &[String],
        valid: Duration,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate()?;
        let cert = leaf(role, name, sans, valid)?.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the key of a certificate signing request (its signature
    /// proves the requester holds the key) for `name` in `role`. What the
    /// request asks for besides its key is ignored: the CA decides.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        role: Role,
        name: &str,
        valid: Duration,
    ) -> Result<String, CaError> {
        self.sign_request_with_uris(csr_pem, role, name, valid, &[])
    }

    /// [`Ca::sign_request`], the certificate also naming `uris` as URI
    /// subject alternative names (an agent's TPM: `keel:ek:sha256:<hex>`).
    pub fn sign_request_with_uris(
        &self,
        csr_pem: &str,
        role: Role,
        name: &str,
        valid: Duration,
        uris: &[String],
    ) -> Result<String, CaError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(CaError::Request(format!(
                "larger than {MAX_CSR_BYTES} bytes"
            )));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Request(e.to_string()))?;
        let mut params = leaf(role, name, &[], valid)?;
        for uri in uris {
            let uri = uri
                .clone()
                .try_into()
                .map_err(|_| CaError::BadName(uri.clone()))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

/// The most bytes of a certificate signing request.
pub const MAX_CSR_BYTES: usize = 16 << 10;

/// A new private key (PEM).
pub fn new_key() -> Result<String, CaError> {
    Ok(KeyPair::generate()?.serialize_pem())
}

/// A request to certify `key_pem` (PEM); the key stays with the requester.
pub fn request(key_pem: &str) -> Result<String, CaError> {
    let key = KeyPair::from_pem(key_pem)?;
    let csr = CertificateParams::default().serialize_request(&key)?;
    Ok(csr.pem()?)
}

/// The parameters of a certificate `role` `name` for `sans`.
fn leaf(
    role: Role,
    name: &str,
    sans: &[String],
    valid: Duration,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(name, Some(role));
    params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, valid)?;
    params.serial_number = Some(serial()?);
    Ok(params)
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn subject(name: &str, role: Option<Role>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    if let Some(role) = role {
        dn.push(DnType::OrganizationName, format!("{ROLE_PREFIX}{role}"));
    }
    dn
}

fn san(name: &str) -> Result<SanType, CaError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // A name a client could ask for (rustls' rules for DNS names).
    rustls::pki_types::ServerName::try_from(name)
        .map_err(|_| CaError::BadName(name.to_string()))?;
    let dns = name
        .to_string()
        .try_into()
        .map_err(|_| CaError::BadName(name.to_string()))?;
    Ok(SanType::DnsName(dns))
}

fn validity(params: &mut CertificateParams, valid: Duration) -> Result<(), CaError> {
    let now = OffsetDateTime::now_utc();
    let span = time::Duration::try_from(valid).map_err(|_| CaError::Validity(valid))?;
    let back = time::Duration::try_from(BACKDATE).map_err(|_| CaError::Validity(valid))?;
    params.not_before = now - back;
    params.not_after = now.checked_add(span).ok_or(CaError::Validity(valid))?;
    Ok(())
}

fn serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    // Positive: the top bit clear.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerIdentity;

    #[test]
    fn issued_certificates_carry_role_and_name() {
        let ca = Ca::create("test cluster").unwrap();
        let issued = ca
            .issue(
                Role::Master,
                "127.0.0.1:5050",
                &["127.0.0.1".into(), "m1.example".into()],
                Duration::from_secs(3600),
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let id = PeerIdentity::of(&der).unwrap();
        assert_eq!(id.role, Role::Master);
        assert_eq!(id.name, "127.0.0.1:5050");
        // The CA itself names no role.
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        assert!(PeerIdentity::of(&ca_der).is_err());
        assert!(ca.fingerprint().unwrap().starts_with("sha256:"));
        // Reloaded from PEM, the CA signs the same way.
        let again = Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again.fingerprint().unwrap(), ca.fingerprint().unwrap());
    }

    #[test]
    fn requests_are_signed_for_the_name_the_ca_chooses() {
        let ca = Ca::create("c").unwrap();
        let key = new_key().unwrap();
        let csr = request(&key).unwrap();
        let cert = ca
            .sign_request(&csr, Role::Agent, "agent-42", Duration::from_secs(60))
            .unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let id = PeerIdentity::of(&der).unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Agent, "agent-42"));
        assert!(id.uris.is_empty());
        // URI names read back (an agent's endorsement key).
        let uri = format!("keel:ek:sha256:{}", "ab".repeat(32));
        let with_uri = ca
            .sign_request_with_uris(
                &csr,
                Role::Agent,
                "agent-42",
                Duration::from_secs(60),
                std::slice::from_ref(&uri),
            )
            .unwrap();
        let der = CertificateDer::from_pem_slice(with_uri.as_bytes()).unwrap();
        assert_eq!(PeerIdentity::of(&der).unwrap().uris, vec![uri]);
        // The certificate and the requester's key make usable material.
        crate::Material::from_pem(ca.cert_pem(), Some((&cert, &key)))
            .unwrap()
            .client_config(&[])
            .unwrap();
        for bad in ["junk", &"A".repeat(MAX_CSR_BYTES + 1), ca.cert_pem()] {
            let err = ca
                .sign_request(bad, Role::Agent, "a", Duration::from_secs(60))
                .unwrap_err();
            assert!(matches!(err, CaError::Request(_)), "{err}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let ca = Ca::create("c").unwrap();
        let err = ca
            .issue(
                Role::Agent,
                "a",
                &["bad name\u{7f}".into()],
                Duration::from_secs(60),
            )
            .unwrap_err();
        assert!(matches!(err, CaError::BadName(_)), "{err}");
    }
}
