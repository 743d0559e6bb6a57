//! Offers: allocation cycles turn the allocator's decisions into OFFERS
//! events; DECLINE, timeouts, disconnections and agent changes give the
//! resources back (with RESCIND where the framework still holds the offer).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keel_api::mesos::Filters;
use keel_api::resources::Resources;
use serde_json::{Value as Json, json};

use super::frameworks::{FrameworkRuntime, send_event};
use super::{Inner, Master, tasks, unix_now};
use crate::registry::AgentRecord;
use crate::registry::volumes::Volume;
use crate::scheduler::events;

pub(crate) struct OfferRecord {
    pub id: String,
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
    /// Persistent volumes of `role` offered along (not allocator-managed).
    pub volumes: Vec<Volume>,
    pub created: Instant,
}

/// The agent's volumes of `role` that no task uses and no offer holds.
fn free_volumes(inner: &Inner, agent: &AgentRecord, role: &str) -> Vec<Volume> {
    agent
        .volumes
        .iter()
        .filter(|v| v.role == role)
        .filter(|v| {
            !inner.offers.values().any(|o| {
                o.agent_id == agent.id && o.volumes.iter().any(|x| x.id == v.id && x.role == v.role)
            })
        })
        .filter(|v| !tasks::volume_in_use(inner, &agent.id, &v.role, &v.id))
        .cloned()
        .collect()
}

/// Resources as a framework sees them: `allocation_info` on each, and the
/// reservation format it asked for (pre-refinement `role`, or `reservations`
/// with RESERVATION_REFINEMENT).
pub fn resources_json(
    resources: &Resources,
    allocation_role: Option<&str>,
    refinement: bool,
) -> Vec<Json> {
    let Json::Array(items) = resources.to_v1_json() else {
        return Vec::new();
    };
    items
        .into_iter()
        .map(|mut r| {
            if let Some(obj) = r.as_object_mut() {
                if refinement {
                    obj.remove("role");
                    obj.entry("reservations").or_insert_with(|| json!([]));
                } else {
                    obj.remove("reservations");
                }
                if let Some(role) = allocation_role {
                    obj.insert("allocation_info".into(), json!({ "role": role }));
                }
            }
            r
        })
        .collect()
}

fn offer_json(
    offer: &OfferRecord,
    fw: &FrameworkRuntime,
    agent: &AgentRecord,
    executor_ids: Vec<String>,
) -> Json {
    json!({
        "id": { "value": offer.id },
        "framework_id": { "value": offer.framework_id },
        "agent_id": { "value": offer.agent_id },
        "hostname": agent.info.hostname,
        "url": {
            "scheme": "http",
            "address": { "hostname": agent.info.hostname, "ip": agent.info.ip, "port": agent.info.port },
            "path": "/slave(1)",
        },
        "resources": resources_json(&offer.resources, Some(&offer.role), fw.refinement())
            .into_iter()
            .chain(offer.volumes.iter().map(|v| v.to_resource_json(Some(&offer.role), fw.refinement())))
            .collect::<Vec<_>>(),
        "attributes": agent.info.attributes.to_v1_json(),
        "executor_ids": executor_ids.iter().map(|e| json!({ "value": e })).collect::<Vec<_>>(),
        "allocation_info": { "role": offer.role },
    })
}

/// Removes an offer and returns its resources to the allocator.
fn rescind(inner: &mut Inner, offer_id: &str, notify: bool, refuse_seconds: Option<f64>) {
    let Some(offer) = inner.offers.remove(offer_id) else {
        return;
    };
    inner.allocator.recover(
        &offer.framework_id,
        &offer.agent_id,
        &offer.role,
        &offer.resources,
        refuse_seconds,
        unix_now(),
    );
    if notify {
        send_event(inner, &offer.framework_id, &events::rescind(offer_id));
    }
}

pub(super) fn rescind_agent_offers(inner: &mut Inner, agent_id: &str) {
    let ids: Vec<String> = inner
        .offers
        .values()
        .filter(|o| o.agent_id == agent_id)
        .map(|o| o.id.clone())
        .collect();
    for id in ids {
        rescind(inner, &id, true, None);
    }
}

/// Gives back every offer a framework holds (`notify`: tell it with RESCIND).
pub(super) fn recover_framework_offers(inner: &mut Inner, framework_id: &str, notify: bool) {
    let ids: Vec<String> = inner
        .offers
        .values()
        .filter(|o| o.framework_id == framework_id)
        .map(|o| o.id.clone())
        .collect();
    for id in ids {
        rescind(inner, &id, notify, None);
    }
}

pub(super) fn expire_offers(inner: &mut Inner, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return;
    };
    let ids: Vec<String> = inner
        .offers
        .values()
        .filter(|o| o.created.elapsed() >= timeout)
        .map(|o| o.id.clone())
        .collect();
    for id in ids {
        tracing::debug!(offer_id = %id, "offer timed out");
        rescind(inner, &id, true, None);
    }
}

/// Takes the offers an ACCEPT names. All must exist, belong to the
/// framework and sit on one agent; otherwise nothing is taken and the
/// reason is returned.
pub(super) fn take_offers(
    inner: &mut Inner,
    framework_id: &str,
    offer_ids: &[String],
) -> Result<Vec<OfferRecord>, String> {
    if offer_ids.is_empty() {
        return Err("No offers specified".into());
    }
    let mut agent: Option<&str> = None;
    let mut seen = std::collections::BTreeSet::new();
    for id in offer_ids {
        if !seen.insert(id) {
            return Err(format!("Offer {id} appears more than once"));
        }
        let Some(o) = inner.offers.get(id) else {
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
        .filter_map(|id| inner.offers.remove(id))
        .collect())
}

impl Master {
    /// One allocation cycle; returns how many offers went out.
    pub fn allocate(&self) -> usize {
        let mut inner = self.lock();
        let allocations = inner.allocator.allocate(unix_now());
        let master_id = inner.registry.master_id().unwrap_or_default().to_string();
        let mut per_framework: BTreeMap<String, Vec<Json>> = BTreeMap::new();
        let mut sent = 0;
        for a in allocations {
            let connected = inner
                .frameworks
                .get(&a.framework_id)
                .is_some_and(|f| f.connected());
            let id = format!("{master_id}-O{}", inner.next_offer_seq);
            // Built under a shared borrow: the agent record (with its
            // inventory) is read in place, not copied per offer.
            let built = match (connected, inner.registry.agent(&a.agent_id)) {
                (true, Some(agent)) => {
                    let offer = OfferRecord {
                        id: id.clone(),
                        framework_id: a.framework_id.clone(),
                        agent_id: a.agent_id.clone(),
                        role: a.role.clone(),
                        resources: a.resources.clone(),
                        volumes: free_volumes(&inner, agent, &a.role),
                        created: Instant::now(),
                    };
                    let executors = tasks::executor_ids_on(&inner, &a.framework_id, &a.agent_id);
                    let json =
                        offer_json(&offer, &inner.frameworks[&a.framework_id], agent, executors);
                    Some((offer, json))
                }
                _ => None,
            };
            let Some((offer, json)) = built else {
                inner.allocator.recover(
                    &a.framework_id,
                    &a.agent_id,
                    &a.role,
                    &a.resources,
                    None,
                    unix_now(),
                );
                continue;
            };
            inner.next_offer_seq += 1;
            per_framework.entry(a.framework_id).or_default().push(json);
            inner.offers.insert(id, offer);
            sent += 1;
        }
        for (framework_id, offers) in per_framework {
            let ids: Vec<String> = offers
                .iter()
                .filter_map(|o| o["id"]["value"].as_str().map(str::to_string))
                .collect();
            if !send_event(&mut inner, &framework_id, &events::offers(offers)) {
                for id in ids {
                    rescind(&mut inner, &id, false, None);
                }
            }
        }
        sent
    }

    /// DECLINE: the offers' resources go back, filtered for `refuse_seconds`.
    pub fn decline(&self, framework_id: &str, offer_ids: &[String], filters: Filters) {
        let mut inner = self.lock();
        for id in offer_ids {
            if inner
                .offers
                .get(id)
                .is_some_and(|o| o.framework_id == framework_id)
            {
                rescind(&mut inner, id, false, Some(filters.refuse_seconds()));
            }
        }
        drop(inner);
        self.want_allocation();
    }

    /// Outstanding offers, for operator views: (offer id, framework, agent, role, resources).
    pub fn outstanding_offers(&self) -> Vec<(String, String, String, String, Resources)> {
        let inner = self.lock();
        let mut v: Vec<_> = inner
            .offers
            .values()
            .map(|o| {
                (
                    o.id.clone(),
                    o.framework_id.clone(),
                    o.agent_id.clone(),
                    o.role.clone(),
                    o.resources.clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_resources_carry_allocation_info_in_the_requested_format() {
        let rs = Resources::parse("cpus:2;mem(eng):512").unwrap();
        let pre = resources_json(&rs, Some("eng"), false);
        assert!(pre.iter().all(|r| r["allocation_info"]["role"] == "eng"));
        assert!(pre.iter().any(|r| r["name"] == "cpus" && r["role"] == "*"));
        assert!(pre.iter().all(|r| r.get("reservations").is_none()));
        let refined = resources_json(&rs, Some("eng"), true);
        assert!(refined.iter().all(|r| r.get("role").is_none()));
        let mem = refined.iter().find(|r| r["name"] == "mem").unwrap();
        assert_eq!(mem["reservations"][0]["role"], "eng");
    }
}
