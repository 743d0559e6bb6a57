//! Offers: allocation cycles turn the allocator's decisions into OFFERS
//! events; DECLINE, timeouts, disconnections and agent changes give the
//! resources back (with RESCIND where the framework still holds the offer).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use keel_api::mesos::{Filters, Id, Resource};
use keel_api::operator::Unavailability;
use keel_api::operator::frameworks::Url;
use keel_api::operator::master::Address;
use keel_api::resources::Resources;
use keel_api::resources::v1::AllocationInfo;
use keel_api::scheduler::{Event, Offer};

use super::{Engine, Now, tasks};
use crate::registry::AgentRecord;
use crate::registry::volumes::Volume;

pub(super) struct OfferRecord {
    pub id: String,
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
    /// Persistent volumes of `role` offered along (not allocator-managed).
    pub volumes: Vec<Volume>,
    pub created: Instant,
    /// The agent's maintenance window when the offer was made.
    pub unavailability: Option<Unavailability>,
}

/// An outstanding offer, for operator views.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferView {
    pub id: String,
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
}

#[derive(Default)]
pub(super) struct OfferBook {
    pub(super) offers: HashMap<String, OfferRecord>,
    /// Offers and inverse offers share the id sequence.
    pub(super) next_seq: u64,
}

/// Resources as a framework sees them: `allocation_info` on each, and the
/// reservation format it asked for (pre-refinement `role`, or
/// `reservations` with RESERVATION_REFINEMENT).
pub fn offered_resources(
    resources: &Resources,
    allocation_role: Option<&str>,
    refinement: bool,
) -> Vec<Resource> {
    let mut list = resources.to_v1();
    for r in &mut list {
        if refinement {
            // Only `reservations`: empty for unreserved resources.
            r.role = None;
            r.reservations.get_or_insert_with(Vec::new);
        } else {
            r.reservations = None;
        }
        r.allocation_info = allocation_role.map(AllocationInfo::role);
    }
    list
}

/// The agent's volumes of `role` that no task uses and no offer holds.
fn free_volumes(e: &Engine, agent: &AgentRecord, role: &str) -> Vec<Volume> {
    agent
        .volumes
        .iter()
        .filter(|v| v.role == role)
        .filter(|v| {
            !e.offers.offers.values().any(|o| {
                o.agent_id == agent.id && o.volumes.iter().any(|x| x.id == v.id && x.role == v.role)
            })
        })
        .filter(|v| !tasks::volume_in_use(e, &agent.id, &v.role, &v.id))
        .cloned()
        .collect()
}

fn offer_of(e: &Engine, o: &OfferRecord, agent: &AgentRecord, executor_ids: Vec<String>) -> Offer {
    let refinement = e
        .frameworks
        .get(&o.framework_id)
        .is_some_and(|f| f.refinement());
    let mut resources = offered_resources(&o.resources, Some(&o.role), refinement);
    resources.extend(
        o.volumes
            .iter()
            .map(|v| v.to_resource(Some(&o.role), refinement)),
    );
    let info = &agent.info;
    Offer {
        id: Id::new(&o.id),
        framework_id: Id::new(&o.framework_id),
        agent_id: Id::new(&o.agent_id),
        hostname: Some(info.hostname.clone()),
        url: Some(Url {
            scheme: "http".into(),
            address: Address {
                hostname: Some(info.hostname.clone()),
                ip: Some(info.ip.clone()),
                port: info.port,
            },
            path: Some("/slave(1)".into()),
        }),
        resources,
        attributes: info.attributes.to_v1(),
        executor_ids: executor_ids.into_iter().map(Id::new).collect(),
        allocation_info: Some(AllocationInfo::role(o.role.clone())),
        domain: None,
        unavailability: o.unavailability,
    }
}

/// Removes an offer and returns its resources to the allocator.
fn rescind(e: &mut Engine, offer_id: &str, notify: bool, refuse_seconds: Option<f64>, now: f64) {
    let Some(offer) = e.offers.offers.remove(offer_id) else {
        return;
    };
    e.allocator.recover(
        &offer.framework_id,
        &offer.agent_id,
        &offer.role,
        &offer.resources,
        refuse_seconds,
        now,
    );
    if notify {
        e.send_framework(
            &offer.framework_id,
            Event::Rescind {
                offer_id: Id::new(offer_id),
            },
        );
    }
}

fn offer_ids(e: &Engine, f: impl Fn(&OfferRecord) -> bool) -> Vec<String> {
    let mut ids: Vec<String> = e
        .offers
        .offers
        .values()
        .filter(|o| f(o))
        .map(|o| o.id.clone())
        .collect();
    ids.sort();
    ids
}

pub(super) fn rescind_agent_offers(e: &mut Engine, agent_id: &str) {
    for id in offer_ids(e, |o| o.agent_id == agent_id) {
        rescind(e, &id, true, None, 0.0);
    }
}

/// The agent and unavailability of each outstanding offer.
pub(super) fn offers_unavailability(e: &Engine) -> Vec<(String, Option<Unavailability>)> {
    e.offers
        .offers
        .values()
        .map(|o| (o.agent_id.clone(), o.unavailability))
        .collect()
}

/// Gives back every offer a framework holds (`notify`: tell it with
/// RESCIND); its inverse offers go too.
pub(super) fn recover_framework_offers(e: &mut Engine, framework_id: &str, notify: bool) {
    for id in offer_ids(e, |o| o.framework_id == framework_id) {
        rescind(e, &id, notify, None, 0.0);
    }
    super::inverse::drop_framework(e, framework_id);
}

/// Takes the offers an ACCEPT names. All must exist, belong to the
/// framework and sit on one agent; otherwise nothing is taken and the
/// reason is returned.
pub(super) fn take_offers(
    e: &mut Engine,
    framework_id: &str,
    offer_ids: &[String],
) -> Result<Vec<OfferRecord>, String> {
    if offer_ids.is_empty() {
        return Err("No offers specified".into());
    }
    let mut agent: Option<&str> = None;
    let mut seen = BTreeSet::new();
    for id in offer_ids {
        if !seen.insert(id) {
            return Err(format!("Offer {id} appears more than once"));
        }
        let Some(o) = e.offers.offers.get(id) else {
            return Err(format!("Offer {id} is no longer valid"));
        };
        if o.framework_id != framework_id {
            return Err(format!("Offer {id} belongs to another framework"));
        }
        match agent {
            Some(a) if a != o.agent_id => {
                return Err("Aggregated offers must belong to one agent".into());
            }
            _ => agent = Some(&o.agent_id),
        }
    }
    Ok(offer_ids
        .iter()
        .filter_map(|id| e.offers.offers.remove(id))
        .collect())
}

impl Engine {
    /// One allocation cycle; returns how many offers went out.
    pub fn allocate(&mut self, now: Now) -> usize {
        let allocations = self.allocator.allocate(now.unix);
        let unavailable: HashMap<String, Unavailability> = self
            .registry
            .scheduled_agents()
            .into_iter()
            .map(|(id, w)| (id.to_string(), super::inverse::unavailability(w)))
            .collect();
        let master_id = self.registry.master_id().unwrap_or_default().to_string();
        let mut per_framework: BTreeMap<String, Vec<Offer>> = BTreeMap::new();
        let mut sent = 0;
        for a in allocations {
            let connected = self
                .frameworks
                .get(&a.framework_id)
                .is_some_and(|f| f.connected());
            let id = format!("{master_id}-O{}", self.offers.next_seq);
            // Built under a shared borrow: the agent record (with its
            // inventory) is read in place, not copied per offer.
            let built = match (connected, self.registry.agent(&a.agent_id)) {
                (true, Some(agent)) => {
                    let record = OfferRecord {
                        id: id.clone(),
                        framework_id: a.framework_id.clone(),
                        agent_id: a.agent_id.clone(),
                        role: a.role.clone(),
                        resources: a.resources.clone(),
                        volumes: free_volumes(self, agent, &a.role),
                        created: now.instant,
                        unavailability: unavailable.get(&a.agent_id).copied(),
                    };
                    let executors = tasks::executor_ids_on(self, &a.framework_id, &a.agent_id);
                    let offer = offer_of(self, &record, agent, executors);
                    Some((record, offer))
                }
                _ => None,
            };
            let Some((record, offer)) = built else {
                self.allocator.recover(
                    &a.framework_id,
                    &a.agent_id,
                    &a.role,
                    &a.resources,
                    None,
                    now.unix,
                );
                continue;
            };
            self.offers.next_seq += 1;
            per_framework.entry(a.framework_id).or_default().push(offer);
            self.offers.offers.insert(id, record);
            sent += 1;
        }
        for (framework_id, offers) in per_framework {
            self.send_framework(&framework_id, Event::Offers(offers));
        }
        self.send_inverse_offers(now);
        sent
    }

    /// The framework could not take an OFFERS event (its stream is full
    /// or gone): the offers in it go back without a rescind.
    pub fn offers_undelivered(&mut self, offers: &[Offer], now: Now) {
        for o in offers {
            rescind(self, &o.id.value, false, None, now.unix);
        }
    }

    /// DECLINE: the offers' resources go back, filtered for `refuse_seconds`.
    pub fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[String],
        filters: Filters,
        now: Now,
    ) {
        for id in offer_ids {
            if self
                .offers
                .offers
                .get(id)
                .is_some_and(|o| o.framework_id == framework_id)
            {
                rescind(self, id, false, Some(filters.refuse_seconds()), now.unix);
            }
        }
        self.allocate_soon();
    }

    /// Offers outstanding longer than the offer timeout are rescinded.
    pub fn expire_offers(&mut self, now: Now) {
        let Some(timeout) = self.cfg.offer_timeout else {
            return;
        };
        let expired = offer_ids(self, |o| {
            now.instant.saturating_duration_since(o.created) >= timeout
        });
        for id in expired {
            tracing::debug!(offer_id = %id, "offer timed out");
            rescind(self, &id, true, None, now.unix);
        }
    }

    /// Outstanding offers, sorted by id.
    pub fn outstanding_offers(&self) -> Vec<OfferView> {
        let mut v: Vec<OfferView> = self
            .offers
            .offers
            .values()
            .map(|o| OfferView {
                id: o.id.clone(),
                framework_id: o.framework_id.clone(),
                agent_id: o.agent_id.clone(),
                role: o.role.clone(),
                resources: o.resources.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}
