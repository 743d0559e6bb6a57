//! TPM2_MakeCredential in software (TPM 2.0 Part 1, 24 "Credential
//! Protection"; Part 3, 12.6): a secret that only the TPM holding the
//! endorsement key can recover, and only for the object with a given name
//! loaded in that same TPM (TPM2_ActivateCredential).
//!
//! 1. A seed, protected for the EK: RSA-OAEP (SHA-256, label
//!    `"IDENTITY\0"`) of a random seed for an RSA EK; for an ECC EK, the
//!    seed is derived (KDFe) from an ephemeral ECDH with the EK's point,
//!    which is sent instead.
//! 2. `symKey = KDFa(seed, "STORAGE", name, -)`; the credential, as a
//!    `TPM2B_DIGEST`, encrypted with AES-CFB (zero IV): `encIdentity`.
//! 3. `HMACkey = KDFa(seed, "INTEGRITY", -, -)`; the outer HMAC is over
//!    `encIdentity || name`.
//!
//! The credential blob (`TPM2B_ID_OBJECT`'s contents) is
//! `TPM2B(outerHMAC) || encIdentity`; the secret (`TPM2B_ENCRYPTED_SECRET`'s
//! contents) is the OAEP ciphertext or the marshalled ephemeral point.

use aes::{Aes128, Aes256};
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rsa::{BigUint, Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::key::PublicKey;
use crate::public::{PublicError, TpmPublic};
use crate::wire::put_2b;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a SHA-256 digest: the seed, the HMAC key, the largest
/// credential.
pub const DIGEST_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("endorsement key: {0}")]
    EndorsementKey(#[from] PublicError),
    #[error("a credential is 1 to {DIGEST_BYTES} bytes, not {0}")]
    Size(usize),
    #[error("RSA-OAEP to the endorsement key: {0}")]
    Rsa(String),
    #[error("ECDH with the endorsement key failed")]
    Ecdh,
    #[error("no randomness: {0}")]
    Random(String),
}

/// What TPM2_ActivateCredential takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeCredential {
    /// `TPM2B_ID_OBJECT` contents.
    pub credential_blob: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET` contents.
    pub encrypted_secret: Vec<u8>,
}

/// Protects `credential` for the object named `name` in the TPM of `ek`.
pub fn make_credential(
    ek: &TpmPublic,
    name: &[u8],
    credential: &[u8],
) -> Result<MadeCredential, CredentialError> {
    ek.check_endorsement_key()?;
    if credential.is_empty() || credential.len() > DIGEST_BYTES {
        return Err(CredentialError::Size(credential.len()));
    }
    let (seed, encrypted_secret) = match &ek.key {
        PublicKey::Rsa { modulus, exponent } => rsa_seed(modulus, *exponent)?,
        PublicKey::EccP256 { x, y } => ecc_seed(x, y)?,
    };
    // Checked by check_endorsement_key: AES-128 or AES-256, CFB.
    let sym_bits = ek.symmetric.map_or(128, |s| s.key_bits);
    let credential_blob = protect(&seed, name, credential, sym_bits);
    Ok(MadeCredential {
        credential_blob,
        encrypted_secret,
    })
}

/// Steps 2 and 3, given the seed.
pub(crate) fn protect(seed: &[u8], name: &[u8], credential: &[u8], sym_bits: u16) -> Vec<u8> {
    let sym_key = kdfa(seed, b"STORAGE", name, &[], u32::from(sym_bits));
    let mut enc_identity = Vec::with_capacity(credential.len() + 2);
    put_2b(&mut enc_identity, credential);
    aes_cfb(&sym_key, &mut enc_identity, true);
    let hmac_key = kdfa(seed, b"INTEGRITY", &[], &[], 8 * DIGEST_BYTES as u32);
    let integrity = hmac(&hmac_key, &[&enc_identity, name]);
    let mut blob = Vec::with_capacity(2 + integrity.len() + enc_identity.len());
    put_2b(&mut blob, &integrity);
    blob.extend_from_slice(&enc_identity);
    blob
}

/// AES-CFB with a zero IV, in place; `key` is 16 or 32 bytes.
pub(crate) fn aes_cfb(key: &[u8], data: &mut [u8], encrypt: bool) {
    let iv = [0u8; 16];
    match (key.len(), encrypt) {
        (32, true) => cfb_mode::Encryptor::<Aes256>::new(key.into(), &iv.into()).encrypt(data),
        (32, false) => cfb_mode::Decryptor::<Aes256>::new(key.into(), &iv.into()).decrypt(data),
        (_, true) => cfb_mode::Encryptor::<Aes128>::new(key[..16].into(), &iv.into()).encrypt(data),
        (_, false) => {
            cfb_mode::Decryptor::<Aes128>::new(key[..16].into(), &iv.into()).decrypt(data)
        }
    }
}

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// KDFa with HMAC-SHA-256 (Part 1, 11.4.10.2; SP 800-108 counter mode):
/// `bits` of `HMAC(key, i || label || 0 || context_u || context_v || bits)`.
pub fn kdfa(key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + DIGEST_BYTES);
    let mut counter = 1u32;
    while out.len() < bytes {
        out.extend(hmac(
            key,
            &[
                &counter.to_be_bytes(),
                label,
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        ));
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// KDFe with SHA-256 (Part 1, 11.4.10.3; SP 800-56A concatenation):
/// `bits` of `H(i || Z || label || 0 || party_u || party_v)`.
pub fn kdfe(z: &[u8], label: &[u8], party_u: &[u8], party_v: &[u8], bits: u32) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + DIGEST_BYTES);
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut h = Sha256::new();
        for part in [&counter.to_be_bytes()[..], z, label, &[0], party_u, party_v] {
            h.update(part);
        }
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

fn random(n: usize) -> Result<Vec<u8>, CredentialError> {
    let mut out = vec![0; n];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut out)
        .map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(out)
}

/// The OAEP label: "IDENTITY" with its terminating zero.
const IDENTITY: &str = "IDENTITY\0";

fn rsa_seed(modulus: &[u8], exponent: u32) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let key = RsaPublicKey::new(
        BigUint::from_bytes_be(modulus),
        BigUint::from(PublicKey::rsa_exponent(exponent)),
    )
    .map_err(|e| CredentialError::Rsa(e.to_string()))?;
    let seed = random(DIGEST_BYTES)?;
    let padding = Oaep::new_with_label::<Sha256, _>(IDENTITY);
    let encrypted = key
        .encrypt(&mut rand_core::OsRng, padding, &seed)
        .map_err(|e| CredentialError::Rsa(e.to_string()))?;
    Ok((seed, encrypted))
}

fn ecc_seed(x: &[u8], y: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
    let rng = ring::rand::SystemRandom::new();
    let ephemeral =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| CredentialError::Ecdh)?;
    let public = ephemeral
        .compute_public_key()
        .map_err(|_| CredentialError::Ecdh)?;
    // 04 || x || y.
    let (ex, ey) = public.as_ref()[1..].split_at(32);
    let ek_point = PublicKey::p256_point(x, y).map_err(|_| CredentialError::Ecdh)?;
    let ek_x = &ek_point[1..33];
    let peer = UnparsedPublicKey::new(&ECDH_P256, &ek_point);
    let seed = agree_ephemeral(ephemeral, &peer, |z| {
        kdfe(z, b"IDENTITY", ex, ek_x, 8 * DIGEST_BYTES as u32)
    })
    .map_err(|_| CredentialError::Ecdh)?;
    let mut point = Vec::with_capacity(2 * 34);
    put_2b(&mut point, ex);
    put_2b(&mut point, ey);
    Ok((seed, point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_follows_the_counter_construction() {
        // One block: HMAC(key, 00000001 || "STORAGE" || 00 || u || v || 00000080).
        let key = [7u8; 32];
        let out = kdfa(&key, b"STORAGE", b"name", b"", 128);
        let mut expected = Vec::new();
        expected.extend_from_slice(&1u32.to_be_bytes());
        expected.extend_from_slice(b"STORAGE\0name");
        expected.extend_from_slice(&128u32.to_be_bytes());
        assert_eq!(out, hmac(&key, &[&expected])[..16]);
        // Two blocks for 320 bits, the first a prefix of a 256-bit run's
        // only in structure: the length is part of every block.
        let long = kdfa(&key, b"X", b"", b"", 320);
        assert_eq!(long.len(), 40);
        assert_ne!(long[..32], kdfa(&key, b"X", b"", b"", 256)[..]);
    }

    #[test]
    fn cfb_round_trips_and_is_a_stream() {
        for key in [vec![1u8; 16], vec![2u8; 32]] {
            let mut data = b"seventeen bytes!!".to_vec();
            aes_cfb(&key, &mut data, true);
            assert_ne!(&data, b"seventeen bytes!!");
            aes_cfb(&key, &mut data, false);
            assert_eq!(&data, b"seventeen bytes!!");
        }
    }

    #[test]
    fn kdfe_hashes_its_parts_in_order() {
        let out = kdfe(b"z", b"IDENTITY", b"u", b"v", 256);
        let mut h = Sha256::new();
        h.update(1u32.to_be_bytes());
        h.update(b"zIDENTITY\0uv");
        assert_eq!(out, h.finalize().to_vec());
    }
}
