//! TPM admission, the agent's side (`docs/design/0006-trust.md`, "TPM").
//!
//! An agent with a TPM and no certificate sends [`Evidence`] with its
//! registration: its endorsement key (EK, TCG default template) and an
//! attestation key (AK) made under it. The master answers on the same
//! stream with a challenge; the agent answers it with its TPM
//! ([`Attestor::answer`]): TPM2_ActivateCredential recovers the master's
//! secret (only this TPM can, and only with this AK loaded), and
//! TPM2_Quote signs the boot PCRs and the master's nonce with the AK.
//!
//! The TPM sits behind [`Attestor`]: [`EsapiAttestor`] (tss-esapi, the
//! only code here that talks to a TPM; checked against swtpm by
//! `agent/tests/tpm_admission.rs`) and, in unit tests, a software TPM.
//! The AK is made once and kept in `<work_dir>/tls/` (`ak.pub`, `ak.priv`:
//! its public area and its private part wrapped by the EK, usable in this
//! TPM only); it is made again if the TPM no longer loads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use keel_api::pb;

pub use super::esapi::EsapiAttestor;

/// `--tpm auto`: the kernel's resource manager, then the raw device.
pub const DEVICES: [&str; 2] = ["dev/tpmrm0", "dev/tpm0"];

#[derive(Debug, thiserror::Error)]
pub enum AttestorError {
    #[error("cannot open the tpm at {tcti}: {reason}")]
    Open { tcti: String, reason: String },
    #[error("endorsement key: {0}")]
    EndorsementKey(String),
    #[error("attestation key: {0}")]
    AttestationKey(String),
    #[error("activating the master's credential: {0}")]
    Activate(String),
    #[error("quote: {0}")]
    Quote(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the challenge is malformed: {0}")]
    Challenge(String),
    #[error("the tpm task failed: {0}")]
    Task(String),
}

/// What a registration carries about the TPM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// `TPMT_PUBLIC`.
    pub ek_public: Vec<u8>,
    /// DER; empty when the TPM holds none.
    pub ek_certificate: Vec<u8>,
    /// `TPMT_PUBLIC`.
    pub ak_public: Vec<u8>,
}

/// The master's challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChallengeIn {
    pub credential_blob: Vec<u8>,
    pub encrypted_secret: Vec<u8>,
    pub nonce: Vec<u8>,
    /// SHA-256 bank.
    pub pcrs: Vec<u32>,
}

/// The agent's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub secret: Vec<u8>,
    /// `TPMS_ATTEST`.
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
    pub pcr_values: Vec<Vec<u8>>,
}

/// The TPM, as admission uses it. Calls block (a TPM takes from
/// milliseconds to seconds): run them off the async runtime.
pub trait Attestor: Send + Sync + std::fmt::Debug {
    /// The EK, its certificate if any, and the AK (made and kept the
    /// first time).
    fn evidence(&self) -> Result<Evidence, AttestorError>;
    /// Activates the credential for the AK under the EK, then quotes.
    fn answer(&self, challenge: &ChallengeIn) -> Result<Answer, AttestorError>;
}

/// The TCTI `--tpm` names: `none`, `auto` (the first of [`DEVICES`] under
/// `root`, none without one), or a tpm2-tss TCTI string
/// (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
pub fn resolve(flag: &str, root: &Path) -> Option<String> {
    match flag {
        "none" | "" => None,
        "auto" => DEVICES
            .iter()
            .map(|d| root.join(d))
            .find(|p| p.exists())
            .map(|p| format!("device:{}", p.display())),
        tcti => Some(tcti.to_string()),
    }
}

/// The TPM's evidence for a registration, off the runtime; `None` (and
/// said) when the TPM fails: the registration goes on without it.
pub async fn evidence(attestor: Arc<dyn Attestor>) -> Option<pb::TpmEvidence> {
    let made = tokio::task::spawn_blocking(move || attestor.evidence())
        .await
        .map_err(|e| AttestorError::Task(e.to_string()))
        .and_then(|r| r);
    match made {
        Ok(evidence) => Some(evidence.into()),
        Err(e) => {
            tracing::warn!(error = %e, "no tpm evidence for this registration");
            None
        }
    }
}

/// The TPM's answer to the master's challenge, off the runtime.
pub async fn answer(
    attestor: Arc<dyn Attestor>,
    challenge: &pb::TpmChallenge,
) -> Result<pb::TpmResponse, AttestorError> {
    let challenge = ChallengeIn::from(challenge);
    let started = Instant::now();
    let answered = tokio::task::spawn_blocking(move || attestor.answer(&challenge))
        .await
        .map_err(|e| AttestorError::Task(e.to_string()))??;
    tracing::info!(took = ?started.elapsed(), "answered the master's tpm challenge");
    Ok(answered.into())
}

/// Where the AK is kept.
pub(crate) fn ak_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ak.pub"), dir.join("ak.priv"))
}

impl From<&pb::TpmChallenge> for ChallengeIn {
    fn from(c: &pb::TpmChallenge) -> Self {
        ChallengeIn {
            credential_blob: c.credential_blob.clone(),
            encrypted_secret: c.encrypted_secret.clone(),
            nonce: c.nonce.clone(),
            pcrs: c.pcrs.clone(),
        }
    }
}

impl From<Evidence> for pb::TpmEvidence {
    fn from(e: Evidence) -> Self {
        pb::TpmEvidence {
            ek_public: e.ek_public,
            ek_certificate: e.ek_certificate,
            ak_public: e.ak_public,
        }
    }
}

impl From<Answer> for pb::TpmResponse {
    fn from(a: Answer) -> Self {
        pb::TpmResponse {
            secret: a.secret,
            quote_attest: a.attest,
            quote_signature: a.signature,
            pcr_values: a.pcr_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_names_a_tcti() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(resolve("none", root.path()), None);
        assert_eq!(resolve("auto", root.path()), None);
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/tpm0"), "").unwrap();
        let raw = format!("device:{}", root.path().join("dev/tpm0").display());
        assert_eq!(resolve("auto", root.path()), Some(raw));
        std::fs::write(root.path().join("dev/tpmrm0"), "").unwrap();
        let rm = format!("device:{}", root.path().join("dev/tpmrm0").display());
        assert_eq!(resolve("auto", root.path()), Some(rm));
        assert_eq!(
            resolve("swtpm:port=1", root.path()),
            Some("swtpm:port=1".into())
        );
    }
}
