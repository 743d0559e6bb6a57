//! A TPM in software, for tests that need the agent's side of the
//! exchange without swtpm: an RSA-2048 endorsement key of the TCG default
//! template (a fixed test key, `testdata/soft-ek.der`) and a P-256
//! attestation key; TPM2_ActivateCredential and TPM2_Quote as a TPM does
//! them. The real thing is checked against swtpm in the agent's tests.

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use sha2::{Digest, Sha256};

use crate::credential::{DIGEST_BYTES, aes_cfb, hmac, kdfa};
use crate::public::{ALG_AES, ALG_CFB, ALG_ECC, ALG_ECDSA, ALG_NULL, ALG_RSA, ALG_SHA256, attr};
use crate::quote::{ST_ATTEST_QUOTE, TPM_GENERATED, pcr_selection_bytes};
use crate::wire::{Reader, put_2b};

const EK_DER: &[u8] = include_bytes!("../testdata/soft-ek.der");

/// PolicyA of the EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT).
pub const EK_POLICY_A_SHA256: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoftError {
    #[error("the credential is not for this TPM or this object")]
    Integrity,
    #[error("malformed credential: {0}")]
    Malformed(String),
    #[error("software key: {0}")]
    Key(String),
}

/// The TCG default RSA-2048 EK template (L-1) holding `modulus`.
pub fn rsa_ek_public(modulus: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ALG_RSA.to_be_bytes());
    out.extend_from_slice(&ALG_SHA256.to_be_bytes());
    let attributes = attr::FIXED_TPM
        | attr::FIXED_PARENT
        | attr::SENSITIVE_DATA_ORIGIN
        | attr::ADMIN_WITH_POLICY
        | attr::RESTRICTED
        | attr::DECRYPT;
    out.extend_from_slice(&attributes.to_be_bytes());
    put_2b(&mut out, &EK_POLICY_A_SHA256);
    for v in [ALG_AES, 128, ALG_CFB, ALG_NULL, 2048] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    put_2b(&mut out, modulus);
    out
}

/// A P-256 ECDSA-SHA-256 attestation key's public area with `attributes`.
pub fn ecc_ak_public(x: &[u8], y: &[u8], attributes: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ALG_ECC.to_be_bytes());
    out.extend_from_slice(&ALG_SHA256.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    put_2b(&mut out, &[]);
    for v in [ALG_NULL, ALG_ECDSA, ALG_SHA256, 0x0003, ALG_NULL] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    put_2b(&mut out, x);
    put_2b(&mut out, y);
    out
}

/// The attributes of an attestation key made by `TPM2_Create`.
pub const AK_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::RESTRICTED
    | attr::SIGN;

/// A quote: `(TPMS_ATTEST, TPMT_SIGNATURE, the PCR values)`.
pub type SoftQuote = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

pub struct SoftTpm {
    ek: RsaPrivateKey,
    ak: EcdsaKeyPair,
    ek_public: Vec<u8>,
    ak_public: Vec<u8>,
    /// PCRs 0-23 of the SHA-256 bank.
    pub pcrs: [[u8; 32]; 24],
    rng: SystemRandom,
}

impl SoftTpm {
    /// A TPM with a fresh attestation key.
    pub fn new() -> Result<SoftTpm, SoftError> {
        let key = |e: &dyn std::fmt::Display| SoftError::Key(e.to_string());
        let ek = RsaPrivateKey::from_pkcs1_der(EK_DER).map_err(|e| key(&e))?;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| key(&e))?;
        let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| key(&e))?;
        let point = ak.public_key().as_ref();
        let ak_public = ecc_ak_public(&point[1..33], &point[33..], AK_ATTRIBUTES);
        let ek_public = rsa_ek_public(&ek.n().to_bytes_be());
        let mut pcrs = [[0u8; 32]; 24];
        for (i, p) in pcrs.iter_mut().enumerate().take(8) {
            *p = Sha256::digest([i as u8]).into();
        }
        Ok(SoftTpm {
            ek,
            ak,
            ek_public,
            ak_public,
            pcrs,
            rng,
        })
    }

    /// The EK's `TPMT_PUBLIC`.
    pub fn ek_public(&self) -> &[u8] {
        &self.ek_public
    }

    /// The AK's `TPMT_PUBLIC`.
    pub fn ak_public(&self) -> &[u8] {
        &self.ak_public
    }

    /// TPM2_ActivateCredential for the object named `name`.
    pub fn activate(
        &self,
        name: &[u8],
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, SoftError> {
        let padding = Oaep::new_with_label::<Sha256, _>("IDENTITY\0");
        let seed = self
            .ek
            .decrypt(padding, encrypted_secret)
            .map_err(|_| SoftError::Integrity)?;
        let mut r = Reader::new(credential_blob);
        let integrity = r
            .tpm2b("integrityHMAC", 64)
            .map_err(|e| SoftError::Malformed(e.to_string()))?;
        let mut enc_identity = credential_blob[r.position()..].to_vec();
        let hmac_key = kdfa(&seed, b"INTEGRITY", &[], &[], 8 * DIGEST_BYTES as u32);
        if hmac(&hmac_key, &[&enc_identity, name]) != integrity {
            return Err(SoftError::Integrity);
        }
        let sym_key = kdfa(&seed, b"STORAGE", name, &[], 128);
        aes_cfb(&sym_key, &mut enc_identity, false);
        let mut r = Reader::new(&enc_identity);
        let credential = r
            .tpm2b("credential", DIGEST_BYTES)
            .map_err(|e| SoftError::Malformed(e.to_string()))?;
        Ok(credential.to_vec())
    }

    /// TPM2_Quote of the SHA-256 `pcrs` over `nonce` with the AK:
    /// `(TPMS_ATTEST, TPMT_SIGNATURE, PCR values)`.
    pub fn quote(&self, nonce: &[u8], pcrs: &[u32]) -> Result<SoftQuote, SoftError> {
        let values: Vec<Vec<u8>> = pcrs
            .iter()
            .map(|p| self.pcrs[(*p as usize).min(23)].to_vec())
            .collect();
        let digest = Sha256::digest(values.concat());
        let mut attest = Vec::new();
        attest.extend_from_slice(&TPM_GENERATED.to_be_bytes());
        attest.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
        let mut name = ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&self.ak_public));
        put_2b(&mut attest, &name);
        put_2b(&mut attest, nonce);
        attest.extend_from_slice(&1000u64.to_be_bytes());
        attest.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 1]);
        attest.extend_from_slice(&0x2019_1023_0016_3636u64.to_be_bytes());
        attest.extend_from_slice(&pcr_selection_bytes(pcrs));
        put_2b(&mut attest, &digest);
        let sig = self
            .ak
            .sign(&self.rng, &attest)
            .map_err(|e| SoftError::Key(e.to_string()))?;
        let (r, s) = sig.as_ref().split_at(32);
        let mut signature = ALG_ECDSA.to_be_bytes().to_vec();
        signature.extend_from_slice(&ALG_SHA256.to_be_bytes());
        put_2b(&mut signature, r);
        put_2b(&mut signature, s);
        Ok((attest, signature, values))
    }
}
