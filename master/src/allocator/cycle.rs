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

use std::collections::{BTreeSet, HashMap};

use keel_api::resources::{Resource, Resources, UNRESERVED, Value};

use super::Allocation;
use super::quantity::{Q, UNBOUNDED, kind, millis};
use super::quota::{self, Headroom};
use super::sorter::{Entry, Sorter};
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
    state.expire_filters(now);
    let mut sorter = Sorter::build(state);
    let agents: Vec<u32> = state
        .agent_order
        .values()
        .copied()
        .filter(|&a| state.agent(a).active && !state.agent(a).free.is_empty())
        .collect();
    let headroom = Headroom::new(state);
    let mut cycle = Cycle {
        state,
        min,
        now,
        headroom,
        plan: Vec::new(),
        out: Vec::with_capacity(agents.len()),
        merged: HashMap::new(),
    };
    cycle.stage1(&mut sorter, &agents);
    cycle.stage2(&mut sorter, &agents);
    cycle.out
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
        let mut touched = Vec::new();
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
            touched.clear();
            for &r in &order {
                if self.exhausted(a) {
                    break;
                }
                let gap = quota::gap(self.state, r);
                if gap.is_zero() {
                    continue;
                }
                if let Some(fw) = self.offer(sorter, a, r, Some(gap)) {
                    touched.push((r, fw));
                }
            }
            for &(r, fw) in &touched {
                sorter.reposition(self.state, r, fw);
            }
        }
    }

    fn stage2(&mut self, sorter: &mut Sorter, agents: &[u32]) {
        let mut touched = Vec::new();
        for &a in agents {
            if self.exhausted(a) {
                continue;
            }
            touched.clear();
            let s: &Sorter = sorter;
            self.walk(s, &s.root, a, &mut touched);
            for &(r, fw) in &touched {
                sorter.reposition(self.state, r, fw);
            }
        }
    }

    /// Offers the agent to the roles under `set`, depth first, recording
    /// (role, framework) of each offer; false once the agent is exhausted.
    fn walk(
        &mut self,
        sorter: &Sorter,
        set: &BTreeSet<Entry>,
        a: u32,
        touched: &mut Vec<(u32, u32)>,
    ) -> bool {
        for e in set {
            if !self.worth_entering(a, e.role) {
                continue;
            }
            if !e.own {
                if !self.walk(sorter, &sorter.sets[e.role as usize], a, touched) {
                    return false;
                }
            } else if let Some(fw) = self.offer(sorter, a, e.role, None) {
                touched.push((e.role, fw));
                if self.exhausted(a) {
                    return false;
                }
            }
        }
        true
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
        let everything = self.takes_everything(a);
        let mut chunk: Option<Resources> = None;
        for e in &sorter.frameworks[role as usize] {
            let f = self.state.fw(e.fw);
            if has_gpus && !f.gpu {
                continue;
            }
            if f.filters > 0 && self.state.filters.contains_key(&(e.fw, a)) {
                let offered = match everything {
                    true => &self.state.agent(a).free,
                    false => chunk.get_or_insert_with(|| self.materialize(a)),
                };
                if self.state.is_filtered(e.fw, a, role, offered, self.now) {
                    continue;
                }
            }
            self.commit(a, role, e.fw, chunk);
            return Some(e.fw);
        }
        None
    }

    /// Whether the planned chunk is all the agent's free resources.
    fn takes_everything(&self, a: u32) -> bool {
        self.state.agent(a).free.0.len() == self.plan.len()
            && self.plan.iter().all(|t| *t == Take::Whole)
    }

    /// Decides, per free entry of the agent, how much the role's chunk
    /// takes; false if the chunk is not worth offering.
    fn plan(&mut self, a: u32, role: u32, gap: Option<Q>) -> bool {
        let mut room = quota::limit_room(self.state, role);
        let mut surplus = self
            .headroom
            .as_ref()
            .map_or([UNBOUNDED; 4], Headroom::surplus);
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
        let chunk = if self.takes_everything(a) {
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
            h.taken(self.state, &Q::split(&chunk).1);
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
