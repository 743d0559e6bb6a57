//! One allocation cycle of the hierarchical DRF policy, in Mesos' two
//! stages, over the agents in id order:
//!
//! 1. Quota guarantees. Roles below their guarantee (or under an ancestor
//!    below its guarantee), in DRF order, are offered the agent's unreserved
//!    scalars up to what they lack, plus their reservations and the
//!    non-scalars; scalars beyond the guarantee only within their limits and
//!    the surplus headroom.
//! 2. Fair share. Every role in DRF order is offered what is left that it
//!    may use: reservations to it (or an ancestor) and non-scalars always,
//!    unreserved scalars within its quota limits and without eating into the
//!    headroom, the unreserved resources still needed to meet other roles'
//!    guarantees.
//!
//! Per agent and role one framework, the first in the role's DRF order that
//! is not filtered and can take the agent (GPU_RESOURCES for an agent with
//! GPUs), gets the whole chunk; a chunk is offered only if it meets the
//! minimum allocatable resources. The DRF order is fixed while one agent is
//! handed out and updated after it, as Mesos re-sorts per agent.

use std::collections::HashMap;

use keel_api::resources::{Resource, Resources, UNRESERVED, Value};

use super::Allocation;
use super::quantity::{Cap, Q, UNBOUNDED, kind, millis};
use super::sorter::Sorter;
use super::state::{State, allocatable_to, related};

/// Alternatives (any one suffices) of minimum quantities by name, in
/// thousandths: Mesos' `--min_allocatable_resources`, `cpus:0.01|mem:32`.
pub(super) type MinAllocatable = Vec<Vec<(String, i64)>>;

/// How much of a free entry a chunk takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Take {
    Skip,
    Whole,
    /// Part of an unreserved scalar, in thousandths.
    Part(i64),
}

/// The unreserved resources held back for quota guarantees.
struct Headroom {
    /// Roles with a guarantee and no ancestor with one.
    outermost: Vec<u32>,
    /// What those roles still lack.
    required: Q,
    /// Free unreserved resources on all agents.
    available: Q,
}

pub(super) struct Cycle<'a> {
    state: &'a mut State,
    min: &'a MinAllocatable,
    now: f64,
    headroom: Option<Headroom>,
    plan: Vec<Take>,
    out: Vec<Allocation>,
    /// (agent, framework, role) -> index in `out`, for chunks of stage 1
    /// that stage 2 adds to.
    merged: HashMap<(u32, u32, u32), usize>,
}

/// Runs one cycle.
pub(super) fn run(state: &mut State, min: &MinAllocatable, now: f64) -> Vec<Allocation> {
    state.retain_filters(|_, f| now < f.until);
    let mut sorter = Sorter::build(state);
    let agents: Vec<u32> = state
        .agent_order
        .values()
        .copied()
        .filter(|&a| state.agent(a).active && !state.agent(a).free.is_empty())
        .collect();
    let headroom = headroom(state);
    let mut cycle = Cycle {
        state,
        min,
        now,
        headroom,
        plan: Vec::new(),
        out: Vec::new(),
        merged: HashMap::new(),
    };
    cycle.stage1(&mut sorter, &agents);
    cycle.stage2(&mut sorter, &agents);
    cycle.out
}

fn headroom(state: &State) -> Option<Headroom> {
    let outermost: Vec<u32> = (0..state.roles.len() as u32)
        .filter(|&r| {
            let mut chain = state.chain(r);
            chain.next().is_some_and(|n| !n.guarantee.is_zero())
                && chain.all(|n| n.guarantee.is_zero())
        })
        .collect();
    if outermost.is_empty() {
        return None;
    }
    let mut available = Q::ZERO;
    for agent in state.agents.iter().flatten() {
        available.add(&Q::split(&agent.free).1);
    }
    let mut h = Headroom {
        outermost,
        required: Q::ZERO,
        available,
    };
    h.required = required(state, &h.outermost);
    Some(h)
}

fn required(state: &State, outermost: &[u32]) -> Q {
    let mut q = Q::ZERO;
    for &r in outermost {
        let node = &state.roles[r as usize];
        let mut lack = node.guarantee;
        lack.sub_sat(&node.consumed());
        q.add(&lack);
    }
    q
}

impl Cycle<'_> {
    fn stage1(&mut self, sorter: &mut Sorter, agents: &[u32]) {
        if self.headroom.is_none() {
            return;
        }
        let candidates: Vec<u32> = (0..self.state.roles.len() as u32)
            .filter(|&r| !sorter.frameworks[r as usize].is_empty())
            .filter(|&r| self.state.chain(r).any(|n| !n.guarantee.is_zero()))
            .collect();
        let (mut order, mut generation) = (Vec::new(), None);
        for &a in agents {
            if candidates.is_empty() || self.headroom.as_ref().is_some_and(|h| h.required.is_zero())
            {
                return;
            }
            if self.exhausted(a) {
                continue;
            }
            if generation != Some(sorter.generation) {
                order = sorter.order_of(self.state, &candidates);
                generation = Some(sorter.generation);
            }
            let mut touched = Vec::new();
            for &r in &order {
                if self.exhausted(a) {
                    break;
                }
                let gap = self.gap(r);
                if gap.is_zero() {
                    continue;
                }
                if let Some(fw) = self.offer(sorter, a, r, Some(gap)) {
                    touched.push((r, fw));
                }
            }
            for (r, fw) in touched {
                sorter.reposition(self.state, r, fw);
            }
        }
    }

    fn stage2(&mut self, sorter: &mut Sorter, agents: &[u32]) {
        for &a in agents {
            if self.exhausted(a) {
                continue;
            }
            let mut touched = Vec::new();
            let mut stack = vec![sorter.root.iter()];
            while let Some(top) = stack.last_mut() {
                let Some(e) = top.next() else {
                    stack.pop();
                    continue;
                };
                if !self.worth_entering(a, e.role) {
                    continue;
                }
                if !e.own {
                    stack.push(sorter.sets[e.role as usize].iter());
                } else if let Some(fw) = self.offer(sorter, a, e.role, None) {
                    touched.push((e.role, fw));
                    if self.exhausted(a) {
                        break;
                    }
                }
            }
            for (r, fw) in touched {
                sorter.reposition(self.state, r, fw);
            }
        }
    }

    /// Whether nothing offerable is left on the agent: nothing free, or not
    /// even everything free would meet the minimum.
    fn exhausted(&self, a: u32) -> bool {
        let free = &self.state.agent(a).free;
        free.is_empty() || !meets_min(self.min, free.iter().map(|e| (e, Take::Whole)))
    }

    /// Whether free resources on the agent could go to `role` or a
    /// sub-role of it.
    fn worth_entering(&self, a: u32, role: u32) -> bool {
        let name = &*self.state.roles[role as usize].name;
        self.state
            .agent(a)
            .free
            .iter()
            .any(|e| e.role == UNRESERVED || related(&e.role, name))
    }

    /// What the role still lacks to reach its guarantee and those of its
    /// ancestors (per kind, the least of them; zero where none is set).
    fn gap(&self, role: u32) -> Q {
        let mut gap = [UNBOUNDED; 4];
        for node in self.state.chain(role) {
            let consumed = node.consumed();
            for (k, gap) in gap.iter_mut().enumerate() {
                if node.guarantee.0[k] > 0 {
                    *gap = (*gap).min((node.guarantee.0[k] - consumed.0[k]).max(0));
                }
            }
        }
        Q(gap.map(|g| if g == UNBOUNDED { 0 } else { g }))
    }

    /// How much more the role may consume within its and its ancestors'
    /// limits.
    fn limit_room(&self, role: u32) -> Cap {
        let mut room = [UNBOUNDED; 4];
        for node in self.state.chain(role).filter(|n| n.has_limit()) {
            let consumed = node.consumed();
            for (k, room) in room.iter_mut().enumerate() {
                if node.limit[k] != UNBOUNDED {
                    *room = (*room).min((node.limit[k] - consumed.0[k]).max(0));
                }
            }
        }
        room
    }

    /// Unreserved resources that may go beyond guarantees without eating
    /// into the headroom.
    fn surplus(&self) -> Cap {
        let mut cap = [UNBOUNDED; 4];
        if let Some(h) = &self.headroom {
            for (k, cap) in cap.iter_mut().enumerate() {
                if h.required.0[k] > 0 {
                    *cap = (h.available.0[k] - h.required.0[k]).max(0);
                }
            }
        }
        cap
    }

    /// Offers the agent's chunk for `role` to the first framework of the
    /// role that may have it; returns that framework. `gap` is stage 1's
    /// guarantee gap.
    fn offer(&mut self, sorter: &Sorter, a: u32, role: u32, gap: Option<Q>) -> Option<u32> {
        let has_gpus = self.state.agent(a).has_gpus;
        if has_gpus && sorter.gpu_frameworks[role as usize] == 0 {
            return None;
        }
        if !self.plan(a, role, gap) {
            return None;
        }
        let mut chunk: Option<Resources> = None;
        for e in &sorter.frameworks[role as usize] {
            let f = self.state.fw(e.fw);
            if has_gpus && !f.gpu {
                continue;
            }
            if f.filters > 0 {
                let chunk = chunk.get_or_insert_with(|| self.materialize(a));
                if self.state.is_filtered(e.fw, a, role, chunk, self.now) {
                    continue;
                }
            }
            self.commit(a, role, e.fw, chunk);
            return Some(e.fw);
        }
        None
    }

    /// Decides, per free entry of the agent, how much the role's chunk
    /// takes; false if the chunk is not worth offering.
    fn plan(&mut self, a: u32, role: u32, gap: Option<Q>) -> bool {
        let mut room = self.limit_room(role);
        let mut surplus = self.surplus();
        let mut lack = gap.unwrap_or(Q::ZERO).0;
        let mut guaranteed = false;
        let name = &*self.state.roles[role as usize].name;
        let free = &self.state.agent(a).free;
        self.plan.clear();
        for e in free.iter() {
            let take = match (&e.value, kind(&e.name)) {
                _ if e.role != UNRESERVED => match allocatable_to(&e.role, name) {
                    true => Take::Whole,
                    false => Take::Skip,
                },
                (Value::Scalar(v), Some(k)) => {
                    let have = millis(*v);
                    let toward_guarantee = have.min(lack[k]);
                    let beyond = (have - toward_guarantee)
                        .min(room[k].saturating_sub(toward_guarantee).max(0))
                        .min(surplus[k]);
                    lack[k] -= toward_guarantee;
                    room[k] = room[k].saturating_sub(toward_guarantee + beyond);
                    if surplus[k] != UNBOUNDED {
                        surplus[k] -= beyond;
                    }
                    guaranteed |= toward_guarantee > 0;
                    match toward_guarantee + beyond {
                        t if t == have => Take::Whole,
                        0 => Take::Skip,
                        t => Take::Part(t),
                    }
                }
                _ => Take::Whole,
            };
            self.plan.push(take);
        }
        if gap.is_some() && !guaranteed {
            return false;
        }
        meets_min(self.min, free.iter().zip(self.plan.iter().copied()))
    }

    /// The planned chunk as resources.
    fn materialize(&self, a: u32) -> Resources {
        let free = &self.state.agent(a).free;
        let chunk = free
            .iter()
            .zip(&self.plan)
            .filter_map(|(e, take)| match take {
                Take::Skip => None,
                Take::Whole => Some(e.clone()),
                Take::Part(m) => Some(Resource {
                    name: e.name.clone(),
                    role: e.role.clone(),
                    value: Value::Scalar(*m as f64 / 1000.0),
                }),
            });
        Resources(chunk.collect())
    }

    /// Hands the planned chunk to `fw` in `role`.
    fn commit(&mut self, a: u32, role: u32, fw: u32, chunk: Option<Resources>) {
        let free_len = self.state.agent(a).free.0.len();
        let everything = free_len == self.plan.len() && self.plan.iter().all(|t| *t == Take::Whole);
        let chunk = if everything {
            std::mem::take(&mut self.state.agent_mut(a).free)
        } else {
            let chunk = chunk.unwrap_or_else(|| self.materialize(a));
            let free = &mut self.state.agent_mut(a).free.0;
            for (i, take) in self.plan.iter().enumerate().rev() {
                match *take {
                    Take::Skip => {}
                    Take::Whole => {
                        free.remove(i);
                    }
                    Take::Part(m) => {
                        if let Value::Scalar(v) = &mut free[i].value {
                            *v = (millis(*v) - m) as f64 / 1000.0;
                        }
                    }
                }
            }
            chunk
        };
        self.state.hold(fw, a, role, &chunk);
        if let Some(h) = &mut self.headroom {
            h.available.sub_sat(&Q::split(&chunk).1);
            h.required = required(self.state, &h.outermost);
        }
        let key = (a, fw, role);
        if let Some(&at) = self.merged.get(&key) {
            self.out[at].resources.add(&chunk);
            return;
        }
        if self.headroom.is_some() {
            self.merged.insert(key, self.out.len());
        }
        self.out.push(Allocation {
            framework_id: self.state.fw(fw).id.to_string(),
            agent_id: self.state.agent(a).id.to_string(),
            role: self.state.roles[role as usize].name.to_string(),
            resources: chunk,
        });
    }
}

/// Whether the taken parts of the entries meet one of the alternatives (or
/// there is no minimum).
fn meets_min<'r>(
    min: &MinAllocatable,
    taken: impl Iterator<Item = (&'r Resource, Take)> + Clone,
) -> bool {
    min.is_empty()
        || min.iter().any(|alternative| {
            alternative.iter().all(|(name, need)| {
                let have: i64 = taken
                    .clone()
                    .filter(|(e, _)| e.name == *name)
                    .map(|(e, take)| match (take, &e.value) {
                        (Take::Whole, Value::Scalar(v)) => millis(*v),
                        (Take::Part(m), _) => m,
                        _ => 0,
                    })
                    .sum();
                have >= *need
            })
        })
}
