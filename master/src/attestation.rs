//! TPM admission at the edge (`--agent-admission tpm`,
//! `docs/design/0006-trust.md`): one attestation inside one agent
//! session, and the endorsement key policy's files.
//!
//! ```text
//! agent                                   master (this module)
//!   Register{tpm: EK, EK cert, AK} ---->  Challenge::new: secret -> MakeCredential(EK, name(AK)), nonce
//!                                  <----  TpmChallenge{credential, encrypted secret, nonce, PCRs 0-7}
//!   ActivateCredential(AK, EK)
//!   Quote(AK, nonce, PCRs)
//!   TpmResponse{secret, quote, sig} ---->  Challenge::verify: the secret, then the quote (both
//!                                          against this session's challenge, never apart)
//!                                          then the EK policy: admitted, pending or denied
//! ```
//!
//! The challenge lives in the session's task and nowhere else: an answer
//! from another stream, or a quote from an earlier session (another
//! nonce), cannot meet it.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use keel_api::pb::{self, agent_message::Msg as AgentMsg};
use keel_attest::{AllowList, Attested, BOOT_PCRS, Challenge, EkRoots, TpmPublic};
use tonic::Streaming;

use crate::admission::{EkVerdict, judge_ek};
use crate::core::SessionSender;
use crate::registry::EkState;

/// How long an agent may take to answer the challenge: a discrete TPM
/// takes seconds for the activation and the quote.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("--tpm-ek-allow {path}: {source}")]
    AllowList {
        path: PathBuf,
        source: keel_attest::PolicyError,
    },
    #[error("--tpm-ek-ca {path}: {source}")]
    Roots {
        path: PathBuf,
        source: keel_attest::PolicyError,
    },
    #[error(transparent)]
    Attest(#[from] keel_attest::AttestError),
    #[error("no answer to the TPM challenge within {0:?}")]
    Timeout(Duration),
    #[error("the agent answered the TPM challenge with something else")]
    NotAnAnswer,
    #[error("the session ended during the TPM challenge")]
    Closed,
}

/// `--tpm-ek-allow` and `--tpm-ek-ca`.
#[derive(Debug, Default)]
pub struct EkPolicy {
    /// Read at every attestation: an operator's edit applies to the next
    /// agent that registers.
    allow: Option<PathBuf>,
    roots: EkRoots,
}

impl EkPolicy {
    /// Checks that the allow-list reads and loads the CAs.
    pub fn new(
        allow: Option<PathBuf>,
        ca_dir: Option<PathBuf>,
    ) -> Result<EkPolicy, AttestationError> {
        if let Some(path) = &allow {
            let list = AllowList::load(path).map_err(|source| AttestationError::AllowList {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), entries = list.len(), "TPM EK allow-list");
        }
        let roots = match &ca_dir {
            Some(dir) => {
                let roots = EkRoots::load_dir(dir).map_err(|source| AttestationError::Roots {
                    path: dir.clone(),
                    source,
                })?;
                tracing::info!(dir = %dir.display(), certificates = roots.len(), "TPM manufacturer CAs");
                roots
            }
            None => EkRoots::default(),
        };
        Ok(EkPolicy { allow, roots })
    }

    /// Whether the allow-list file names `fingerprint` now (a file that
    /// stopped reading allows nobody, said in the log).
    fn listed(&self, fingerprint: &str) -> bool {
        let Some(path) = &self.allow else {
            return false;
        };
        match AllowList::load(path) {
            Ok(list) => list.contains(fingerprint),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "--tpm-ek-allow unreadable: it allows nobody");
                false
            }
        }
    }

    /// The verdict on an attested agent's EK (`ek_certificate`: DER, may
    /// be empty), given what the registry recorded for it.
    pub fn judge(
        &self,
        attested: &Attested,
        ek: &TpmPublic,
        ek_certificate: &[u8],
        recorded: Option<EkState>,
    ) -> EkVerdict {
        let certificate = (!ek_certificate.is_empty() && !self.roots.is_empty()).then(|| {
            self.roots
                .verify(ek_certificate, &ek.key, crate::core::unix_now() as i64)
        });
        judge_ek(self.listed(&attested.ek_fingerprint), recorded, certificate)
    }
}

/// Runs the challenge on the session: sends it on `tx`, reads the answer
/// from `inbound`, and checks it. The EK's parsed public area comes back
/// with what was attested.
pub async fn attest(
    evidence: &pb::TpmEvidence,
    tx: &SessionSender,
    inbound: &mut Streaming<pb::AgentMessage>,
) -> Result<(Attested, TpmPublic), AttestationError> {
    let (challenge, message) =
        Challenge::new(&evidence.ek_public, &evidence.ak_public, &BOOT_PCRS)?;
    let sent = pb::MasterMessage {
        msg: Some(pb::master_message::Msg::TpmChallenge(pb::TpmChallenge {
            credential_blob: message.credential.credential_blob,
            encrypted_secret: message.credential.encrypted_secret,
            nonce: message.nonce,
            pcrs: message.pcrs,
        })),
    };
    tx.send(Ok(sent))
        .await
        .map_err(|_| AttestationError::Closed)?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, inbound.next())
        .await
        .map_err(|_| AttestationError::Timeout(ANSWER_TIMEOUT))?;
    let response = match answer {
        Some(Ok(pb::AgentMessage {
            msg: Some(AgentMsg::TpmResponse(r)),
        })) => r,
        Some(Ok(_)) => return Err(AttestationError::NotAnAnswer),
        Some(Err(_)) | None => return Err(AttestationError::Closed),
    };
    let attested = challenge.verify(
        &response.secret,
        &response.quote_attest,
        &response.quote_signature,
        &response.pcr_values,
    )?;
    Ok((attested, challenge.endorsement_key().clone()))
}
