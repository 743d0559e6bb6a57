//! Quota arithmetic for a cycle: what a role lacks to meet its guarantees,
//! how far it may go before its limits, and the headroom: the unreserved
//! resources held back so that unmet guarantees can still be met.
//!
//! A role's consumption is what is reserved to it and its sub-roles plus the
//! unreserved resources they hold (Mesos' "consumed quota"). Quota may be
//! set on any role: a sub-role is bound by its ancestors' limits and counts
//! towards their guarantees; the headroom sums, per kind, the outermost
//! guarantees (those with no ancestor guaranteeing that kind), as Mesos
//! does for top-level roles.

use super::quantity::{Cap, Q, UNBOUNDED};
use super::state::State;

/// What a role still lacks to reach its guarantee and those of its
/// ancestors (per kind, the least of them; zero where none is set).
pub(super) fn gap(state: &State, role: u32) -> Q {
    let mut gap = [UNBOUNDED; 4];
    for node in state.chain(role) {
        let consumed = node.consumed();
        for (k, gap) in gap.iter_mut().enumerate() {
            if node.guarantee.0[k] > 0 {
                *gap = (*gap).min((node.guarantee.0[k] - consumed.0[k]).max(0));
            }
        }
    }
    Q(gap.map(|g| if g == UNBOUNDED { 0 } else { g }))
}

/// How much more a role may consume within its and its ancestors' limits.
pub(super) fn limit_room(state: &State, role: u32) -> Cap {
    let mut room = [UNBOUNDED; 4];
    for node in state.chain(role).filter(|n| n.has_limit()) {
        let consumed = node.consumed();
        for (k, room) in room.iter_mut().enumerate() {
            if node.limit[k] != UNBOUNDED {
                *room = (*room).min((node.limit[k] - consumed.0[k]).max(0));
            }
        }
    }
    room
}

/// The unreserved resources held back for quota guarantees.
pub(super) struct Headroom {
    /// Roles with a guarantee on some kind that no ancestor guarantees.
    outermost: Vec<u32>,
    /// What those roles still lack.
    pub required: Q,
    /// Free unreserved resources on all agents.
    available: Q,
}

impl Headroom {
    /// `None` when no role has a guarantee.
    pub fn new(state: &State) -> Option<Headroom> {
        let outermost: Vec<u32> = (0..state.roles.len() as u32)
            .filter(|&r| (0..4).any(|k| outermost_for(state, r, k)))
            .collect();
        if outermost.is_empty() {
            return None;
        }
        let mut available = Q::ZERO;
        for agent in state.agents.iter().flatten() {
            available.add(&Q::split(&agent.free).1);
        }
        let required = required(state, &outermost);
        Some(Headroom {
            outermost,
            required,
            available,
        })
    }

    /// After `unreserved` was handed out (and accounted in `state`).
    pub fn taken(&mut self, state: &State, unreserved: &Q) {
        self.available.sub_sat(unreserved);
        self.required = required(state, &self.outermost);
    }

    /// Unreserved resources that may go beyond guarantees without eating
    /// into the headroom.
    pub fn surplus(&self) -> Cap {
        let mut cap = [UNBOUNDED; 4];
        for (k, cap) in cap.iter_mut().enumerate() {
            if self.required.0[k] > 0 {
                *cap = (self.available.0[k] - self.required.0[k]).max(0);
            }
        }
        cap
    }
}

/// Whether the role guarantees kind `k` and none of its ancestors does.
fn outermost_for(state: &State, role: u32, k: usize) -> bool {
    let mut chain = state.chain(role);
    chain.next().is_some_and(|n| n.guarantee.0[k] > 0) && chain.all(|n| n.guarantee.0[k] == 0)
}

fn required(state: &State, outermost: &[u32]) -> Q {
    let mut q = Q::ZERO;
    for &r in outermost {
        let node = &state.roles[r as usize];
        let consumed = node.consumed();
        for k in (0..4).filter(|&k| outermost_for(state, r, k)) {
            q.0[k] += (node.guarantee.0[k] - consumed.0[k]).max(0);
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use keel_api::resources::Resources;

    use super::*;
    use crate::allocator::quantity::cap_of;

    #[test]
    fn sub_roles_are_bound_by_their_ancestors() {
        let mut s = State::default();
        let a = s.insert_agent("a");
        s.set_total(
            a,
            &Resources::parse("cpus:10;mem:1000;cpus(eng/db):1").unwrap(),
        );
        let eng = s.role("eng");
        let web = s.role("eng/web");
        s.roles[eng as usize].guarantee = Q([4000, 0, 0, 0]);
        s.roles[eng as usize].limit = cap_of(&Resources::parse("cpus:6").unwrap()).unwrap();
        s.roles[web as usize].guarantee = Q([2000, 100_000, 0, 0]);
        // eng consumes its sub-role's reservation (1 cpu).
        assert_eq!(gap(&s, web), Q([2000, 100_000, 0, 0]));
        assert_eq!(limit_room(&s, web), [5000, UNBOUNDED, UNBOUNDED, UNBOUNDED]);
        let fw = s.framework_or_placeholder("f");
        s.track_used(fw, a, web, &Resources::parse("cpus:2.5;mem:50").unwrap());
        // web has its 2 cpus, eng lacks 0.5; web lacks 50 mem.
        assert_eq!(gap(&s, web), Q([0, 50_000, 0, 0]));
        assert_eq!(limit_room(&s, web)[0], 2500);

        // Headroom: eng's cpus and web's mem (eng guarantees no mem).
        let mut h = Headroom::new(&s).unwrap();
        assert_eq!(h.outermost, [eng, web]);
        assert_eq!(h.required, Q([500, 50_000, 0, 0]));
        assert_eq!(h.available, Q([7500, 950_000, 0, 0]));
        assert_eq!(h.surplus(), [7000, 900_000, UNBOUNDED, UNBOUNDED]);
        s.track_used(fw, a, web, &Resources::parse("cpus:1").unwrap());
        h.taken(&s, &Q([1000, 0, 0, 0]));
        assert_eq!(h.required, Q([0, 50_000, 0, 0]));
        assert_eq!(h.surplus(), [UNBOUNDED, 900_000, UNBOUNDED, UNBOUNDED]);
    }
}
