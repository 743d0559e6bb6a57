//! Persistent volumes: reserved disk turned into a named volume by an
//! ACCEPT's CREATE, kept across task and framework lifetimes, offered back
//! to its role, and returned to reserved disk by DESTROY.
//!
//! A volume's disk is carved out of the agent's total (see
//! [`AgentRecord::total_resources`](super::AgentRecord::total_resources)),
//! so the allocator never hands it out as plain disk.

use keel_api::mesos;
use keel_api::resources::{Resource, Resources, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Applied, Registry, RegistryError, roles::valid_role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// `disk.persistence.id`, unique per agent and role.
    pub id: String,
    pub role: String,
    pub principal: Option<String>,
    /// Size in MB.
    pub disk_mb: f64,
    pub container_path: String,
    /// `RW` or `RO`.
    pub mode: String,
}

impl Volume {
    /// The reserved disk the volume occupies.
    pub fn disk(&self) -> Resources {
        Resources(vec![Resource {
            name: "disk".into(),
            role: self.role.clone(),
            value: Value::Scalar(self.disk_mb),
        }])
    }

    /// Reads a v1 `Resource` carrying `disk.persistence`; `None` for
    /// resources that are not persistent volumes.
    pub fn from_resource(r: &mesos::Resource) -> Option<Result<Volume, RegistryError>> {
        let disk = r.disk.as_ref()?;
        let persistence = disk.persistence.as_ref()?;
        let id = persistence.id.clone();
        let bad = RegistryError::InvalidRequest;
        Some((|| {
            if r.name != "disk" {
                return Err(format!(
                    "volume {id}: only 'disk' resources can be persistent"
                ));
            }
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(format!("volume id '{id}' is invalid"));
            }
            let disk_mb = r
                .scalar
                .map(|s| s.value)
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("volume {id}: size must be a positive scalar"))?;
            let role = r
                .checked_role()
                .ok_or_else(|| format!("volume {id}: reservation has no role"))?
                .to_string();
            let volume = disk.volume.as_ref();
            let container_path = volume
                .map(|v| v.container_path.as_str())
                .filter(|p| !p.is_empty() && !p.starts_with('/') && !p.split('/').any(|s| s == ".."))
                .ok_or_else(|| format!("volume {id}: 'disk.volume.container_path' must be a relative path inside the sandbox"))?
                .to_string();
            Ok(Volume {
                id: id.clone(),
                role,
                principal: persistence.principal.clone(),
                disk_mb,
                container_path,
                mode: volume
                    .and_then(|v| v.mode.clone())
                    .unwrap_or_else(|| "RW".to_string()),
            })
        })()
        .map_err(bad))
    }

    /// The volume as a v1 `Resource` (pre-refinement `role`, or
    /// `reservations` with RESERVATION_REFINEMENT).
    pub fn to_resource(&self, allocation_role: Option<&str>, refinement: bool) -> mesos::Resource {
        use keel_api::resources::v1::{
            AllocationInfo, DiskInfo, Persistence, ReservationInfo, VolumeInfo,
        };
        let mut r = mesos::Resource::scalar("disk", self.disk_mb);
        r.disk = Some(DiskInfo {
            persistence: Some(Persistence {
                id: self.id.clone(),
                principal: self.principal.clone(),
            }),
            volume: Some(VolumeInfo {
                container_path: self.container_path.clone(),
                mode: Some(self.mode.clone()),
                host_path: None,
            }),
            source: None,
        });
        r.allocation_info = allocation_role.map(AllocationInfo::role);
        if refinement {
            r.role = None;
            r.reservations = Some(vec![ReservationInfo {
                kind: Some("DYNAMIC".into()),
                role: Some(self.role.clone()),
                ..ReservationInfo::default()
            }]);
        } else {
            r.role = Some(self.role.clone());
            r.reservation = Some(ReservationInfo::default());
        }
        r
    }

    /// [`Volume::to_resource`] as JSON.
    pub fn to_resource_json(&self, allocation_role: Option<&str>, refinement: bool) -> Json {
        serde_json::to_value(self.to_resource(allocation_role, refinement)).unwrap_or(Json::Null)
    }
}

impl Registry {
    pub(super) fn validate_create(
        &self,
        agent_id: &str,
        volumes: &[Volume],
    ) -> Result<(), RegistryError> {
        let bad = |m: String| Err(RegistryError::InvalidRequest(m));
        let agent = self.known_agent(agent_id)?;
        let mut disk = Resources::default();
        for v in volumes {
            if !valid_role(&v.role) {
                return bad(format!(
                    "volume {}: persistent volumes need reserved disk, not role '{}'",
                    v.id, v.role
                ));
            }
            if agent
                .volumes
                .iter()
                .chain(volumes.iter().filter(|o| !std::ptr::eq(*o, v)))
                .any(|o| o.id == v.id && o.role == v.role)
            {
                return bad(format!(
                    "volume {} already exists for role {}",
                    v.id, v.role
                ));
            }
            disk.add(&v.disk());
        }
        if !agent.total_resources().contains(&disk) {
            return bad(format!(
                "agent {agent_id} does not have {disk} of reserved disk for these volumes"
            ));
        }
        Ok(())
    }

    pub(super) fn validate_destroy(
        &self,
        agent_id: &str,
        volumes: &[(String, String)],
    ) -> Result<(), RegistryError> {
        let agent = self.known_agent(agent_id)?;
        for (role, id) in volumes {
            if !agent.volumes.iter().any(|v| &v.id == id && &v.role == role) {
                return Err(RegistryError::InvalidRequest(format!(
                    "agent {agent_id} has no volume {id} for role {role}"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn validate_resize(
        &self,
        agent_id: &str,
        role: &str,
        id: &str,
        disk_mb: f64,
    ) -> Result<(), RegistryError> {
        let bad = |m: String| Err(RegistryError::InvalidRequest(m));
        let agent = self.known_agent(agent_id)?;
        let Some(v) = agent.volumes.iter().find(|v| v.id == id && v.role == role) else {
            return bad(format!(
                "agent {agent_id} has no volume {id} for role {role}"
            ));
        };
        if !(disk_mb.is_finite() && disk_mb > 0.0) {
            return bad(format!(
                "volume {id}: size must be a positive scalar, not {disk_mb}"
            ));
        }
        if disk_mb > v.disk_mb {
            let more = Volume {
                disk_mb: disk_mb - v.disk_mb,
                ..v.clone()
            };
            if !agent.total_resources().contains(&more.disk()) {
                return bad(format!(
                    "agent {agent_id} does not have {} of reserved disk to grow volume {id}",
                    more.disk()
                ));
            }
        }
        Ok(())
    }

    pub(super) fn apply_resize(
        &mut self,
        agent_id: &str,
        role: &str,
        id: &str,
        disk_mb: f64,
    ) -> Result<Applied, RegistryError> {
        let agent = self.known_agent_mut(agent_id)?;
        if let Some(v) = agent
            .volumes
            .iter_mut()
            .find(|v| v.id == id && v.role == role)
        {
            v.disk_mb = disk_mb;
        }
        Ok(Applied::AgentResourcesUpdated {
            agent_id: agent_id.to_string(),
        })
    }

    pub(super) fn apply_create(
        &mut self,
        agent_id: &str,
        volumes: &[Volume],
    ) -> Result<Applied, RegistryError> {
        let agent = self.known_agent_mut(agent_id)?;
        agent.volumes.extend(volumes.iter().cloned());
        Ok(Applied::AgentResourcesUpdated {
            agent_id: agent_id.to_string(),
        })
    }

    pub(super) fn apply_destroy(
        &mut self,
        agent_id: &str,
        volumes: &[(String, String)],
    ) -> Result<Applied, RegistryError> {
        let agent = self.known_agent_mut(agent_id)?;
        agent.volumes.retain(|v| {
            !volumes
                .iter()
                .any(|(role, id)| &v.id == id && &v.role == role)
        });
        Ok(Applied::AgentResourcesUpdated {
            agent_id: agent_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vol_json(id: &str, role: &str, size: f64) -> Json {
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": size},
            "reservations": [{"type": "DYNAMIC", "role": role}],
            "disk": {"persistence": {"id": id, "principal": "p"}, "volume": {"container_path": "data", "mode": "RW"}}})
    }

    #[test]
    fn parses_and_renders_volumes() {
        let typed = |j: Json| mesos::parse::<mesos::Resource>(j).unwrap();
        let v = Volume::from_resource(&typed(vol_json("v1", "eng", 64.0)))
            .unwrap()
            .unwrap();
        assert_eq!(
            (v.id.as_str(), v.role.as_str(), v.disk_mb),
            ("v1", "eng", 64.0)
        );
        assert_eq!(v.principal.as_deref(), Some("p"));
        let back = Volume::from_resource(&v.to_resource(Some("eng"), true))
            .unwrap()
            .unwrap();
        assert_eq!(back, v);
        let pre = v.to_resource_json(None, false);
        assert_eq!(pre["role"], "eng");
        assert_eq!(pre["reservation"], json!({}));
        let plain = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 1}});
        assert!(Volume::from_resource(&typed(plain)).is_none());
        let mut abs = vol_json("v2", "eng", 1.0);
        abs["disk"]["volume"]["container_path"] = json!("/etc");
        assert!(Volume::from_resource(&typed(abs)).unwrap().is_err());
    }
}
