//! Framework commands: subscribe (add / re-add), update, remove.
//!
//! The registry keeps each framework's `FrameworkInfo` (typed, with its id)
//! so that a new master leader knows every framework and its failover
//! timeout. Connection state is not replicated: it lives in the engine.

use keel_api::mesos::{FrameworkInfo, Id};
use serde::{Deserialize, Serialize};

use super::{Applied, Registry, RegistryError};

/// How many removed frameworks are remembered (for `completed_frameworks`
/// and to refuse their ids).
const REMOVED_KEPT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkRecord {
    pub id: String,
    /// `FrameworkInfo`, `id` included.
    pub info: FrameworkInfo,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedFramework {
    pub id: String,
    pub info: FrameworkInfo,
    pub registered_time: f64,
    pub removed_time: f64,
}

fn with_id(info: &FrameworkInfo, id: &str) -> FrameworkInfo {
    FrameworkInfo {
        id: Some(Id::new(id)),
        ..info.clone()
    }
}

impl Registry {
    pub fn frameworks(&self) -> impl Iterator<Item = &FrameworkRecord> {
        self.frameworks.values()
    }

    pub fn framework(&self, id: &str) -> Option<&FrameworkRecord> {
        self.frameworks.get(id)
    }

    pub fn removed_frameworks(&self) -> impl Iterator<Item = &RemovedFramework> {
        self.removed_frameworks.values()
    }

    /// Keeps the removed frameworks `keep` accepts: for a view's copy
    /// (what a reader may see), never on the replicated registry.
    pub fn retain_removed_frameworks(&mut self, keep: impl Fn(&RemovedFramework) -> bool) {
        self.removed_frameworks.retain(|_, f| keep(f));
    }

    pub fn is_removed_framework(&self, id: &str) -> bool {
        self.removed_frameworks.contains_key(id)
    }

    pub(super) fn validate_readd(&self, framework_id: &str) -> Result<(), RegistryError> {
        if !keel_api::valid_id(framework_id) {
            Err(RegistryError::InvalidFrameworkId(framework_id.to_string()))
        } else if self.removed_frameworks.contains_key(framework_id) {
            Err(RegistryError::FrameworkRemoved(framework_id.to_string()))
        } else {
            Ok(())
        }
    }

    pub(super) fn known_framework(&self, framework_id: &str) -> Result<(), RegistryError> {
        if self.frameworks.contains_key(framework_id) {
            Ok(())
        } else {
            Err(RegistryError::UnknownFramework(framework_id.to_string()))
        }
    }

    pub(super) fn apply_add_framework(&mut self, info: &FrameworkInfo, at: f64) -> Applied {
        let master_id = self.master_id.clone().unwrap_or_default();
        let framework_id = format!("{master_id}-{:04}", self.next_framework_seq);
        self.next_framework_seq += 1;
        self.frameworks.insert(
            framework_id.clone(),
            FrameworkRecord {
                id: framework_id.clone(),
                info: with_id(info, &framework_id),
                registered_time: at,
                reregistered_time: None,
            },
        );
        Applied::FrameworkAdded { framework_id }
    }

    pub(super) fn apply_readd_framework(
        &mut self,
        framework_id: &str,
        info: &FrameworkInfo,
        at: f64,
    ) -> Applied {
        let info = with_id(info, framework_id);
        match self.frameworks.get_mut(framework_id) {
            Some(rec) => {
                rec.info = info;
                rec.reregistered_time = Some(at);
            }
            None => {
                self.frameworks.insert(
                    framework_id.to_string(),
                    FrameworkRecord {
                        id: framework_id.to_string(),
                        info,
                        registered_time: at,
                        reregistered_time: Some(at),
                    },
                );
            }
        }
        let prefix = format!("{}-", self.master_id.as_deref().unwrap_or_default());
        if let Some(seq) = framework_id
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
        {
            self.next_framework_seq = self.next_framework_seq.max(seq.saturating_add(1));
        }
        Applied::FrameworkReadded {
            framework_id: framework_id.to_string(),
        }
    }

    pub(super) fn apply_update_framework(
        &mut self,
        framework_id: &str,
        info: &FrameworkInfo,
    ) -> Result<Applied, RegistryError> {
        let rec = self
            .frameworks
            .get_mut(framework_id)
            .ok_or_else(|| RegistryError::UnknownFramework(framework_id.to_string()))?;
        rec.info = with_id(info, framework_id);
        Ok(Applied::FrameworkUpdated {
            framework_id: framework_id.to_string(),
        })
    }

    pub(super) fn apply_remove_framework(
        &mut self,
        framework_id: &str,
        at: f64,
    ) -> Result<Applied, RegistryError> {
        let rec = self
            .frameworks
            .remove(framework_id)
            .ok_or_else(|| RegistryError::UnknownFramework(framework_id.to_string()))?;
        self.removed_frameworks.insert(
            framework_id.to_string(),
            RemovedFramework {
                id: rec.id,
                info: rec.info,
                registered_time: rec.registered_time,
                removed_time: at,
            },
        );
        if self.removed_frameworks.len() > REMOVED_KEPT {
            let oldest = self
                .removed_frameworks
                .values()
                .min_by(|a, b| {
                    a.removed_time
                        .total_cmp(&b.removed_time)
                        .then(a.id.cmp(&b.id))
                })
                .map(|r| r.id.clone());
            if let Some(id) = oldest {
                self.removed_frameworks.remove(&id);
            }
        }
        Ok(Applied::FrameworkRemoved {
            framework_id: framework_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Command;
    use serde_json::json;

    fn fw(v: serde_json::Value) -> FrameworkInfo {
        keel_api::mesos::parse(v).unwrap()
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
        r
    }

    #[test]
    fn frameworks_get_four_digit_ids_and_keep_their_info() {
        let mut r = registry();
        let a = r
            .apply(&Command::AddFramework {
                info: fw(json!({"user": "u", "name": "a"})),
                at: 1.0,
            })
            .unwrap();
        assert_eq!(
            a,
            Applied::FrameworkAdded {
                framework_id: "m-0000".into()
            }
        );
        let rec = r.framework("m-0000").unwrap();
        assert_eq!(rec.info.id.as_ref().unwrap().value, "m-0000");
        assert_eq!(rec.info.name, "a");
    }

    #[test]
    fn readd_update_remove() {
        let mut r = registry();
        r.apply(&Command::ReaddFramework {
            framework_id: "m-0041".into(),
            info: fw(json!({"user": "u", "name": "old"})),
            at: 1.0,
        })
        .unwrap();
        // Ids handed out later skip past a re-added one.
        r.apply(&Command::AddFramework {
            info: fw(json!({"user": "u", "name": "new"})),
            at: 2.0,
        })
        .unwrap();
        assert!(r.framework("m-0042").is_some());
        r.apply(&Command::UpdateFramework {
            framework_id: "m-0041".into(),
            info: fw(json!({"user": "u", "name": "renamed"})),
        })
        .unwrap();
        assert_eq!(r.framework("m-0041").unwrap().info.name, "renamed");
        r.apply(&Command::RemoveFramework {
            framework_id: "m-0041".into(),
            at: 3.0,
        })
        .unwrap();
        assert!(r.framework("m-0041").is_none());
        assert!(r.is_removed_framework("m-0041"));
        // A removed framework cannot come back under its id.
        assert_eq!(
            r.apply(&Command::ReaddFramework {
                framework_id: "m-0041".into(),
                info: fw(json!({"user": "u", "name": "x"})),
                at: 4.0
            }),
            Err(RegistryError::FrameworkRemoved("m-0041".into()))
        );
        assert_eq!(
            r.apply(&Command::RemoveFramework {
                framework_id: "m-9".into(),
                at: 4.0
            }),
            Err(RegistryError::UnknownFramework("m-9".into()))
        );
    }
}
