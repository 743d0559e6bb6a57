//! Endorsement keys of TPM admission: what operators decided, recorded
//! through the registry ([`crate::registry::eks`]), and the agents that
//! wait for a decision.

use super::{Master, MasterError, unix_now};
use crate::registry::{Command, EkCommand, EkRecord, EkState};

/// How often a pending agent that keeps retrying is recorded as seen
/// again: it retries within a minute, a write each time is not needed.
const SEEN_AGAIN: f64 = 600.0;

impl Master {
    /// The EK with `fingerprint`, if operators or agents made it known
    /// (the leader's copy, or the committed registry on a follower).
    pub fn endorsement_key(&self, fingerprint: &str) -> Option<EkRecord> {
        if self.serving() {
            self.lock()
                .engine
                .registry()
                .endorsement_key(fingerprint)
                .cloned()
        } else {
            self.replicator
                .registry()
                .endorsement_key(fingerprint)
                .cloned()
        }
    }

    /// Every EK the registry keeps.
    pub fn endorsement_keys(&self) -> Vec<EkRecord> {
        self.registry().endorsement_keys().cloned().collect()
    }

    async fn commit_ek(&self, cmd: EkCommand) -> Result<(), MasterError> {
        let w = self.write().await;
        let cmd = Command::Ek(cmd);
        self.with(|e, _| e.registry().validate(&cmd))?;
        self.commit(&w, cmd).await?;
        Ok(())
    }

    /// An attested agent whose EK nobody allowed: recorded as pending,
    /// or as seen again (at most every ten minutes, or when it says
    /// another hostname or address).
    pub async fn ek_pending(
        &self,
        fingerprint: &str,
        hostname: &str,
        ip: &str,
    ) -> Result<(), MasterError> {
        let now = unix_now();
        let known = self.endorsement_key(fingerprint);
        let recent = known.as_ref().is_some_and(|r| {
            r.state == EkState::Pending
                && r.hostname == hostname
                && r.ip == ip
                && now - r.last_seen < SEEN_AGAIN
        });
        if recent {
            return Ok(());
        }
        self.commit_ek(EkCommand::Pending {
            fingerprint: fingerprint.to_string(),
            hostname: hostname.to_string(),
            ip: ip.to_string(),
            at: now,
        })
        .await?;
        if known.is_none() {
            tracing::warn!(%fingerprint, %hostname, %ip,
                "agent pending: its TPM is attested but its endorsement key is not allowed; \
                 keelctl agents approve {}", &fingerprint[..crate::registry::eks::SHORT_ID]);
        }
        Ok(())
    }

    /// A pending EK that is allowed now (the allow-list, a manufacturer's
    /// certificate) leaves the pending list; a failure is only said.
    pub async fn ek_allowed(&self, fingerprint: &str) {
        let pending = self
            .endorsement_key(fingerprint)
            .is_some_and(|r| r.state == EkState::Pending);
        if !pending {
            return;
        }
        let forget = EkCommand::Forget {
            fingerprint: fingerprint.to_string(),
        };
        if let Err(e) = self.commit_ek(forget).await {
            tracing::warn!(%fingerprint, error = %e, "an allowed EK stays on the pending list");
        }
    }

    /// Approves (or denies) the EK with `fingerprint`.
    pub async fn decide_ek(&self, fingerprint: &str, approve: bool) -> Result<(), MasterError> {
        let at = unix_now();
        let fingerprint = fingerprint.to_string();
        let cmd = match approve {
            true => EkCommand::Approve {
                fingerprint: fingerprint.clone(),
                at,
            },
            false => EkCommand::Deny {
                fingerprint: fingerprint.clone(),
                at,
            },
        };
        self.commit_ek(cmd).await?;
        tracing::info!(%fingerprint, approved = approve, "endorsement key decided");
        if !approve {
            // Agents holding a certificate that names the key are refused
            // at their next registration (`admission::revoked`); their
            // sessions end now.
            let reason = crate::admission::AdmissionError::EkRevoked(
                fingerprint
                    .get(..crate::registry::eks::SHORT_ID)
                    .unwrap_or(&fingerprint)
                    .to_string(),
            )
            .to_string();
            self.with_links(|state, _| {
                let agents = state.links.agents_with_ek(&fingerprint);
                state.engine.refuse_agent_sessions(&agents, &reason);
            });
        }
        Ok(())
    }
}
