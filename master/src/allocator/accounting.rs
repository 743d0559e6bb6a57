//! Bookkeeping on [`State`]: holding and releasing resources, agent totals,
//! framework specs, removals and offer filters. Every change to what is held
//! goes through [`State::hold`] and [`State::unaccount`], which keep the
//! framework, role and role-subtree quantities in step.

use keel_api::resources::{Resources, Value};

use super::FrameworkSpec;
use super::quantity::Q;
use super::state::{Filter, Held, State};

impl State {
    /// Records `resources` as held by `fw` in `role` on agent `a`. The
    /// caller has already taken them out of the agent's free resources.
    pub fn hold(&mut self, fw: u32, a: u32, role: u32, resources: &Resources) {
        let (q, unreserved) = Q::split(resources);
        let agent = self.agent_mut(a);
        match agent.held.iter_mut().find(|h| h.fw == fw && h.role == role) {
            Some(h) => h.resources.add(resources),
            None => agent.held.push(Held {
                fw,
                role,
                resources: resources.clone(),
            }),
        }
        self.membership_mut(fw, role).alloc.add(&q);
        self.roles[role as usize].own_alloc.add(&q);
        self.for_chain(role, |n| {
            n.subtree_alloc.add(&q);
            n.subtree_unreserved.add(&unreserved);
        });
    }

    /// Gives back up to `resources` of what `fw` holds in `role` on agent
    /// `a` to the agent's free resources. Returns what was given back if
    /// `keep` (else nothing, which saves a copy).
    pub fn release(
        &mut self,
        fw: u32,
        a: u32,
        role: u32,
        resources: &Resources,
        keep: bool,
    ) -> Resources {
        let agent = self.agent_mut(a);
        let Some(at) = agent.held.iter().position(|h| h.fw == fw && h.role == role) else {
            return Resources::new();
        };
        let held = &mut agent.held[at].resources;
        let released = if *held == *resources {
            agent.held.remove(at).resources
        } else {
            let released = take_up_to(held, resources);
            if held.is_empty() {
                agent.held.remove(at);
            }
            released
        };
        self.unaccount(fw, role, &released);
        let free = &mut self.agent_mut(a).free;
        match (keep, free.is_empty()) {
            (false, true) => {
                *free = released;
                Resources::new()
            }
            (false, false) => {
                free.add(&released);
                Resources::new()
            }
            (true, _) => {
                free.add(&released);
                released
            }
        }
    }

    /// Takes `resources` (no longer held by `fw` in `role`) off the
    /// framework's and roles' books.
    fn unaccount(&mut self, fw: u32, role: u32, resources: &Resources) {
        let (q, unreserved) = Q::split(resources);
        if let Some(f) = self.frameworks[fw as usize].as_mut() {
            if let Some(m) = f.memberships.iter_mut().find(|m| m.role == role) {
                m.alloc.sub_sat(&q);
            }
            f.memberships.retain(|m| m.subscribed || !m.alloc.is_zero());
        }
        self.roles[role as usize].own_alloc.sub_sat(&q);
        self.for_chain(role, |n| {
            n.subtree_alloc.sub_sat(&q);
            n.subtree_unreserved.sub_sat(&unreserved);
        });
    }

    /// Marks `resources` as used by `fw` in `role` on agent `a`, taking what
    /// is there out of the agent's free resources.
    pub fn track_used(&mut self, fw: u32, a: u32, role: u32, resources: &Resources) {
        take_up_to(&mut self.agent_mut(a).free, resources);
        self.hold(fw, a, role, resources);
    }

    /// Sets an agent's total; what is held stays held, the rest is free.
    pub fn set_total(&mut self, a: u32, total: &Resources) {
        let total: Resources = total
            .iter()
            .filter(|r| !r.value.is_empty())
            .cloned()
            .collect();
        let old = std::mem::take(&mut self.agent_mut(a).total);
        let old_q = self.agent(a).total_q;
        self.track_reservations(&old, -1);
        self.total.sub_sat(&old_q);

        let total_q = Q::of(&total);
        self.track_reservations(&total, 1);
        self.total.add(&total_q);
        let agent = self.agent_mut(a);
        let mut free = total.clone();
        for h in &agent.held {
            take_up_to(&mut free, &h.resources);
        }
        agent.has_gpus = total.scalar("gpus") > 0.0;
        agent.total = total;
        agent.total_q = total_q;
        agent.free = free;
    }

    pub fn remove_agent(&mut self, a: u32) {
        let held = std::mem::take(&mut self.agent_mut(a).held);
        for h in held {
            self.unaccount(h.fw, h.role, &h.resources);
        }
        let total = std::mem::take(&mut self.agent_mut(a).total);
        let total_q = self.agent(a).total_q;
        self.track_reservations(&total, -1);
        self.total.sub_sat(&total_q);
        self.retain_filters(|(_, agent), _| *agent != a);
        self.drop_agent_slot(a);
    }

    /// Subscribes the framework to the spec's roles (and no others) and
    /// takes its capabilities and suppressed roles.
    pub fn apply_spec(&mut self, fw: u32, spec: &FrameworkSpec) {
        let roles: Vec<(u32, bool)> = spec
            .roles
            .iter()
            .map(|r| (self.role(r), spec.suppressed_roles.contains(r)))
            .collect();
        let f = self.fw_mut(fw);
        f.registered = true;
        f.gpu = spec.gpu_resources;
        for m in &mut f.memberships {
            m.subscribed = false;
            m.suppressed = false;
        }
        for (role, suppressed) in roles {
            let m = self.membership_mut(fw, role);
            m.subscribed = true;
            m.suppressed = suppressed;
        }
        self.fw_mut(fw)
            .memberships
            .retain(|m| m.subscribed || !m.alloc.is_zero());
    }

    /// Everything the framework holds goes back to the agents, and the
    /// framework is forgotten.
    pub fn remove_framework(&mut self, fw: u32) {
        for a in 0..self.agents.len() as u32 {
            let Some(agent) = self.agents[a as usize].as_mut() else {
                continue;
            };
            if !agent.held.iter().any(|h| h.fw == fw) {
                continue;
            }
            let (gone, kept) = std::mem::take(&mut agent.held)
                .into_iter()
                .partition(|h| h.fw == fw);
            agent.held = kept;
            for h in gone as Vec<Held> {
                self.agent_mut(a).free.add(&h.resources);
                self.unaccount(fw, h.role, &h.resources);
            }
        }
        self.retain_filters(|(f, _), _| *f != fw);
        self.drop_framework_slot(fw);
    }

    pub fn add_filter(&mut self, fw: u32, a: u32, role: u32, refused: Resources, until: f64) {
        self.filters.entry((fw, a)).or_default().push(Filter {
            role,
            refused,
            until,
        });
        self.fw_mut(fw).filters += 1;
        self.next_expiry = self.next_expiry.min(until);
    }

    /// Drops the filters expired at `now` (a scan only when one may have).
    pub fn expire_filters(&mut self, now: f64) {
        if now < self.next_expiry {
            return;
        }
        self.retain_filters(|_, f| now < f.until);
        self.next_expiry = self
            .filters
            .values()
            .flatten()
            .map(|f| f.until)
            .fold(f64::INFINITY, f64::min);
    }

    /// Whether `offer` must not go to `fw` in `role` on agent `a` at `now`.
    pub fn is_filtered(&self, fw: u32, a: u32, role: u32, offer: &Resources, now: f64) -> bool {
        self.filters.get(&(fw, a)).is_some_and(|list| {
            list.iter()
                .any(|f| f.role == role && now < f.until && f.refused.contains(offer))
        })
    }

    /// Keeps the filters `keep` accepts, by (framework, agent) and filter.
    pub fn retain_filters(&mut self, mut keep: impl FnMut(&(u32, u32), &Filter) -> bool) {
        let mut dropped: Vec<u32> = Vec::new();
        self.filters.retain(|key, list| {
            list.retain(|f| {
                let k = keep(key, f);
                if !k {
                    dropped.push(key.0);
                }
                k
            });
            !list.is_empty()
        });
        for fw in dropped {
            if let Some(f) = self.frameworks[fw as usize].as_mut() {
                f.filters -= 1;
            }
        }
    }
}

/// Removes from `from` as much of `what` as it has (all of a resource if it
/// fits, else what is there of a scalar); returns what was removed.
pub(super) fn take_up_to(from: &mut Resources, what: &Resources) -> Resources {
    if *from == *what {
        return std::mem::take(from);
    }
    if let Some(left) = from.checked_sub(what) {
        *from = left;
        return what
            .iter()
            .filter(|r| !r.value.is_empty())
            .cloned()
            .collect();
    }
    let mut taken = Resources::new();
    for r in what.iter().filter(|r| !r.value.is_empty()) {
        let part = match (from.checked_sub(&Resources(vec![r.clone()])), &r.value) {
            (Some(left), _) => {
                *from = left;
                r.clone()
            }
            (None, Value::Scalar(_)) => {
                let have = from.iter().find(|e| {
                    e.name == r.name && e.role == r.role && matches!(e.value, Value::Scalar(_))
                });
                let Some(have) = have.cloned() else { continue };
                from.0
                    .retain(|e| !(e.name == have.name && e.role == have.role));
                have
            }
            (None, _) => continue,
        };
        taken.push(part);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn take_up_to_takes_what_is_there() {
        let mut from = parse("cpus:2;mem:100;ports:[1-10]");
        let taken = take_up_to(&mut from, &parse("cpus:1;ports:[2-3]"));
        assert_eq!(taken, parse("cpus:1;ports:[2-3]"));
        assert_eq!(from, parse("cpus:1;mem:100;ports:[1-1,4-10]"));
        let taken = take_up_to(&mut from, &parse("cpus:5;mem:50;ports:[20-30];gpus:1"));
        assert_eq!(taken, parse("cpus:1;mem:50"));
        assert_eq!(from, parse("mem:50;ports:[1-1,4-10]"));
    }

    #[test]
    fn holding_and_releasing_keeps_role_books() {
        let mut s = State::default();
        let a = s.insert_agent("a");
        s.set_total(a, &parse("cpus:4;mem:1024;cpus(eng/web):2"));
        let eng = s.role_id("eng").unwrap();
        assert_eq!(s.roles[eng as usize].subtree_reserved, Q([2000, 0, 0, 0]));
        assert_eq!(s.total, Q([6000, 1_024_000, 0, 0]));

        let fw = s.framework_or_placeholder("f");
        let web = s.role("eng/web");
        s.track_used(fw, a, web, &parse("cpus:1;cpus(eng/web):2"));
        assert_eq!(s.agent(a).free, parse("cpus:3;mem:1024"));
        let node = &s.roles[eng as usize];
        assert_eq!(node.subtree_alloc, Q([3000, 0, 0, 0]));
        assert_eq!(node.subtree_unreserved, Q([1000, 0, 0, 0]));
        assert_eq!(node.consumed(), Q([3000, 0, 0, 0]));
        assert_eq!(s.fw(fw).membership(web).unwrap().alloc, Q([3000, 0, 0, 0]));

        let back = s.release(fw, a, web, &parse("cpus:1;cpus(eng/web):5"), true);
        assert_eq!(back, parse("cpus:1;cpus(eng/web):2"));
        assert!(s.agent(a).held.is_empty());
        assert!(s.roles[eng as usize].subtree_alloc.is_zero());
        // An unsubscribed membership without resources is dropped.
        assert!(s.fw(fw).memberships.is_empty());

        s.remove_agent(a);
        assert!(s.total.is_zero());
        assert!(s.roles[eng as usize].subtree_reserved.is_zero());
    }
}
