//! TPM endorsement keys the operators decided on (`--agent-admission
//! tpm`, `docs/design/0006-trust.md`): an agent whose TPM passed the
//! credential activation and the quote, but whose EK is neither on
//! `--tpm-ek-allow` nor certified by a `--tpm-ek-ca`, is recorded as
//! *pending* and gets no session; `keelctl agents approve` makes its EK
//! *approved* (the allow-list is the file and these), `deny` makes it
//! *denied* (refused without being recorded again).
//!
//! ```text
//!   (new)               --Pending-->  pending  (seen again: Pending)
//!   pending             --Forget--->  (gone: allowed by the list or a CA)
//!   (new), pending, denied   --Approve-->  approved
//!   (new), pending, approved --Deny----->  denied
//! ```
//!
//! EKs are known by their fingerprint (`keel_attest::key::fingerprint`,
//! 64 lower-case hex digits); operators name one by its first 16 digits.
//! One command family, [`EkCommand`], inside
//! [`Command::Ek`](super::Command::Ek).

use serde::{Deserialize, Serialize};

use super::limits::MAX_HOSTNAME;
use super::{Applied, Registry, RegistryError};

/// Most EKs kept (pending, approved and denied together).
pub const MAX_EKS: usize = 100_000;
/// Most EKs pending at once: past that, new ones are refused (and said
/// so) until operators decide on some.
pub const MAX_PENDING: usize = 1_000;
/// Digits of a fingerprint that name it (`keelctl agents pending`).
pub const SHORT_ID: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EkState {
    Pending,
    Approved,
    Denied,
}

impl EkState {
    pub fn as_str(self) -> &'static str {
        match self {
            EkState::Pending => "pending",
            EkState::Approved => "approved",
            EkState::Denied => "denied",
        }
    }
}

/// An endorsement key as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EkRecord {
    /// 64 lower-case hex digits.
    pub fingerprint: String,
    pub state: EkState,
    /// What the agent said of itself when last seen (empty for an EK
    /// approved before any agent showed it).
    pub hostname: String,
    pub ip: String,
    /// Seconds since the epoch.
    pub first_seen: f64,
    pub last_seen: f64,
    pub decided_at: Option<f64>,
}

impl EkRecord {
    pub fn id(&self) -> &str {
        &self.fingerprint[..SHORT_ID]
    }
}

/// A change to the EKs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EkCommand {
    /// An attested agent whose EK nobody allowed: recorded as pending (or
    /// seen again). Refused for an approved or denied EK.
    Pending {
        fingerprint: String,
        hostname: String,
        ip: String,
        at: f64,
    },
    /// Allowed from now on (pending, denied or not seen yet).
    Approve { fingerprint: String, at: f64 },
    /// Refused from now on.
    Deny { fingerprint: String, at: f64 },
    /// A pending EK that is allowed now (put on the allow-list, or its
    /// certificate accepted): no longer waiting for an operator.
    Forget { fingerprint: String },
}

/// Why an EK command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum EkRefusal {
    #[error("invalid EK fingerprint {0:?} (64 lower-case hex digits)")]
    Fingerprint(String),
    #[error("EK {0} is already {1}")]
    Decided(String, String),
    #[error("{MAX_PENDING} agents are pending already: approve or deny some first")]
    TooManyPending,
    #[error("{MAX_EKS} endorsement keys are kept already")]
    TooMany,
    #[error("EK {0} is not pending")]
    NotPending(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
}

/// A fingerprint: 64 lower-case hex digits.
pub fn valid_fingerprint(f: &str) -> bool {
    f.len() == 64 && f.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn text(what: &'static str, s: &str, max: usize) -> Result<(), EkRefusal> {
    if s.len() > max || s.chars().any(char::is_control) {
        return Err(EkRefusal::Invalid {
            what: what.into(),
            why: format!("at most {max} bytes, no control characters"),
        });
    }
    Ok(())
}

impl EkCommand {
    fn fingerprint(&self) -> &str {
        match self {
            EkCommand::Pending { fingerprint, .. }
            | EkCommand::Approve { fingerprint, .. }
            | EkCommand::Deny { fingerprint, .. }
            | EkCommand::Forget { fingerprint } => fingerprint,
        }
    }

    fn at(&self) -> f64 {
        match self {
            EkCommand::Pending { at, .. }
            | EkCommand::Approve { at, .. }
            | EkCommand::Deny { at, .. } => *at,
            EkCommand::Forget { .. } => 0.0,
        }
    }
}

impl Registry {
    pub fn endorsement_keys(&self) -> impl Iterator<Item = &EkRecord> {
        self.eks.values()
    }

    pub fn endorsement_key(&self, fingerprint: &str) -> Option<&EkRecord> {
        self.eks.get(fingerprint)
    }

    pub(super) fn validate_ek(&self, cmd: &EkCommand) -> Result<(), RegistryError> {
        let f = cmd.fingerprint();
        let checked = if !valid_fingerprint(f) {
            Err(EkRefusal::Fingerprint(f.chars().take(80).collect()))
        } else if !cmd.at().is_finite() {
            Err(EkRefusal::Invalid {
                what: "time".into(),
                why: "not finite".into(),
            })
        } else if !self.eks.contains_key(f) && self.eks.len() >= MAX_EKS {
            Err(EkRefusal::TooMany)
        } else {
            match cmd {
                EkCommand::Pending { hostname, ip, .. } => text("hostname", hostname, MAX_HOSTNAME)
                    .and_then(|()| text("ip", ip, MAX_HOSTNAME))
                    .and_then(|()| match self.eks.get(f) {
                        Some(r) if r.state != EkState::Pending => {
                            Err(EkRefusal::Decided(f.into(), r.state.as_str().into()))
                        }
                        Some(_) => Ok(()),
                        None => {
                            let pending = self
                                .eks
                                .values()
                                .filter(|r| r.state == EkState::Pending)
                                .count();
                            match pending >= MAX_PENDING {
                                true => Err(EkRefusal::TooManyPending),
                                false => Ok(()),
                            }
                        }
                    }),
                EkCommand::Approve { .. } | EkCommand::Deny { .. } => Ok(()),
                EkCommand::Forget { .. } => match self.eks.get(f) {
                    Some(r) if r.state == EkState::Pending => Ok(()),
                    _ => Err(EkRefusal::NotPending(f.into())),
                },
            }
        };
        checked.map_err(RegistryError::Ek)
    }

    pub(super) fn apply_ek(&mut self, cmd: &EkCommand) -> Applied {
        let fingerprint = cmd.fingerprint().to_string();
        if let EkCommand::Forget { .. } = cmd {
            self.eks.remove(&fingerprint);
            return Applied::EndorsementKeyForgotten { fingerprint };
        }
        let at = cmd.at();
        let record = self
            .eks
            .entry(fingerprint.clone())
            .or_insert_with(|| EkRecord {
                fingerprint: fingerprint.clone(),
                state: EkState::Pending,
                hostname: String::new(),
                ip: String::new(),
                first_seen: at,
                last_seen: at,
                decided_at: None,
            });
        match cmd {
            EkCommand::Pending { hostname, ip, .. } => {
                record.hostname.clone_from(hostname);
                record.ip.clone_from(ip);
                record.last_seen = at;
            }
            EkCommand::Approve { .. } => {
                record.state = EkState::Approved;
                record.decided_at = Some(at);
            }
            EkCommand::Deny { .. } => {
                record.state = EkState::Denied;
                record.decided_at = Some(at);
            }
            EkCommand::Forget { .. } => {}
        }
        Applied::EndorsementKey {
            fingerprint,
            state: record.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
        r
    }

    fn pending(f: &str, at: f64) -> Command {
        Command::Ek(EkCommand::Pending {
            fingerprint: f.into(),
            hostname: "node-1".into(),
            ip: "10.0.0.1".into(),
            at,
        })
    }

    #[test]
    fn pending_keys_are_approved_or_denied() {
        let mut r = registry();
        let f = "ab".repeat(32);
        r.apply(&pending(&f, 1.0)).unwrap();
        r.apply(&pending(&f, 2.0)).unwrap();
        let rec = r.endorsement_key(&f).unwrap();
        assert_eq!(
            (rec.state, rec.first_seen, rec.last_seen),
            (EkState::Pending, 1.0, 2.0)
        );
        assert_eq!(rec.id(), "abababababababab");
        r.apply(&Command::Ek(EkCommand::Approve {
            fingerprint: f.clone(),
            at: 3.0,
        }))
        .unwrap();
        assert_eq!(r.endorsement_key(&f).unwrap().state, EkState::Approved);
        // Decided: not pending again.
        assert_eq!(
            r.validate(&pending(&f, 4.0)),
            Err(RegistryError::Ek(EkRefusal::Decided(
                f.clone(),
                "approved".into()
            )))
        );
        r.apply(&Command::Ek(EkCommand::Deny {
            fingerprint: f.clone(),
            at: 5.0,
        }))
        .unwrap();
        assert_eq!(r.endorsement_key(&f).unwrap().state, EkState::Denied);
        // An EK approved before any agent showed it.
        let g = "cd".repeat(32);
        r.apply(&Command::Ek(EkCommand::Approve {
            fingerprint: g.clone(),
            at: 6.0,
        }))
        .unwrap();
        assert_eq!(r.endorsement_key(&g).unwrap().hostname, "");
        // Only a pending EK is forgotten.
        let forget = |f: &str| {
            Command::Ek(EkCommand::Forget {
                fingerprint: f.into(),
            })
        };
        assert_eq!(
            r.validate(&forget(&g)),
            Err(RegistryError::Ek(EkRefusal::NotPending(g.clone())))
        );
        let h = "ef".repeat(32);
        r.apply(&pending(&h, 7.0)).unwrap();
        r.apply(&forget(&h)).unwrap();
        assert!(r.endorsement_key(&h).is_none());
    }

    #[test]
    fn bad_commands_are_refused() {
        let r = registry();
        for f in ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32)] {
            assert!(matches!(
                r.validate(&pending(&f, 1.0)),
                Err(RegistryError::Ek(EkRefusal::Fingerprint(_)))
            ));
        }
        assert!(r.validate(&pending(&"ab".repeat(32), f64::NAN)).is_err());
        let bad_host = Command::Ek(EkCommand::Pending {
            fingerprint: "ab".repeat(32),
            hostname: "a\nb".into(),
            ip: String::new(),
            at: 1.0,
        });
        assert!(r.validate(&bad_host).is_err());
    }

    #[test]
    fn pending_keys_are_bounded() {
        let mut r = registry();
        for i in 0..MAX_PENDING {
            r.apply(&pending(&format!("{i:064x}"), 1.0)).unwrap();
        }
        assert_eq!(
            r.validate(&pending(&"ff".repeat(32), 1.0)),
            Err(RegistryError::Ek(EkRefusal::TooManyPending))
        );
        // Seen again, or decided: still fine.
        r.apply(&pending(&format!("{:064x}", 0), 2.0)).unwrap();
        r.apply(&Command::Ek(EkCommand::Approve {
            fingerprint: "ff".repeat(32),
            at: 2.0,
        }))
        .unwrap();
    }

    #[test]
    fn commands_read_back_from_the_log() {
        let cmd = pending(&"ab".repeat(32), 1.5);
        let text = serde_json::to_string(&cmd).unwrap();
        assert!(text.contains(r#""command":"ek""#), "{text}");
        assert!(text.contains(r#""op":"pending""#), "{text}");
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), cmd);
    }
}
