//! One attestation, as the master runs it within one agent session:
//!
//! 1. [`Challenge::new`] from the agent's evidence (its EK's and AK's
//!    public areas): a random secret made into a credential for the AK's
//!    name under the EK ([`make_credential`]), and a random nonce.
//! 2. [`Challenge::verify`] of the agent's answer: the secret it
//!    recovered with TPM2_ActivateCredential, which only the TPM holding
//!    that EK can do, and only with that AK loaded (this binds the AK to
//!    the EK), and a quote with that AK over the nonce.
//!
//! Both halves are checked together against the one challenge, never
//! apart (Keylime's CVE-2022-1053 came from checking them apart).

use crate::credential::{CredentialError, DIGEST_BYTES, MadeCredential, make_credential};
use crate::public::{PublicError, TpmPublic};
use crate::quote::{QuoteError, VerifiedQuote, verify_quote};

/// The boot PCRs a quote covers (SHA-256 bank): firmware, its
/// configuration, option ROMs, the boot loader and its configuration.
pub const BOOT_PCRS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    #[error("endorsement key: {0}")]
    EndorsementKey(PublicError),
    #[error("attestation key: {0}")]
    AttestationKey(PublicError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(
        "the credential was not activated: the attestation key is not bound to the endorsement key"
    )]
    NotActivated,
    #[error("quote refused: {0}")]
    Quote(#[from] QuoteError),
    #[error("no randomness: {0}")]
    Random(String),
}

/// What the master sends the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeMessage {
    pub credential: MadeCredential,
    pub nonce: Vec<u8>,
    pub pcrs: Vec<u32>,
}

/// The state of one attestation: kept by the session that sent it.
#[derive(Debug)]
pub struct Challenge {
    ek: TpmPublic,
    ak: TpmPublic,
    secret: [u8; DIGEST_BYTES],
    nonce: [u8; DIGEST_BYTES],
    pcrs: Vec<u32>,
}

/// What a verified attestation established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The EK's fingerprint ([`crate::key::fingerprint`]).
    pub ek_fingerprint: String,
    pub ak_name: Vec<u8>,
    pub quote: VerifiedQuote,
}

fn random() -> Result<[u8; DIGEST_BYTES], AttestError> {
    let mut out = [0u8; DIGEST_BYTES];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut out)
        .map_err(|e| AttestError::Random(e.to_string()))?;
    Ok(out)
}

impl Challenge {
    /// Checks the evidence and makes the challenge for it.
    pub fn new(
        ek_public: &[u8],
        ak_public: &[u8],
        pcrs: &[u32],
    ) -> Result<(Challenge, ChallengeMessage), AttestError> {
        let ek = TpmPublic::parse(ek_public).map_err(AttestError::EndorsementKey)?;
        ek.check_endorsement_key()
            .map_err(AttestError::EndorsementKey)?;
        let ak = TpmPublic::parse(ak_public).map_err(AttestError::AttestationKey)?;
        ak.check_attestation_key()
            .map_err(AttestError::AttestationKey)?;
        let secret = random()?;
        let nonce = random()?;
        let credential = make_credential(&ek, &ak.name(), &secret)?;
        let message = ChallengeMessage {
            credential,
            nonce: nonce.to_vec(),
            pcrs: pcrs.to_vec(),
        };
        Ok((
            Challenge {
                ek,
                ak,
                secret,
                nonce,
                pcrs: pcrs.to_vec(),
            },
            message,
        ))
    }

    /// The endorsement key's public area, as parsed.
    pub fn endorsement_key(&self) -> &TpmPublic {
        &self.ek
    }

    /// Checks the answer: the activated secret, then the quote.
    pub fn verify(
        &self,
        secret: &[u8],
        attest: &[u8],
        signature: &[u8],
        pcr_values: &[Vec<u8>],
    ) -> Result<Attested, AttestError> {
        let same = secret.len() == self.secret.len()
            && secret
                .iter()
                .zip(self.secret.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(AttestError::NotActivated);
        }
        let quote = verify_quote(
            &self.ak,
            attest,
            signature,
            &self.nonce,
            &self.pcrs,
            pcr_values,
        )?;
        Ok(Attested {
            ek_fingerprint: self.ek.fingerprint(),
            ak_name: self.ak.name(),
            quote,
        })
    }
}

#[cfg(test)]
#[path = "challenge_tests.rs"]
mod tests;
