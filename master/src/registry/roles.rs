//! Role commands: weights, quotas, dynamic reservations.

use keel_api::resources::{Resource, Resources};
use serde::{Deserialize, Serialize};

use super::{Applied, Registry, RegistryError};
use crate::serde_mesos;

/// `UPDATE_QUOTA`'s `QuotaConfig`: guarantees and limits (scalars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaConfig {
    pub role: String,
    #[serde(with = "serde_mesos::resources")]
    pub guarantees: Resources,
    #[serde(with = "serde_mesos::resources")]
    pub limits: Resources,
}

/// Mesos role names: non-empty, no `*` (that is "unreserved"), path
/// segments that are not `.`/`..`, no leading `-`, no whitespace or control
/// characters.
pub fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role != "*"
        && !role.starts_with('-')
        && role
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !role
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '"'))
}

/// The same resources, unreserved (role `*`).
pub fn unreserved(rs: &Resources) -> Resources {
    Resources(
        rs.iter()
            .map(|r| Resource {
                role: "*".into(),
                ..r.clone()
            })
            .collect(),
    )
}

/// The agent's static resources with `dynamic` reservations carved out of
/// the unreserved part; `None` when they do not fit.
pub fn apply_reservations(total: &Resources, dynamic: &Resources) -> Option<Resources> {
    let mut out = total.checked_sub(&unreserved(dynamic))?;
    out.add(dynamic);
    Some(out)
}

impl Registry {
    pub fn weights(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.weights.iter()
    }

    pub fn quotas(&self) -> impl Iterator<Item = &QuotaConfig> {
        self.quotas.values()
    }

    pub(super) fn validate_weights(weights: &[(String, f64)]) -> Result<(), RegistryError> {
        for (role, w) in weights {
            if !valid_role(role) {
                return bad(format!("invalid role '{role}'"));
            }
            if !w.is_finite() || *w <= 0.0 {
                return bad(format!("weight of role '{role}' must be positive, got {w}"));
            }
        }
        Ok(())
    }

    pub(super) fn validate_quotas(configs: &[QuotaConfig]) -> Result<(), RegistryError> {
        for q in configs {
            super::limits::resources("quota guarantees", &q.guarantees)?;
            super::limits::resources("quota limits", &q.limits)?;
            if !valid_role(&q.role) {
                return bad(format!("invalid role '{}'", q.role));
            }
            for r in q.guarantees.iter().chain(q.limits.iter()) {
                let v = q.guarantees.scalar(&r.name).max(q.limits.scalar(&r.name));
                if !v.is_finite() || v < 0.0 {
                    return bad(format!("quota of role '{}': invalid {}", q.role, r.name));
                }
            }
            for g in q.guarantees.iter() {
                if q.limits.has(&g.name) && q.guarantees.scalar(&g.name) > q.limits.scalar(&g.name)
                {
                    return bad(format!(
                        "quota of role '{}': guarantee of {} exceeds its limit",
                        q.role, g.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate_reserve(
        &self,
        agent_id: &str,
        resources: &Resources,
    ) -> Result<(), RegistryError> {
        let agent = self.known_agent(agent_id)?;
        if resources.is_empty() {
            return bad("no resources to reserve".into());
        }
        super::limits::resources("reservation", resources)?;
        if let Some(r) = resources.iter().find(|r| !valid_role(&r.role)) {
            return bad(format!("cannot reserve {} for role '{}'", r.name, r.role));
        }
        let mut wanted = agent.dynamic_reservations.clone();
        wanted.add(resources);
        match apply_reservations(&agent.info.resources, &wanted) {
            Some(_) => Ok(()),
            None => bad(format!(
                "agent {agent_id} does not have {resources} unreserved"
            )),
        }
    }

    pub(super) fn validate_unreserve(
        &self,
        agent_id: &str,
        resources: &Resources,
    ) -> Result<(), RegistryError> {
        let agent = self.known_agent(agent_id)?;
        if resources.is_empty()
            || !agent.dynamic_reservations.contains(resources)
            || !agent.total_resources().contains(resources)
        {
            return bad(format!(
                "agent {agent_id} has no dynamic reservation of {resources}"
            ));
        }
        Ok(())
    }

    pub(super) fn apply_weights(&mut self, weights: &[(String, f64)]) -> Applied {
        for (role, w) in weights {
            self.weights.insert(role.clone(), *w);
        }
        Applied::WeightsUpdated
    }

    pub(super) fn apply_quotas(&mut self, configs: &[QuotaConfig]) -> Applied {
        for q in configs {
            if q.guarantees.is_empty() && q.limits.is_empty() {
                self.quotas.remove(&q.role);
            } else {
                self.quotas.insert(q.role.clone(), q.clone());
            }
        }
        Applied::QuotasUpdated
    }

    pub(super) fn apply_reserve(
        &mut self,
        agent_id: &str,
        resources: &Resources,
    ) -> Result<Applied, RegistryError> {
        let agent = self.known_agent_mut(agent_id)?;
        agent.dynamic_reservations.add(resources);
        Ok(Applied::AgentResourcesUpdated {
            agent_id: agent_id.to_string(),
        })
    }

    pub(super) fn apply_unreserve(
        &mut self,
        agent_id: &str,
        resources: &Resources,
    ) -> Result<Applied, RegistryError> {
        let agent = self.known_agent_mut(agent_id)?;
        let left = agent
            .dynamic_reservations
            .checked_sub(resources)
            .ok_or_else(|| {
                RegistryError::InvalidRequest(format!(
                    "agent {agent_id} has no dynamic reservation of {resources}"
                ))
            })?;
        agent.dynamic_reservations = left;
        Ok(Applied::AgentResourcesUpdated {
            agent_id: agent_id.to_string(),
        })
    }
}

fn bad(m: String) -> Result<(), RegistryError> {
    Err(RegistryError::InvalidRequest(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::AgentInfo;
    use crate::registry::Command;
    use keel_api::attributes::Attributes;
    use keel_api::inventory::Inventory;

    fn registry_with_agent() -> Registry {
        let mut r = Registry::default();
        r.apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
        r.apply(&Command::AdmitAgent {
            info: Box::new(AgentInfo {
                hostname: "h".into(),
                ip: "127.0.0.1".into(),
                port: 5051,
                resources: Resources::parse("cpus:4;mem:4096;disk(static):100").unwrap(),
                attributes: Attributes::default(),
                version: "0".into(),
                inventory: Inventory::default(),
            }),
            at: 1.0,
        })
        .unwrap();
        r
    }

    #[test]
    fn roles_are_validated() {
        assert!(valid_role("eng"));
        assert!(valid_role("eng/web"));
        for bad in ["", "*", "-x", "a//b", "a/./b", "..", "a b"] {
            assert!(!valid_role(bad), "{bad}");
        }
    }

    #[test]
    fn reserve_and_unreserve() {
        let mut r = registry_with_agent();
        let res = Resources::parse("cpus(eng):1;mem(eng):1024").unwrap();
        r.apply(&Command::ReserveResources {
            agent_id: "m-S0".into(),
            resources: res.clone(),
        })
        .unwrap();
        let total = r.agent("m-S0").unwrap().total_resources();
        assert_eq!(total.scalar("cpus"), 4.0);
        assert!(total.contains(&res));
        assert!(total.contains(&Resources::parse("cpus:3;mem:3072;disk(static):100").unwrap()));
        // Cannot reserve more than is unreserved.
        assert!(
            r.apply(&Command::ReserveResources {
                agent_id: "m-S0".into(),
                resources: Resources::parse("cpus(eng):4").unwrap()
            })
            .is_err()
        );
        // Nor unreserve what was not reserved.
        assert!(
            r.apply(&Command::UnreserveResources {
                agent_id: "m-S0".into(),
                resources: Resources::parse("cpus(ops):1").unwrap()
            })
            .is_err()
        );
        r.apply(&Command::UnreserveResources {
            agent_id: "m-S0".into(),
            resources: res,
        })
        .unwrap();
        assert_eq!(
            r.agent("m-S0").unwrap().total_resources(),
            r.agent("m-S0").unwrap().info.resources
        );
    }

    #[test]
    fn weights_and_quotas() {
        let mut r = registry_with_agent();
        assert!(
            r.apply(&Command::UpdateWeights {
                weights: vec![("eng".into(), -1.0)]
            })
            .is_err()
        );
        r.apply(&Command::UpdateWeights {
            weights: vec![("eng".into(), 3.0)],
        })
        .unwrap();
        assert_eq!(r.weights().next(), Some((&"eng".to_string(), &3.0)));
        let q = QuotaConfig {
            role: "eng".into(),
            guarantees: Resources::parse("cpus:2").unwrap(),
            limits: Resources::parse("cpus:1").unwrap(),
        };
        assert!(
            r.apply(&Command::UpdateQuotas {
                configs: vec![q.clone()]
            })
            .is_err()
        );
        let q = QuotaConfig {
            limits: Resources::parse("cpus:4").unwrap(),
            ..q
        };
        r.apply(&Command::UpdateQuotas {
            configs: vec![q.clone()],
        })
        .unwrap();
        assert_eq!(r.quotas().next(), Some(&q));
    }
}
