//! A software TPM behind [`Attestor`] for unit tests (keel-attest's
//! `soft` TPM: an RSA EK of the default template, a P-256 AK).

use std::sync::atomic::{AtomicUsize, Ordering};

use keel_attest::TpmPublic;
use keel_attest::soft::SoftTpm;

use super::tpm::{Answer, Attestor, AttestorError, ChallengeIn, Evidence};

pub(crate) struct SoftAttestor {
    tpm: SoftTpm,
    /// Challenges answered.
    pub(crate) answered: AtomicUsize,
}

impl std::fmt::Debug for SoftAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAttestor").finish()
    }
}

impl SoftAttestor {
    pub(crate) fn new() -> SoftAttestor {
        SoftAttestor {
            tpm: SoftTpm::new().expect("software tpm"),
            answered: AtomicUsize::new(0),
        }
    }
}

impl Attestor for SoftAttestor {
    fn evidence(&self) -> Result<Evidence, AttestorError> {
        Ok(Evidence {
            ek_public: self.tpm.ek_public().to_vec(),
            ek_certificate: Vec::new(),
            ak_public: self.tpm.ak_public().to_vec(),
        })
    }

    fn answer(&self, c: &ChallengeIn) -> Result<Answer, AttestorError> {
        let name = TpmPublic::parse(self.tpm.ak_public())
            .map_err(|e| AttestorError::AttestationKey(e.to_string()))?
            .name();
        let secret = self
            .tpm
            .activate(&name, &c.credential_blob, &c.encrypted_secret)
            .map_err(|e| AttestorError::Activate(e.to_string()))?;
        let (attest, signature, pcr_values) = self
            .tpm
            .quote(&c.nonce, &c.pcrs)
            .map_err(|e| AttestorError::Quote(e.to_string()))?;
        self.answered.fetch_add(1, Ordering::SeqCst);
        Ok(Answer {
            secret,
            attest,
            signature,
            pcr_values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_tpm_answers_the_masters_challenge() {
        let tpm = SoftAttestor::new();
        let ev = tpm.evidence().unwrap();
        let (challenge, msg) =
            keel_attest::Challenge::new(&ev.ek_public, &ev.ak_public, &keel_attest::BOOT_PCRS)
                .unwrap();
        let answer = tpm
            .answer(&ChallengeIn {
                credential_blob: msg.credential.credential_blob,
                encrypted_secret: msg.credential.encrypted_secret,
                nonce: msg.nonce,
                pcrs: msg.pcrs,
            })
            .unwrap();
        challenge
            .verify(
                &answer.secret,
                &answer.attest,
                &answer.signature,
                &answer.pcr_values,
            )
            .unwrap();
        assert_eq!(tpm.answered.load(Ordering::SeqCst), 1);
    }
}
