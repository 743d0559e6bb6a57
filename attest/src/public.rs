//! `TPMT_PUBLIC` (TPM 2.0 Part 2, 12.2.4): the public area of a TPM
//! object, as `TPM2_ReadPublic` gives it and tss-esapi marshals it. Read
//! far enough to know the key, its attributes, the algorithms that
//! MakeCredential needs, and its name (`nameAlg || H(TPMT_PUBLIC)`).
//!
//! Only SHA-256 name algorithms, RSA keys and NIST P-256 keys are taken:
//! the TCG default templates for endorsement keys (EK Credential Profile
//! 2.3, B.3.3 and B.3.4) and attestation keys.

use sha2::{Digest, Sha256};

use crate::key::{self, PublicKey};
use crate::wire::{Reader, WireError};

pub const ALG_RSA: u16 = 0x0001;
pub const ALG_AES: u16 = 0x0006;
pub const ALG_SHA256: u16 = 0x000b;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_RSASSA: u16 = 0x0014;
pub const ALG_RSAES: u16 = 0x0015;
pub const ALG_RSAPSS: u16 = 0x0016;
pub const ALG_ECDSA: u16 = 0x0018;
pub const ALG_ECDAA: u16 = 0x001a;
pub const ALG_ECC: u16 = 0x0023;
pub const ALG_CFB: u16 = 0x0043;
pub const ECC_NIST_P256: u16 = 0x0003;

/// `TPMA_OBJECT` bits.
pub mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}

/// Longest `TPMT_PUBLIC` taken from a peer (an RSA-4096 key with a
/// SHA-512 policy is about 600 bytes).
pub const MAX_PUBLIC_BYTES: usize = 1024;
/// Longest key or policy buffer inside it.
const MAX_BUFFER: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicError {
    #[error("TPMT_PUBLIC: {0}")]
    Wire(#[from] WireError),
    #[error("TPMT_PUBLIC of {0} bytes, at most {MAX_PUBLIC_BYTES}")]
    TooLong(usize),
    #[error("unsupported {what} {alg:#06x}")]
    Unsupported { what: &'static str, alg: u16 },
    #[error("{0}")]
    Key(#[from] key::KeyError),
    #[error("the {role} does not have the attributes of one: {missing}")]
    Attributes { role: &'static str, missing: String },
}

/// `TPMT_SYM_DEF_OBJECT` when not NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symmetric {
    pub alg: u16,
    pub key_bits: u16,
    pub mode: u16,
}

/// A key's signing or encryption scheme when not NULL; `hash` is 0 for
/// schemes without one (RSAES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub alg: u16,
    pub hash: u16,
}

/// A parsed `TPMT_PUBLIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmPublic {
    /// The marshalled structure as given: what the name hashes.
    pub bytes: Vec<u8>,
    pub name_alg: u16,
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    pub symmetric: Option<Symmetric>,
    pub scheme: Option<Scheme>,
    pub key: PublicKey,
}

impl TpmPublic {
    /// Parses a marshalled `TPMT_PUBLIC` (no `TPM2B` size in front).
    pub fn parse(bytes: &[u8]) -> Result<TpmPublic, PublicError> {
        if bytes.len() > MAX_PUBLIC_BYTES {
            return Err(PublicError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let kind = r.u16("type")?;
        let name_alg = r.u16("nameAlg")?;
        if name_alg != ALG_SHA256 {
            return Err(PublicError::Unsupported {
                what: "name algorithm",
                alg: name_alg,
            });
        }
        let attributes = r.u32("objectAttributes")?;
        let auth_policy = r.tpm2b("authPolicy", MAX_BUFFER)?.to_vec();
        let symmetric = symmetric(&mut r)?;
        let (scheme, key) = match kind {
            ALG_RSA => {
                let scheme = scheme(&mut r)?;
                let _key_bits = r.u16("keyBits")?;
                let exponent = r.u32("exponent")?;
                let modulus = r.tpm2b("unique.rsa", MAX_BUFFER)?.to_vec();
                (scheme, PublicKey::Rsa { modulus, exponent })
            }
            ALG_ECC => {
                let scheme = scheme(&mut r)?;
                let curve = r.u16("curveID")?;
                if curve != ECC_NIST_P256 {
                    return Err(PublicError::Unsupported {
                        what: "curve",
                        alg: curve,
                    });
                }
                // kdf: TPMT_KDF_SCHEME.
                if r.u16("kdf")? != ALG_NULL {
                    r.u16("kdf.hashAlg")?;
                }
                let x = r.tpm2b("unique.ecc.x", MAX_BUFFER)?.to_vec();
                let y = r.tpm2b("unique.ecc.y", MAX_BUFFER)?.to_vec();
                (scheme, PublicKey::EccP256 { x, y })
            }
            other => {
                return Err(PublicError::Unsupported {
                    what: "key type",
                    alg: other,
                });
            }
        };
        r.finish("TPMT_PUBLIC")?;
        // A key that has no DER form is no key.
        key::spki_der(&key)?;
        Ok(TpmPublic {
            bytes: bytes.to_vec(),
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            key,
        })
    }

    /// The object's name: `nameAlg || SHA-256(TPMT_PUBLIC)`.
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&self.bytes));
        name
    }

    /// The key's fingerprint: SHA-256 of its `SubjectPublicKeyInfo`.
    pub fn fingerprint(&self) -> String {
        // Checked by `parse`.
        key::fingerprint(&self.key).unwrap_or_default()
    }

    fn require(
        &self,
        role: &'static str,
        set: &[(u32, &str)],
        clear: &[(u32, &str)],
    ) -> Result<(), PublicError> {
        let mut missing: Vec<String> = set
            .iter()
            .filter(|(bit, _)| self.attributes & bit == 0)
            .map(|(_, n)| n.to_string())
            .collect();
        missing.extend(
            clear
                .iter()
                .filter(|(bit, _)| self.attributes & bit != 0)
                .map(|(_, n)| format!("not {n}")),
        );
        match missing.is_empty() {
            true => Ok(()),
            false => Err(PublicError::Attributes {
                role,
                missing: missing.join(", "),
            }),
        }
    }

    /// An attestation key: made inside a TPM and bound to it (so its
    /// name proves that whoever activates a credential for it holds it
    /// in the TPM of the endorsement key), and restricted to signing what
    /// the TPM itself produced (a quote cannot be forged with it).
    ///
    /// `adminWithPolicy` must be clear: TPM2_ActivateCredential needs the
    /// object's ADMIN authorization, and a public area loaded alone
    /// (TPM2_LoadExternal takes any attributes, `fixedTPM` included,
    /// without a private part) has no auth value to give it, but a
    /// policy would do. With the bit clear, only an object the TPM holds
    /// whole can activate the credential.
    pub fn check_attestation_key(&self) -> Result<(), PublicError> {
        use attr::*;
        self.require(
            "attestation key",
            &[
                (FIXED_TPM, "fixedTPM"),
                (FIXED_PARENT, "fixedParent"),
                (SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
                (RESTRICTED, "restricted"),
                (SIGN, "sign"),
            ],
            &[(DECRYPT, "decrypt"), (ADMIN_WITH_POLICY, "adminWithPolicy")],
        )
    }

    /// An endorsement key: a restricted decryption key of the TPM with
    /// the AES-CFB protection MakeCredential encrypts for.
    pub fn check_endorsement_key(&self) -> Result<(), PublicError> {
        use attr::*;
        self.require(
            "endorsement key",
            &[
                (FIXED_TPM, "fixedTPM"),
                (FIXED_PARENT, "fixedParent"),
                (RESTRICTED, "restricted"),
                (DECRYPT, "decrypt"),
            ],
            &[(SIGN, "sign")],
        )?;
        match self.symmetric {
            Some(Symmetric {
                alg: ALG_AES,
                key_bits: 128 | 256,
                mode: ALG_CFB,
            }) => Ok(()),
            Some(s) => Err(PublicError::Unsupported {
                what: "endorsement key symmetric algorithm",
                alg: s.alg,
            }),
            None => Err(PublicError::Unsupported {
                what: "endorsement key symmetric algorithm",
                alg: ALG_NULL,
            }),
        }
    }
}

fn symmetric(r: &mut Reader) -> Result<Option<Symmetric>, PublicError> {
    let alg = r.u16("symmetric")?;
    if alg == ALG_NULL {
        return Ok(None);
    }
    Ok(Some(Symmetric {
        alg,
        key_bits: r.u16("symmetric.keyBits")?,
        mode: r.u16("symmetric.mode")?,
    }))
}

fn scheme(r: &mut Reader) -> Result<Option<Scheme>, PublicError> {
    let alg = r.u16("scheme")?;
    match alg {
        ALG_NULL => Ok(None),
        ALG_RSAES => Ok(Some(Scheme { alg, hash: 0 })),
        ALG_ECDAA => {
            let hash = r.u16("scheme.hashAlg")?;
            r.u16("scheme.count")?;
            Ok(Some(Scheme { alg, hash }))
        }
        _ => Ok(Some(Scheme {
            alg,
            hash: r.u16("scheme.hashAlg")?,
        })),
    }
}

#[cfg(test)]
#[path = "public_tests.rs"]
mod tests;
