//! The endorsement key's identity: its public key as a DER
//! `SubjectPublicKeyInfo` and the SHA-256 of that, the fingerprint
//! `openssl pkey -pubin -outform DER | sha256sum` gives for the same key.
//! The one encoding is keel-attest's (`keel_attest::key`), the master's
//! for `--tpm-ek-allow` and the pending list: the agent shows the value
//! the master checks. Pure: the TPM's answer comes in as [`EkPublic`].

use super::TpmError;

/// The public part of an endorsement key, as the TPM returned it.
pub use keel_attest::key::PublicKey as EkPublic;

/// SHA-256 of the key's DER `SubjectPublicKeyInfo`, lower-case hex.
pub fn fingerprint(key: &EkPublic) -> Result<String, TpmError> {
    keel_attest::key::fingerprint(key).map_err(|e| TpmError::EndorsementKey(e.to_string()))
}

/// The key as a DER `SubjectPublicKeyInfo`.
pub fn spki_der(key: &EkPublic) -> Result<Vec<u8>, TpmError> {
    keel_attest::key::spki_der(key).map_err(|e| TpmError::EndorsementKey(e.to_string()))
}

// The encoding's tests (fingerprints checked against openssl's, malformed
// keys) live with it, in keel-attest's `key.rs`.
