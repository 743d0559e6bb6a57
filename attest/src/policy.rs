//! Which endorsement keys a cluster takes: an operator's allow-list of EK
//! fingerprints (`--tpm-ek-allow`: software TPMs, labs, machines whose
//! TPM has no EK certificate), and the TPM manufacturers' CAs
//! (`--tpm-ek-ca`), which an EK certificate must chain to.
//!
//! The allow-list has one `sha256:<hex>` a line: the SHA-256 of the EK's
//! public key as a DER `SubjectPublicKeyInfo` ([`crate::key::fingerprint`]),
//! what `keel-agent discover` shows as `inventory.tpm.ek.sha256` and
//! `openssl x509 -in ek.crt -pubkey -noout | openssl pkey -pubin -outform
//! DER | sha256sum` gives; `#` starts a comment.
//!
//! Every certificate in the CA directory is trusted to issue EK
//! certificates (roots and intermediates alike): an EK certificate is
//! taken when one of them signed it, both are within their validity, and
//! it certifies the very key the TPM showed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as X509Key;
use x509_parser::time::ASN1Time;

use crate::key::{self, PublicKey};
use crate::wire::unhex;

/// Longest EK certificate taken from a peer.
pub const MAX_EK_CERT_BYTES: usize = 8192;
/// Most entries of an allow-list, and most CA certificates.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: expected sha256:<64 hex digits>, found {found:?}")]
    AllowLine { line: usize, found: String },
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
    #[error("{path}: no certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("EK certificate: {0}")]
    EkCertificate(String),
    #[error("the EK certificate certifies another key than the TPM's endorsement key")]
    OtherKey,
    #[error("no configured manufacturer CA issued the EK certificate (issuer {0})")]
    UnknownIssuer(String),
    #[error("the EK certificate or its issuer is outside its validity")]
    Expired,
}

/// Normalizes one EK fingerprint: `sha256:<hex>` (or the bare hex), any
/// case, to 64 lower-case hex digits.
pub fn parse_fingerprint(s: &str) -> Option<String> {
    let hex = s.trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    let bytes = unhex(hex)?;
    (bytes.len() == 32).then(|| hex.to_ascii_lowercase())
}

/// `--tpm-ek-allow`: EK fingerprints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    fingerprints: BTreeSet<String>,
}

impl AllowList {
    pub fn parse(text: &str) -> Result<AllowList, PolicyError> {
        let mut fingerprints = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let ok = line
                .starts_with("sha256:")
                .then(|| parse_fingerprint(line))
                .flatten();
            match ok {
                Some(f) => fingerprints.insert(f),
                None => {
                    return Err(PolicyError::AllowLine {
                        line: n + 1,
                        found: line.chars().take(80).collect(),
                    });
                }
            };
            if fingerprints.len() > MAX_ENTRIES {
                return Err(PolicyError::TooMany);
            }
        }
        Ok(AllowList { fingerprints })
    }

    pub fn load(path: &Path) -> Result<AllowList, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        AllowList::parse(&text)
    }

    /// `fingerprint`: 64 lower-case hex digits.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// `--tpm-ek-ca`: the manufacturers' CA certificates (DER).
#[derive(Debug, Clone, Default)]
pub struct EkRoots {
    certs: Vec<Vec<u8>>,
}

/// What an accepted EK certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkCertificate {
    pub subject: String,
    pub issuer: String,
}

impl EkRoots {
    /// Every certificate in the files of `dir` (PEM, several to a file, or
    /// one DER certificate a file).
    pub fn load_dir(dir: &Path) -> Result<EkRoots, PolicyError> {
        let io = |path: &Path, source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let mut certs = Vec::new();
        for path in paths {
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            let found = EkRoots::certificates(&bytes).map_err(|reason| PolicyError::BadCa {
                path: path.clone(),
                reason,
            })?;
            if found.is_empty() {
                return Err(PolicyError::NoCertificate { path });
            }
            certs.extend(found);
            if certs.len() > MAX_ENTRIES {
                return Err(PolicyError::TooMany);
            }
        }
        Ok(EkRoots { certs })
    }

    /// From DER certificates (tests).
    pub fn from_der(certs: Vec<Vec<u8>>) -> EkRoots {
        EkRoots { certs }
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    fn certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        if !bytes.starts_with(b"-----") && !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            X509Certificate::from_der(bytes).map_err(|e| e.to_string())?;
            return Ok(vec![bytes.to_vec()]);
        }
        let mut out = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| e.to_string())?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            pem.parse_x509().map_err(|e| e.to_string())?;
            out.push(pem.contents);
        }
        Ok(out)
    }

    /// Checks an EK certificate (DER) against the roots, for `ek`, at
    /// `now` (seconds since the epoch).
    pub fn verify(
        &self,
        ek_cert: &[u8],
        ek: &PublicKey,
        now: i64,
    ) -> Result<EkCertificate, PolicyError> {
        if ek_cert.len() > MAX_EK_CERT_BYTES {
            return Err(PolicyError::EkCertificate(format!(
                "{} bytes, at most {MAX_EK_CERT_BYTES}",
                ek_cert.len()
            )));
        }
        let (_, cert) = X509Certificate::from_der(ek_cert)
            .map_err(|e| PolicyError::EkCertificate(e.to_string()))?;
        let certified = certified_key(&cert).ok_or(PolicyError::OtherKey)?;
        let same = key::fingerprint(&certified).ok() == key::fingerprint(ek).ok()
            && key::fingerprint(ek).is_ok();
        if !same {
            return Err(PolicyError::OtherKey);
        }
        let at = ASN1Time::from_timestamp(now).map_err(|_| PolicyError::Expired)?;
        let issuer = self
            .certs
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
            .find(|ca| {
                ca.subject().as_raw() == cert.issuer().as_raw()
                    && cert.verify_signature(Some(ca.public_key())).is_ok()
            })
            .ok_or_else(|| PolicyError::UnknownIssuer(cert.issuer().to_string()))?;
        if !cert.validity().is_valid_at(at) || !issuer.validity().is_valid_at(at) {
            return Err(PolicyError::Expired);
        }
        Ok(EkCertificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
        })
    }
}

/// The key a certificate certifies, in the TPM's terms.
fn certified_key(cert: &X509Certificate) -> Option<PublicKey> {
    match cert.public_key().parsed().ok()? {
        X509Key::RSA(rsa) => {
            let e = rsa.try_exponent().ok()?;
            Some(PublicKey::Rsa {
                modulus: rsa.modulus.to_vec(),
                exponent: u32::try_from(e).ok()?,
            })
        }
        X509Key::EC(point) => {
            let data = point.data();
            (data.len() == 65 && data[0] == 4).then(|| PublicKey::EccP256 {
                x: data[1..33].to_vec(),
                y: data[33..].to_vec(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
