//! What the DRF allocator knows: the role tree, frameworks, agents and
//! filters, all indexed by small integers so that a cycle touches no strings
//! in its hot loop. Names live in `Arc<str>`s shared with the sorter.
//!
//! Slots of removed agents and frameworks are reused; role nodes are never
//! removed (there are few, and weights or quota may name them at any time).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keel_api::resources::{Resources, UNRESERVED};

use super::Quota;
use super::quantity::{Cap, Q, UNBOUNDED};

pub(super) struct RoleNode {
    pub name: Arc<str>,
    pub parent: Option<u32>,
    pub weight: f64,
    pub quota: Option<Quota>,
    /// Zero when there is no guarantee.
    pub guarantee: Q,
    pub limit: Cap,
    /// Offered or used by frameworks in exactly this role.
    pub own_alloc: Q,
    /// Offered or used in this role and its sub-roles.
    pub subtree_alloc: Q,
    /// The unreserved part of `subtree_alloc`.
    pub subtree_unreserved: Q,
    /// Reserved (on agents' totals) to this role and its sub-roles.
    pub subtree_reserved: Q,
}

impl RoleNode {
    /// Quota consumption: reservations plus unreserved allocations.
    pub fn consumed(&self) -> Q {
        let mut q = self.subtree_reserved;
        q.add(&self.subtree_unreserved);
        q
    }

    pub fn has_limit(&self) -> bool {
        self.limit.iter().any(|l| *l != UNBOUNDED)
    }
}

/// A framework's standing in one role.
pub(super) struct Membership {
    pub role: u32,
    /// In the framework's roles (a role it left is kept while it holds
    /// resources there).
    pub subscribed: bool,
    pub suppressed: bool,
    pub alloc: Q,
}

pub(super) struct Framework {
    pub id: Arc<str>,
    /// False for a placeholder created when an agent reported tasks of a
    /// framework that has not subscribed (yet).
    pub registered: bool,
    pub active: bool,
    pub gpu: bool,
    pub memberships: Vec<Membership>,
    /// How many (agent, role) filters it has: zero skips the lookup.
    pub filters: usize,
}

impl Framework {
    /// Whether it wants offers in the membership's role.
    pub fn wants(&self, m: &Membership) -> bool {
        self.registered && self.active && m.subscribed && !m.suppressed
    }

    pub fn membership(&self, role: u32) -> Option<&Membership> {
        self.memberships.iter().find(|m| m.role == role)
    }
}

/// Resources a framework holds (offered or used) on an agent in a role.
pub(super) struct Held {
    pub fw: u32,
    pub role: u32,
    pub resources: Resources,
}

pub(super) struct Agent {
    pub id: Arc<str>,
    pub total: Resources,
    pub free: Resources,
    pub total_q: Q,
    pub active: bool,
    pub has_gpus: bool,
    pub held: Vec<Held>,
}

/// A declined offer's resources, not re-offered to the framework in the
/// role on the agent while a new offer would fit in them, until `until`.
pub(super) struct Filter {
    pub role: u32,
    pub refused: Resources,
    pub until: f64,
}

#[derive(Default)]
pub(super) struct State {
    pub roles: Vec<RoleNode>,
    role_ids: HashMap<String, u32>,
    pub frameworks: Vec<Option<Framework>>,
    pub framework_ids: HashMap<String, u32>,
    free_framework_slots: Vec<u32>,
    pub agents: Vec<Option<Agent>>,
    pub agent_ids: HashMap<String, u32>,
    /// Agents by id: the (deterministic) order of a cycle.
    pub agent_order: BTreeMap<Arc<str>, u32>,
    free_agent_slots: Vec<u32>,
    /// By (framework, agent).
    pub filters: HashMap<(u32, u32), Vec<Filter>>,
    /// No filter expires before this (a lower bound).
    pub next_expiry: f64,
    /// The cluster's total, which shares are fractions of.
    pub total: Q,
}

impl State {
    pub fn role_id(&self, name: &str) -> Option<u32> {
        self.role_ids.get(name).copied()
    }

    /// The role's node, created with its ancestors if missing.
    pub fn role(&mut self, name: &str) -> u32 {
        if let Some(id) = self.role_id(name) {
            return id;
        }
        let parent = name.rsplit_once('/').map(|(up, _)| self.role(up));
        let id = self.roles.len() as u32;
        self.roles.push(RoleNode {
            name: Arc::from(name),
            parent,
            weight: 1.0,
            quota: None,
            guarantee: Q::ZERO,
            limit: [UNBOUNDED; 4],
            own_alloc: Q::ZERO,
            subtree_alloc: Q::ZERO,
            subtree_unreserved: Q::ZERO,
            subtree_reserved: Q::ZERO,
        });
        self.role_ids.insert(name.to_string(), id);
        id
    }

    /// Calls `f` on the role and each of its ancestors.
    pub fn for_chain(&mut self, role: u32, mut f: impl FnMut(&mut RoleNode)) {
        let mut at = Some(role);
        while let Some(r) = at {
            let node = &mut self.roles[r as usize];
            f(node);
            at = node.parent;
        }
    }

    pub fn chain(&self, role: u32) -> impl Iterator<Item = &RoleNode> {
        std::iter::successors(Some(&self.roles[role as usize]), |n| {
            n.parent.map(|p| &self.roles[p as usize])
        })
    }

    pub fn framework_id(&self, id: &str) -> Option<u32> {
        self.framework_ids.get(id).copied()
    }

    pub fn fw(&self, fw: u32) -> &Framework {
        self.frameworks[fw as usize]
            .as_ref()
            .expect("framework slot in use")
    }

    pub fn fw_mut(&mut self, fw: u32) -> &mut Framework {
        self.frameworks[fw as usize]
            .as_mut()
            .expect("framework slot in use")
    }

    /// The framework's slot, a placeholder (unregistered, inactive) if new.
    pub fn framework_or_placeholder(&mut self, id: &str) -> u32 {
        if let Some(fw) = self.framework_id(id) {
            return fw;
        }
        let framework = Framework {
            id: Arc::from(id),
            registered: false,
            active: false,
            gpu: false,
            memberships: Vec::new(),
            filters: 0,
        };
        let fw = match self.free_framework_slots.pop() {
            Some(slot) => {
                self.frameworks[slot as usize] = Some(framework);
                slot
            }
            None => {
                self.frameworks.push(Some(framework));
                (self.frameworks.len() - 1) as u32
            }
        };
        self.framework_ids.insert(id.to_string(), fw);
        fw
    }

    pub fn drop_framework_slot(&mut self, fw: u32) {
        if let Some(f) = self.frameworks[fw as usize].take() {
            self.framework_ids.remove(&*f.id);
            self.free_framework_slots.push(fw);
        }
    }

    /// The framework's membership in `role`, created unsubscribed if new.
    pub fn membership_mut(&mut self, fw: u32, role: u32) -> &mut Membership {
        let f = self.fw_mut(fw);
        let at = match f.memberships.iter().position(|m| m.role == role) {
            Some(at) => at,
            None => {
                f.memberships.push(Membership {
                    role,
                    subscribed: false,
                    suppressed: false,
                    alloc: Q::ZERO,
                });
                f.memberships.len() - 1
            }
        };
        &mut f.memberships[at]
    }

    pub fn agent_id(&self, id: &str) -> Option<u32> {
        self.agent_ids.get(id).copied()
    }

    pub fn agent(&self, a: u32) -> &Agent {
        self.agents[a as usize].as_ref().expect("agent slot in use")
    }

    pub fn agent_mut(&mut self, a: u32) -> &mut Agent {
        self.agents[a as usize].as_mut().expect("agent slot in use")
    }

    /// A new agent with nothing held and nothing in its total yet.
    pub fn insert_agent(&mut self, id: &str) -> u32 {
        let agent = Agent {
            id: Arc::from(id),
            total: Resources::new(),
            free: Resources::new(),
            total_q: Q::ZERO,
            active: true,
            has_gpus: false,
            held: Vec::new(),
        };
        let key = agent.id.clone();
        let a = match self.free_agent_slots.pop() {
            Some(slot) => {
                self.agents[slot as usize] = Some(agent);
                slot
            }
            None => {
                self.agents.push(Some(agent));
                (self.agents.len() - 1) as u32
            }
        };
        self.agent_ids.insert(id.to_string(), a);
        self.agent_order.insert(key, a);
        a
    }

    pub fn drop_agent_slot(&mut self, a: u32) {
        if let Some(agent) = self.agents[a as usize].take() {
            self.agent_ids.remove(&*agent.id);
            self.agent_order.remove(&agent.id);
            self.free_agent_slots.push(a);
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) the reservations in `total`
    /// from their roles' reserved quantities.
    pub fn track_reservations(&mut self, total: &Resources, sign: i64) {
        for r in total.iter().filter(|r| r.role != UNRESERVED) {
            let mut q = Q::ZERO;
            q.add_resource(r);
            if q.is_zero() {
                continue;
            }
            let role = self.role(&r.role);
            self.for_chain(role, |n| {
                for (a, b) in n.subtree_reserved.0.iter_mut().zip(q.0) {
                    *a = (*a + sign * b).max(0);
                }
            });
        }
    }
}

/// Whether resources reserved to `reservation` may be offered in `role`:
/// the same role or one of its sub-roles.
pub(super) fn allocatable_to(reservation: &str, role: &str) -> bool {
    reservation == UNRESERVED
        || role == reservation
        || (role.len() > reservation.len()
            && role.starts_with(reservation)
            && role.as_bytes()[reservation.len()] == b'/')
}

/// Whether the two roles are on one branch (either contains the other).
pub(super) fn related(a: &str, b: &str) -> bool {
    allocatable_to(a, b) || allocatable_to(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_created_with_their_ancestors() {
        let mut s = State::default();
        let web = s.role("eng/web/prod");
        let eng = s.role_id("eng").unwrap();
        let chain: Vec<&str> = s.chain(web).map(|n| &*n.name).collect();
        assert_eq!(chain, ["eng/web/prod", "eng/web", "eng"]);
        assert_eq!(s.roles[eng as usize].parent, None);
        assert_eq!(s.role("eng/web/prod"), web);
        assert_eq!(s.roles.len(), 3);
    }

    #[test]
    fn reservations_go_to_the_role_and_its_descendants() {
        assert!(allocatable_to("*", "eng"));
        assert!(allocatable_to("eng", "eng"));
        assert!(allocatable_to("eng", "eng/web"));
        assert!(!allocatable_to("eng/web", "eng"));
        assert!(!allocatable_to("eng", "engineering"));
        assert!(!allocatable_to("eng", "ops"));
        assert!(related("eng/web", "eng") && !related("eng/web", "eng/db"));
    }

    #[test]
    fn slots_are_reused() {
        let mut s = State::default();
        let a = s.insert_agent("a");
        let b = s.insert_agent("b");
        s.drop_agent_slot(a);
        assert_eq!(s.agent_id("a"), None);
        assert_eq!(s.insert_agent("c"), a);
        let order: Vec<u32> = s.agent_order.values().copied().collect();
        assert_eq!(order, [b, a]);
        let f = s.framework_or_placeholder("f");
        assert!(!s.fw(f).registered);
        s.drop_framework_slot(f);
        assert_eq!(s.framework_or_placeholder("g"), f);
    }
}
