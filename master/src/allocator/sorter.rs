//! The hierarchical DRF order, as Mesos' DRF sorter defines it, kept in
//! ordered sets so that a cycle never re-sorts.
//!
//! Every role node has a set of entries ordered by (share, name): its
//! active children (share = the dominant share of everything held in the
//! child's subtree / the child's weight) and, if frameworks subscribe to the
//! role itself, an "own" entry (share = what those frameworks hold / the
//! role's weight; Mesos' virtual `.` leaf). The top-level roles are in
//! `root`. The role order is the depth-first walk of these sets, visiting
//! only roles with frameworks that want offers. Within a role, frameworks
//! are ordered by (their dominant share in the role, id).
//!
//! The sets are built at the start of a cycle (O(roles + frameworks log
//! frameworks)) and after each allocation only the entries whose shares
//! changed are moved: the framework, its role's own entry and the role's
//! ancestors, O(depth log n).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::state::State;

/// A share with a total order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Share(pub f64);

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A child role or a role's own frameworks, in a role's (or the root's) set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    share: Share,
    name: Arc<str>,
    pub own: bool,
    pub role: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FwEntry {
    share: Share,
    id: Arc<str>,
    pub fw: u32,
}

pub(super) struct Sorter {
    pub root: BTreeSet<Entry>,
    /// Per role: its active children and its own entry.
    pub sets: Vec<BTreeSet<Entry>>,
    /// Per role: the frameworks that want offers in it.
    pub frameworks: Vec<BTreeSet<FwEntry>>,
    /// Per role: how many of those have the GPU_RESOURCES capability.
    pub gpu_frameworks: Vec<u32>,
    /// Per role: the share its entry in its parent's set (or root) has, if
    /// it is there.
    node_share: Vec<Option<f64>>,
    /// Per role: the share of its own entry, if it has one.
    own_share: Vec<Option<f64>>,
    fw_share: HashMap<(u32, u32), f64>,
    /// Bumped whenever an entry moves.
    pub generation: u64,
}

impl Sorter {
    pub fn build(state: &State) -> Sorter {
        let n = state.roles.len();
        let mut s = Sorter {
            root: BTreeSet::new(),
            sets: vec![BTreeSet::new(); n],
            frameworks: vec![BTreeSet::new(); n],
            gpu_frameworks: vec![0; n],
            node_share: vec![None; n],
            own_share: vec![None; n],
            fw_share: HashMap::new(),
            generation: 0,
        };
        for (fw, f) in state.frameworks.iter().enumerate() {
            let Some(f) = f else { continue };
            for m in f.memberships.iter().filter(|m| f.wants(m)) {
                let share = m.alloc.dominant_share(&state.total);
                s.frameworks[m.role as usize].insert(FwEntry {
                    share: Share(share),
                    id: f.id.clone(),
                    fw: fw as u32,
                });
                s.fw_share.insert((m.role, fw as u32), share);
                s.gpu_frameworks[m.role as usize] += u32::from(f.gpu);
            }
        }
        for role in 0..n as u32 {
            if s.frameworks[role as usize].is_empty() {
                continue;
            }
            let share = own_share(state, role);
            s.own_share[role as usize] = Some(share);
            s.sets[role as usize].insert(entry(state, role, share, true));
            // List the role and its ancestors in their parents' sets.
            let mut at = Some(role);
            while let Some(r) = at.filter(|r| s.node_share[*r as usize].is_none()) {
                let share = node_share(state, r);
                s.node_share[r as usize] = Some(share);
                let parent = state.roles[r as usize].parent;
                s.parent_set(parent).insert(entry(state, r, share, false));
                at = parent;
            }
        }
        s
    }

    fn parent_set(&mut self, parent: Option<u32>) -> &mut BTreeSet<Entry> {
        match parent {
            Some(p) => &mut self.sets[p as usize],
            None => &mut self.root,
        }
    }

    /// Moves the entries whose shares changed after `fw` was allocated
    /// resources in `role`.
    pub fn reposition(&mut self, state: &State, role: u32, fw: u32) {
        self.generation += 1;
        if let Some(old) = self.fw_share.get(&(role, fw)).copied() {
            let share = state
                .fw(fw)
                .membership(role)
                .map_or(0.0, |m| m.alloc.dominant_share(&state.total));
            let id = state.fw(fw).id.clone();
            let set = &mut self.frameworks[role as usize];
            set.remove(&FwEntry {
                share: Share(old),
                id: id.clone(),
                fw,
            });
            set.insert(FwEntry {
                share: Share(share),
                id,
                fw,
            });
            self.fw_share.insert((role, fw), share);
        }
        if let Some(old) = self.own_share[role as usize] {
            let share = own_share(state, role);
            let set = &mut self.sets[role as usize];
            set.remove(&entry(state, role, old, true));
            set.insert(entry(state, role, share, true));
            self.own_share[role as usize] = Some(share);
        }
        let mut at = Some(role);
        while let Some(r) = at {
            let parent = state.roles[r as usize].parent;
            if let Some(old) = self.node_share[r as usize] {
                let share = node_share(state, r);
                let set = self.parent_set(parent);
                set.remove(&entry(state, r, old, false));
                set.insert(entry(state, r, share, false));
                self.node_share[r as usize] = Some(share);
            }
            at = parent;
        }
    }

    /// The roles with frameworks that want offers, among `candidates`, in
    /// the order of the depth-first walk.
    pub fn order_of(&self, state: &State, candidates: &[u32]) -> Vec<u32> {
        let mut keyed: Vec<(Vec<Entry>, u32)> = candidates
            .iter()
            .filter_map(|&r| Some((self.path(state, r)?, r)))
            .collect();
        keyed.sort();
        keyed.into_iter().map(|(_, r)| r).collect()
    }

    /// The entries from the root down to the role's own entry.
    fn path(&self, state: &State, role: u32) -> Option<Vec<Entry>> {
        let mut path = vec![entry(state, role, self.own_share[role as usize]?, true)];
        let mut at = Some(role);
        while let Some(r) = at {
            path.push(entry(state, r, self.node_share[r as usize]?, false));
            at = state.roles[r as usize].parent;
        }
        path.reverse();
        Some(path)
    }
}

fn entry(state: &State, role: u32, share: f64, own: bool) -> Entry {
    Entry {
        share: Share(share),
        name: state.roles[role as usize].name.clone(),
        own,
        role,
    }
}

fn own_share(state: &State, role: u32) -> f64 {
    let node = &state.roles[role as usize];
    node.own_alloc.dominant_share(&state.total) / node.weight
}

fn node_share(state: &State, role: u32) -> f64 {
    let node = &state.roles[role as usize];
    node.subtree_alloc.dominant_share(&state.total) / node.weight
}

#[cfg(test)]
mod tests {
    use keel_api::resources::Resources;

    use super::*;
    use crate::allocator::FrameworkSpec;

    /// The roles in depth-first order, as a cycle visits them.
    fn walk(s: &Sorter) -> Vec<u32> {
        fn visit(s: &Sorter, set: &BTreeSet<Entry>, out: &mut Vec<u32>) {
            for e in set {
                match e.own {
                    true => out.push(e.role),
                    false => visit(s, &s.sets[e.role as usize], out),
                }
            }
        }
        let mut out = Vec::new();
        visit(s, &s.root, &mut out);
        out
    }

    fn subscribe(state: &mut State, id: &str, role: &str) -> u32 {
        let fw = state.framework_or_placeholder(id);
        let spec = FrameworkSpec {
            id: id.into(),
            roles: vec![role.into()],
            ..Default::default()
        };
        state.apply_spec(fw, &spec);
        state.fw_mut(fw).active = true;
        fw
    }

    #[test]
    fn walks_the_tree_by_weighted_share_and_moves_entries() {
        let mut state = State::default();
        let a = state.insert_agent("a");
        state.set_total(a, &Resources::parse("cpus:100;mem:100000").unwrap());
        let web = subscribe(&mut state, "f-web", "eng/web");
        let _db = subscribe(&mut state, "f-db", "eng/db");
        let _eng = subscribe(&mut state, "f-eng", "eng");
        let ops = subscribe(&mut state, "f-ops", "ops");
        let role = |s: &State, n: &str| s.role_id(n).unwrap();
        let web_role = role(&state, "eng/web");
        state.track_used(web, a, web_role, &Resources::parse("cpus:10").unwrap());

        let mut s = Sorter::build(&state);
        // eng holds 10% and ops nothing: ops first. Inside eng, its own
        // frameworks and eng/db hold nothing (ties by name), eng/web last.
        let names = |s: &Sorter, st: &State| -> Vec<String> {
            walk(s)
                .into_iter()
                .map(|r| st.roles[r as usize].name.to_string())
                .collect()
        };
        assert_eq!(names(&s, &state), ["ops", "eng", "eng/db", "eng/web"]);

        let ops_role = role(&state, "ops");
        state.track_used(ops, a, ops_role, &Resources::parse("cpus:20").unwrap());
        s.reposition(&state, ops_role, ops);
        assert_eq!(names(&s, &state), ["eng", "eng/db", "eng/web", "ops"]);
        assert_eq!(
            s.order_of(&state, &[ops_role, web_role]),
            [web_role, ops_role]
        );

        // Weight 3 on ops: 0.2 / 3 < 0.1.
        state.roles[ops_role as usize].weight = 3.0;
        let s = Sorter::build(&state);
        assert_eq!(names(&s, &state), ["ops", "eng", "eng/db", "eng/web"]);
    }
}
