//! The allocator: which framework is offered which free resources.
//!
//! A pure core. The master's event loop reports what happens (agents and
//! frameworks come and go, offers are declined, tasks end) and calls
//! [`Allocator::allocate`] once per allocation cycle; the allocator answers
//! with [`Allocation`]s, each of which the master turns into one offer (one
//! agent x one role x one framework). No I/O, no clocks: time is passed in as
//! seconds (`now`), so tests are exact.
//!
//! The policy sits behind the [`Allocator`] trait; [`DrfAllocator`] is the
//! default, Mesos' hierarchical DRF (`drf.rs`; `cycle.rs` has the
//! algorithm, `sorter.rs` how the DRF order is kept without re-sorting).
//! [`conformance::run_all`] is the suite every policy must pass;
//! `benches/allocator.rs` measures a cycle at up to 50k agents.
//!
//! Files: `quantity.rs` (the four shared scalar kinds in fixed point),
//! `state.rs` and `accounting.rs` (what is where), `sorter.rs` (the DRF
//! order), `quota.rs` (guarantees, limits, headroom), `cycle.rs` (one
//! allocation cycle), `drf.rs` (the trait impl).

mod accounting;
pub mod conformance;
mod cycle;
mod drf;
mod quantity;
mod quota;
mod sorter;
mod state;

#[cfg(test)]
mod drf_tests;

use std::collections::BTreeSet;

use keel_api::resources::Resources;

pub use drf::DrfAllocator;

/// The policies by `--allocator` name.
pub const POLICIES: &[&str] = &["drf"];

/// The policy named `name` (see [`POLICIES`]), or `None` if unknown.
pub fn create(name: &str) -> Option<Box<dyn Allocator>> {
    match name {
        "drf" => Some(Box::new(DrfAllocator::new())),
        _ => None,
    }
}

/// What the allocator needs to know about a framework.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameworkSpec {
    pub id: String,
    /// The roles it subscribes to (`FrameworkInfo.roles`, or `[role]` for a
    /// framework without MULTI_ROLE).
    pub roles: Vec<String>,
    /// The MULTI_ROLE capability (informational: offers always carry their
    /// role).
    pub multi_role: bool,
    /// The GPU_RESOURCES capability: without it, agents with GPUs are never
    /// offered to the framework.
    pub gpu_resources: bool,
    /// Roles for which the framework wants no offers (SUPPRESS).
    pub suppressed_roles: BTreeSet<String>,
}

/// A role's quota. Only the scalar kinds DRF shares are counted (`cpus`,
/// `mem`, `disk`, `gpus`); the reservation role of the entries is ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quota {
    /// Held for the role: while it consumes less, it is allocated first and
    /// other roles do not get the unreserved resources needed to reach it.
    pub guarantee: Resources,
    /// Never exceeded (kinds not listed are unlimited).
    pub limit: Option<Resources>,
}

/// One offer's worth of resources: `resources` on `agent_id` for
/// `framework_id` in `role` (every resource carries
/// `allocation_info.role = role` on the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
}

/// What `GET_ROLES` / `GET_QUOTA` / `GET_WEIGHTS` report about one role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSummary {
    pub role: String,
    pub weight: f64,
    pub quota: Option<Quota>,
    /// Offered or used by frameworks in this role (not its sub-roles).
    pub allocated: Resources,
    /// Reserved to this role on agents (allocated or not).
    pub reserved: Resources,
    /// Quota consumption of the role and its sub-roles: reservations plus
    /// unreserved resources offered or used (cpus, mem, disk, gpus).
    pub consumed: Resources,
    /// Frameworks subscribed to this role, sorted.
    pub frameworks: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum AllocatorError {
    #[error("invalid weight {weight} for role {role}: must be a positive finite number")]
    InvalidWeight { role: String, weight: f64 },
    #[error("invalid quota for role {role}: {reason}")]
    InvalidQuota { role: String, reason: String },
}

/// An allocation policy. Unknown agent or framework ids are ignored: the
/// master is the source of truth and may report things in any order.
pub trait Allocator: Send {
    /// The policy's name, as the `--allocator` flag spells it.
    fn name(&self) -> &'static str;

    /// A new (or re-registered) agent; `used` lists what frameworks already
    /// run there as (framework id, role, resources).
    fn add_agent(&mut self, agent_id: &str, total: Resources, used: &[(String, String, Resources)]);
    /// The agent's total changed outside any offer, e.g. an operator's
    /// RESERVE/UNRESERVE (reservations are role-reserved resources).
    fn update_agent_total(&mut self, agent_id: &str, total: Resources);
    /// An offer operation (RESERVE, UNRESERVE, CREATE, DESTROY) turned `from`
    /// into `to` inside a framework's allocation; the agent's total changes
    /// the same way.
    fn update_allocation(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        from: &Resources,
        to: &Resources,
    );
    /// The agent is gone; what frameworks held there is forgotten.
    fn remove_agent(&mut self, agent_id: &str);
    fn activate_agent(&mut self, agent_id: &str);
    /// Not offered until activated again (e.g. disconnected, draining).
    fn deactivate_agent(&mut self, agent_id: &str);

    /// A framework subscribed (active). Its allocations reported earlier by
    /// agents are kept.
    fn add_framework(&mut self, spec: FrameworkSpec, now: f64);
    /// UPDATE_FRAMEWORK: roles, capabilities or suppressed roles changed.
    fn update_framework(&mut self, spec: FrameworkSpec);
    /// The framework is gone; everything it held goes back to the agents.
    fn remove_framework(&mut self, framework_id: &str);
    fn activate_framework(&mut self, framework_id: &str);
    /// Not offered until activated again (disconnected); drops its filters.
    fn deactivate_framework(&mut self, framework_id: &str);

    /// Resources come back (declined or unused offer, terminal task). With a
    /// filter the same framework is not offered these resources (or less) on
    /// that agent in that role before `now + refuse_seconds` (`None`, zero or
    /// negative: no filter; at most a year, as in Mesos).
    fn recover(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        role: &str,
        resources: &Resources,
        refuse_seconds: Option<f64>,
        now: f64,
    );
    /// Marks resources used by a framework. A task launched from an offer is
    /// already counted; this is for tasks reported by a re-registering agent.
    fn track_used(&mut self, framework_id: &str, agent_id: &str, role: &str, resources: &Resources);

    /// SUPPRESS: no offers in these roles (empty = all the framework's roles).
    fn suppress(&mut self, framework_id: &str, roles: &[String]);
    /// REVIVE: offers again in these roles (empty = all), filters cleared.
    fn revive(&mut self, framework_id: &str, roles: &[String]);

    /// A role's weight (default 1.0): its share counts divided by it.
    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError>;
    /// Sets (`Some`) or removes (`None`) a role's quota.
    fn set_quota(&mut self, role: &str, quota: Option<Quota>) -> Result<(), AllocatorError>;

    /// One allocation cycle: hands out what is free, at most one allocation
    /// per (framework, agent, role), in a deterministic order. Offered
    /// resources count as allocated until recovered.
    fn allocate(&mut self, now: f64) -> Vec<Allocation>;

    /// Every known role with anything to report, sorted by name.
    fn role_summary(&self) -> Vec<RoleSummary>;
}
