//! Inverse offers (maintenance): for every agent whose machine is in the
//! maintenance schedule, each connected framework using resources there
//! (running tasks, or holding an offer) gets one INVERSE_OFFERS with the
//! window's unavailability. ACCEPT_INVERSE_OFFERS and
//! DECLINE_INVERSE_OFFERS are recorded per agent and framework for
//! GET_MAINTENANCE_STATUS, and filter the next inverse offer for the
//! filter's `refuse_seconds` (as Mesos' allocator does). Inverse offers
//! are runtime state: a new leader asks again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use keel_api::mesos::{Filters, Id, Nanos};
use keel_api::operator::Unavailability;
use keel_api::operator::maintenance::{InverseOffer, InverseOfferAnswer};
use keel_api::scheduler::Event;

use super::{Engine, Now};
use crate::registry::Window;

pub(super) struct InverseRecord {
    pub framework_id: String,
    pub agent_id: String,
}

#[derive(Default)]
pub(super) struct InverseBook {
    outstanding: HashMap<String, InverseRecord>,
    /// (framework, agent): no inverse offer before this (unix seconds).
    filters: HashMap<(String, String), f64>,
    /// (agent, framework): the last answer and when (unix seconds).
    answers: BTreeMap<(String, String), (InverseOfferAnswer, f64)>,
}

/// A framework's answer to one agent's maintenance, for the status view.
#[derive(Debug, Clone, PartialEq)]
pub struct InverseAnswer {
    pub agent_id: String,
    pub framework_id: String,
    pub answer: InverseOfferAnswer,
    pub at: f64,
}

/// The window's unavailability, as offers and inverse offers carry it.
pub fn unavailability(w: &Window) -> Unavailability {
    Unavailability {
        start: Nanos {
            nanoseconds: w.start_ns,
        },
        duration: w.duration_ns.map(|nanoseconds| Nanos { nanoseconds }),
    }
}

/// The agents with outstanding inverse offers, answers or filters.
pub(super) fn agents_asked(e: &Engine) -> BTreeSet<String> {
    let i = &e.inverse;
    i.outstanding
        .values()
        .map(|r| r.agent_id.clone())
        .chain(i.answers.keys().map(|(a, _)| a.clone()))
        .chain(i.filters.keys().map(|(_, a)| a.clone()))
        .collect()
}

/// Rescinds the agent's outstanding inverse offers (RESCIND_INVERSE_OFFER);
/// with `forget`, its answers and filters go too.
pub(super) fn rescind_agent(e: &mut Engine, agent_id: &str, forget: bool) {
    let mut ids: Vec<String> = e
        .inverse
        .outstanding
        .iter()
        .filter(|(_, r)| r.agent_id == agent_id)
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    for id in ids {
        if let Some(r) = e.inverse.outstanding.remove(&id) {
            e.send_framework(
                &r.framework_id,
                Event::RescindInverseOffer {
                    inverse_offer_id: Id::new(&id),
                },
            );
        }
    }
    if forget {
        e.inverse.answers.retain(|(a, _), _| a != agent_id);
        e.inverse.filters.retain(|(_, a), _| a != agent_id);
    }
}

/// The framework went away or lost its stream: its inverse offers go
/// (no rescind: it has no stream to hear it).
pub(super) fn drop_framework(e: &mut Engine, framework_id: &str) {
    e.inverse
        .outstanding
        .retain(|_, r| r.framework_id != framework_id);
}

/// For each agent of `agents`: the frameworks using resources there
/// (tasks not terminal, or outstanding offers). One pass over the tasks
/// and offers.
fn users<'a>(e: &'a Engine, agents: &HashSet<&str>) -> HashMap<&'a str, BTreeSet<&'a str>> {
    let mut out: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let tasks = e
        .tasks
        .values()
        .filter(|t| !t.state.is_terminal())
        .map(|t| (t.agent_id.as_str(), t.framework_id.as_str()));
    let offers = e
        .offers
        .offers
        .values()
        .map(|o| (o.agent_id.as_str(), o.framework_id.as_str()));
    for (agent, fw) in tasks.chain(offers) {
        if agents.contains(agent) {
            out.entry(agent).or_default().insert(fw);
        }
    }
    out
}

impl Engine {
    /// Sends the inverse offers due now (part of an allocation cycle);
    /// returns how many went out.
    pub(super) fn send_inverse_offers(&mut self, now: Now) -> usize {
        if self.registry.maintenance().windows.is_empty() {
            return 0;
        }
        let master_id = self.registry.master_id().unwrap_or_default().to_string();
        let mut due: Vec<(String, String, Unavailability)> = Vec::new();
        let mut scheduled: Vec<(&str, &Window)> = self
            .registry
            .scheduled_agents()
            .into_iter()
            .filter(|(id, _)| self.agents.session(id).is_some())
            .collect();
        scheduled.sort_by_key(|(id, _)| *id);
        let ids: HashSet<&str> = scheduled.iter().map(|(id, _)| *id).collect();
        let users = users(self, &ids);
        let outstanding: HashSet<(&str, &str)> = self
            .inverse
            .outstanding
            .values()
            .map(|r| (r.framework_id.as_str(), r.agent_id.as_str()))
            .collect();
        for (agent_id, window) in scheduled {
            for fw in users.get(agent_id).into_iter().flatten() {
                let connected = self.frameworks.get(*fw).is_some_and(|f| f.connected());
                let filtered = self
                    .inverse
                    .filters
                    .get(&(fw.to_string(), agent_id.to_string()))
                    .is_some_and(|until| now.unix < *until);
                if connected && !outstanding.contains(&(*fw, agent_id)) && !filtered {
                    due.push((fw.to_string(), agent_id.to_string(), unavailability(window)));
                }
            }
        }
        let mut per_framework: BTreeMap<String, Vec<InverseOffer>> = BTreeMap::new();
        let sent = due.len();
        for (framework_id, agent_id, unavailability) in due {
            let id = format!("{master_id}-O{}", self.offers.next_seq);
            self.offers.next_seq += 1;
            self.inverse
                .answers
                .entry((agent_id.clone(), framework_id.clone()))
                .or_insert((InverseOfferAnswer::UNKNOWN, now.unix));
            per_framework
                .entry(framework_id.clone())
                .or_default()
                .push(InverseOffer {
                    id: Id::new(&id),
                    framework_id: Id::new(&framework_id),
                    agent_id: Some(Id::new(&agent_id)),
                    unavailability,
                    resources: Vec::new(),
                });
            self.inverse.outstanding.insert(
                id,
                InverseRecord {
                    framework_id,
                    agent_id,
                },
            );
        }
        for (framework_id, list) in per_framework {
            self.send_framework(&framework_id, Event::InverseOffers(list));
        }
        sent
    }

    /// ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS: recorded, and no
    /// new inverse offer for the agent until the filter passes. Ids that
    /// are not the framework's outstanding inverse offers are ignored.
    pub fn answer_inverse_offers(
        &mut self,
        framework_id: &str,
        ids: &[String],
        accept: bool,
        filters: Filters,
        now: Now,
    ) {
        let answer = match accept {
            true => InverseOfferAnswer::ACCEPT,
            false => InverseOfferAnswer::DECLINE,
        };
        for id in ids {
            let theirs = self
                .inverse
                .outstanding
                .get(id)
                .is_some_and(|r| r.framework_id == framework_id);
            if !theirs {
                tracing::debug!(%framework_id, inverse_offer_id = %id, "unknown inverse offer answered");
                continue;
            }
            let Some(r) = self.inverse.outstanding.remove(id) else {
                continue;
            };
            self.inverse.answers.insert(
                (r.agent_id.clone(), r.framework_id.clone()),
                (answer, now.unix),
            );
            self.inverse.filters.insert(
                (r.framework_id, r.agent_id),
                now.unix + filters.refuse_seconds(),
            );
        }
    }

    /// Every recorded answer to inverse offers, by agent then framework.
    pub fn inverse_answers(&self) -> Vec<InverseAnswer> {
        self.inverse
            .answers
            .iter()
            .map(|((agent_id, framework_id), (answer, at))| InverseAnswer {
                agent_id: agent_id.clone(),
                framework_id: framework_id.clone(),
                answer: *answer,
                at: *at,
            })
            .collect()
    }

    /// Outstanding inverse offers as (id, framework, agent), sorted.
    pub fn outstanding_inverse_offers(&self) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = self
            .inverse
            .outstanding
            .iter()
            .map(|(id, r)| (id.clone(), r.framework_id.clone(), r.agent_id.clone()))
            .collect();
        v.sort();
        v
    }
}
