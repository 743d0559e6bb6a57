//! One consistent snapshot of everything the operator views show, taken
//! in one go so that a view never mixes two moments.

use std::collections::BTreeMap;

use keel_api::mesos::TaskState;
use keel_api::resources::Resources;

use super::{Engine, FrameworkView, OfferView, TaskView};
use crate::allocator::RoleSummary;
use crate::registry::Registry;

pub struct Snapshot {
    pub registry: Registry,
    pub frameworks: Vec<FrameworkView>,
    pub live: Vec<TaskView>,
    pub completed: Vec<TaskView>,
    pub offers: Vec<OfferView>,
    /// Outstanding inverse offers as (id, framework, agent).
    pub inverse_offers: Vec<(String, String, String)>,
    pub roles: Vec<RoleSummary>,
    /// When this master took over (unix seconds), while it leads.
    pub elected_time: Option<f64>,
}

impl Snapshot {
    /// Taken from the master's state at one moment.
    pub fn take(master: &crate::core::Master) -> Snapshot {
        master.snapshot()
    }

    fn sum<'a>(items: impl Iterator<Item = &'a Resources>) -> Resources {
        let mut total = Resources::default();
        for r in items {
            total.add(r);
        }
        total
    }

    /// Resources of running tasks (not terminal, not unreachable) that
    /// pass `f`.
    pub fn used(&self, f: impl Fn(&TaskView) -> bool) -> Resources {
        Self::sum(
            self.live
                .iter()
                .filter(|t| {
                    !t.state.is_terminal() && t.state != TaskState::TASK_UNREACHABLE && f(t)
                })
                .map(|t| &t.resources),
        )
    }

    /// Resources of outstanding offers whose (framework, agent) pass `f`.
    pub fn offered(&self, f: impl Fn(&str, &str) -> bool) -> Resources {
        Self::sum(
            self.offers
                .iter()
                .filter(|o| f(&o.framework_id, &o.agent_id))
                .map(|o| &o.resources),
        )
    }

    /// Per agent: what its tasks use and what its offers hold.
    pub fn per_agent(&self) -> BTreeMap<String, (Resources, Resources)> {
        let mut out: BTreeMap<String, (Resources, Resources)> = BTreeMap::new();
        for t in self
            .live
            .iter()
            .filter(|t| !t.state.is_terminal() && t.state != TaskState::TASK_UNREACHABLE)
        {
            out.entry(t.agent_id.clone())
                .or_default()
                .0
                .add(&t.resources);
        }
        for o in &self.offers {
            out.entry(o.agent_id.clone())
                .or_default()
                .1
                .add(&o.resources);
        }
        out
    }
}

impl Engine {
    /// Everything the views need, at one moment.
    pub fn snapshot(&self) -> Snapshot {
        let (live, completed) = self.tasks();
        Snapshot {
            registry: self.registry.clone(),
            frameworks: self.framework_views(),
            live,
            completed,
            offers: self.outstanding_offers(),
            inverse_offers: self.outstanding_inverse_offers(),
            roles: self.role_summary(),
            elected_time: self.elected_time,
        }
    }
}
