//! [`DrfAllocator`]: Mesos' hierarchical DRF policy (the default).
//!
//! Roles form a tree by `/`; a role's share is the dominant share (over the
//! cluster's cpus, mem, disk and gpus) of everything offered to or used by
//! frameworks in the role and its sub-roles, divided by its weight. Roles
//! are visited depth first, lowest share first at every level; within a
//! role, frameworks by their own dominant share. Quota guarantees are met
//! first and held back from others, quota limits are never exceeded (see
//! `cycle.rs`). Ties are broken by name, agents go in id order: the result
//! is deterministic.

use keel_api::resources::{Resources, UNRESERVED, Value};

use super::accounting::take_up_to;
use super::cycle::{self, MinAllocatable};
use super::quantity::{Q, UNBOUNDED, cap_of, millis};
use super::state::State;
use super::{Allocation, Allocator, AllocatorError, FrameworkSpec, Quota, RoleSummary};

/// Filters last at most a year, as in Mesos.
const MAX_REFUSE_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// The hierarchical DRF allocator.
pub struct DrfAllocator {
    state: State,
    min: MinAllocatable,
}

impl Default for DrfAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl DrfAllocator {
    /// With Mesos' default minimum allocatable resources, `cpus:0.01|mem:32`.
    pub fn new() -> Self {
        DrfAllocator {
            state: State::default(),
            min: vec![vec![("cpus".into(), 10)], vec![("mem".into(), 32_000)]],
        }
    }

    /// Mesos' `--min_allocatable_resources`: a chunk is offered only if it
    /// holds at least one of the alternatives (scalars by name, any role;
    /// other entries are ignored). No alternatives: no minimum.
    pub fn with_min_allocatable(alternatives: &[Resources]) -> Self {
        let min = alternatives
            .iter()
            .map(|alt| {
                alt.iter()
                    .filter_map(|r| match r.value {
                        Value::Scalar(v) => Some((r.name.clone(), millis(v))),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        DrfAllocator {
            state: State::default(),
            min,
        }
    }

    /// The (framework, agent, role) slots, if all are known.
    fn held_ids(&self, framework_id: &str, agent_id: &str, role: &str) -> Option<(u32, u32, u32)> {
        Some((
            self.state.framework_id(framework_id)?,
            self.state.agent_id(agent_id)?,
            self.state.role_id(role)?,
        ))
    }

    /// Sets `suppressed` on the framework's roles in `roles` (all if empty);
    /// returns the framework and the roles' slots.
    fn set_suppressed(
        &mut self,
        framework_id: &str,
        roles: &[String],
        suppressed: bool,
    ) -> Option<(u32, Vec<u32>)> {
        let fw = self.state.framework_id(framework_id)?;
        let ids: Vec<u32> = roles.iter().filter_map(|r| self.state.role_id(r)).collect();
        for m in &mut self.state.fw_mut(fw).memberships {
            if m.subscribed && (roles.is_empty() || ids.contains(&m.role)) {
                m.suppressed = suppressed;
            }
        }
        Some((fw, ids))
    }
}

impl Allocator for DrfAllocator {
    fn name(&self) -> &'static str {
        "drf"
    }

    fn add_agent(
        &mut self,
        agent_id: &str,
        total: Resources,
        used: &[(String, String, Resources)],
    ) {
        if let Some(a) = self.state.agent_id(agent_id) {
            self.state.remove_agent(a);
        }
        let a = self.state.insert_agent(agent_id);
        self.state.set_total(a, &total);
        for (framework_id, role, resources) in used {
            let fw = self.state.framework_or_placeholder(framework_id);
            let role = self.state.role(role);
            self.state.track_used(fw, a, role, resources);
        }
    }

    fn update_agent_total(&mut self, agent_id: &str, total: Resources) {
        if let Some(a) = self.state.agent_id(agent_id) {
            self.state.set_total(a, &total);
        }
    }

    fn update_allocation(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        from: &Resources,
        to: &Resources,
    ) {
        let Some((fw, a, role)) = self.held_ids(framework_id, agent_id, role) else {
            return;
        };
        let released = self.state.release(fw, a, role, from, true);
        let mut total = self.state.agent(a).total.clone();
        take_up_to(&mut total, &released);
        total.add(to);
        self.state.set_total(a, &total);
        self.state.track_used(fw, a, role, to);
    }

    fn remove_agent(&mut self, agent_id: &str) {
        if let Some(a) = self.state.agent_id(agent_id) {
            self.state.remove_agent(a);
        }
    }

    fn activate_agent(&mut self, agent_id: &str) {
        if let Some(a) = self.state.agent_id(agent_id) {
            self.state.agent_mut(a).active = true;
        }
    }

    fn deactivate_agent(&mut self, agent_id: &str) {
        if let Some(a) = self.state.agent_id(agent_id) {
            self.state.agent_mut(a).active = false;
        }
    }

    fn add_framework(&mut self, spec: FrameworkSpec, _now: f64) {
        let fw = self.state.framework_or_placeholder(&spec.id);
        self.state.apply_spec(fw, &spec);
        self.state.fw_mut(fw).active = true;
    }

    fn update_framework(&mut self, spec: FrameworkSpec) {
        if let Some(fw) = self.state.framework_id(&spec.id)
            && self.state.fw(fw).registered
        {
            self.state.apply_spec(fw, &spec);
        }
    }

    fn remove_framework(&mut self, framework_id: &str) {
        if let Some(fw) = self.state.framework_id(framework_id) {
            self.state.remove_framework(fw);
        }
    }

    fn activate_framework(&mut self, framework_id: &str) {
        if let Some(fw) = self.state.framework_id(framework_id) {
            let f = self.state.fw_mut(fw);
            f.active = f.registered;
        }
    }

    fn deactivate_framework(&mut self, framework_id: &str) {
        if let Some(fw) = self.state.framework_id(framework_id) {
            self.state.fw_mut(fw).active = false;
            self.state.retain_filters(|(f, _), _| *f != fw);
        }
    }

    fn recover(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        resources: &Resources,
        refuse_seconds: Option<f64>,
        now: f64,
    ) {
        let Some((fw, a, role)) = self.held_ids(framework_id, agent_id, role) else {
            return;
        };
        let seconds = refuse_seconds.filter(|s| *s > 0.0);
        let released = self
            .state
            .release(fw, a, role, resources, seconds.is_some());
        let Some(seconds) = seconds else {
            return;
        };
        if !released.is_empty() && self.state.fw(fw).registered {
            let until = now + seconds.min(MAX_REFUSE_SECONDS);
            self.state.add_filter(fw, a, role, released, until);
        }
    }

    fn track_used(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        resources: &Resources,
    ) {
        let Some(a) = self.state.agent_id(agent_id) else {
            return;
        };
        let fw = self.state.framework_or_placeholder(framework_id);
        let role = self.state.role(role);
        self.state.track_used(fw, a, role, resources);
    }

    fn suppress(&mut self, framework_id: &str, roles: &[String]) {
        self.set_suppressed(framework_id, roles, true);
    }

    fn revive(&mut self, framework_id: &str, roles: &[String]) {
        if let Some((fw, ids)) = self.set_suppressed(framework_id, roles, false) {
            let all = roles.is_empty();
            self.state
                .retain_filters(|(f, _), filter| *f != fw || !(all || ids.contains(&filter.role)));
        }
    }

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(AllocatorError::InvalidWeight {
                role: role.to_string(),
                weight,
            });
        }
        let r = self.state.role(role);
        self.state.roles[r as usize].weight = weight;
        Ok(())
    }

    fn set_quota(&mut self, role: &str, quota: Option<Quota>) -> Result<(), AllocatorError> {
        let invalid = |reason: String| AllocatorError::InvalidQuota {
            role: role.to_string(),
            reason,
        };
        let unsupported =
            |name: String| invalid(format!("{name} is not one of cpus, mem, disk, gpus"));
        let (guarantee, limit) = match &quota {
            None => (Q::ZERO, [UNBOUNDED; 4]),
            Some(q) => {
                let guarantee = cap_of(&q.guarantee).map_err(unsupported)?;
                let limit = match &q.limit {
                    Some(l) => cap_of(l).map_err(unsupported)?,
                    None => [UNBOUNDED; 4],
                };
                let guarantee = guarantee.map(|g| if g == UNBOUNDED { 0 } else { g });
                if let Some(k) = (0..4).find(|&k| guarantee[k] > limit[k]) {
                    let name = super::quantity::KINDS[k];
                    return Err(invalid(format!("{name} guarantee is above its limit")));
                }
                (Q(guarantee), limit)
            }
        };
        let r = self.state.role(role);
        let node = &mut self.state.roles[r as usize];
        node.quota = quota;
        node.guarantee = guarantee;
        node.limit = limit;
        Ok(())
    }

    fn allocate(&mut self, now: f64) -> Vec<Allocation> {
        cycle::run(&mut self.state, &self.min, now)
    }

    fn role_summary(&self) -> Vec<RoleSummary> {
        let s = &self.state;
        let n = s.roles.len();
        let mut allocated = vec![Resources::new(); n];
        let mut reserved = vec![Resources::new(); n];
        let mut frameworks: Vec<Vec<String>> = vec![Vec::new(); n];
        let mut in_use = vec![false; n];
        for agent in s.agents.iter().flatten() {
            for h in &agent.held {
                allocated[h.role as usize].add(&h.resources);
            }
            for r in agent.total.iter().filter(|r| r.role != UNRESERVED) {
                if let Some(role) = s.role_id(&r.role) {
                    reserved[role as usize].push(r.clone());
                }
            }
        }
        for f in s.frameworks.iter().flatten().filter(|f| f.registered) {
            for m in f.memberships.iter().filter(|m| m.subscribed) {
                frameworks[m.role as usize].push(f.id.to_string());
                let mut at = Some(m.role);
                while let Some(r) = at {
                    in_use[r as usize] = true;
                    at = s.roles[r as usize].parent;
                }
            }
        }
        let mut out: Vec<RoleSummary> = (0..n)
            .filter(|&r| {
                let node = &s.roles[r];
                in_use[r]
                    || node.weight != 1.0
                    || node.quota.is_some()
                    || !node.subtree_alloc.is_zero()
                    || !node.subtree_reserved.is_zero()
            })
            .map(|r| {
                let node = &s.roles[r];
                let mut fws = std::mem::take(&mut frameworks[r]);
                fws.sort();
                RoleSummary {
                    role: node.name.to_string(),
                    weight: node.weight,
                    quota: node.quota.clone(),
                    allocated: std::mem::take(&mut allocated[r]),
                    reserved: std::mem::take(&mut reserved[r]),
                    consumed: node.consumed().to_resources(),
                    frameworks: fws,
                }
            })
            .collect();
        out.sort_by(|a, b| a.role.cmp(&b.role));
        out
    }
}
