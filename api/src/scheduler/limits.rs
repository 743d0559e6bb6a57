//! What one scheduler call may hold: read before the call is typed
//! ([`crate::mesos::bounded`]), so that a body within the size limit
//! cannot turn into much more memory than itself. Mesos sets no such
//! limits; these are far above what a framework sends (a framework that
//! reconciles more tasks splits the list over calls).

use crate::mesos::bounded::{JsonLimits, ListLimit};

/// Offer ids in one ACCEPT or DECLINE (one offer per agent and framework).
pub const MAX_OFFER_IDS: usize = 10_000;
/// Operations in one ACCEPT.
pub const MAX_OPERATIONS: usize = 1_000;
/// Tasks in one LAUNCH or LAUNCH_GROUP.
pub const MAX_TASKS: usize = 1_000;
/// Resources of one task, executor or RESERVE/UNRESERVE/CREATE/DESTROY.
pub const MAX_RESOURCES: usize = 1_000;
/// Tasks in one explicit RECONCILE, operations in one RECONCILE_OPERATIONS.
pub const MAX_RECONCILE: usize = 50_000;
/// Roles of a framework, or in one REVIVE/SUPPRESS.
pub const MAX_ROLES: usize = 1_000;

const fn list(path: &'static str, max: usize, what: &'static str) -> ListLimit {
    ListLimit { path, max, what }
}

const LAUNCH: &str = "accept.operations.launch.task_infos";
const GROUP: &str = "accept.operations.launch_group.task_group.tasks";

/// The limits of a scheduler call's body.
pub const CALL_LIMITS: JsonLimits = JsonLimits {
    max_depth: 32,
    max_values: 500_000,
    max_list_items: 10_000,
    lists: &[
        list("accept.offer_ids", MAX_OFFER_IDS, "offer ids per ACCEPT"),
        list("decline.offer_ids", MAX_OFFER_IDS, "offer ids per DECLINE"),
        list("accept.operations", MAX_OPERATIONS, "operations per ACCEPT"),
        list(LAUNCH, MAX_TASKS, "tasks per LAUNCH"),
        list(GROUP, MAX_TASKS, "tasks per LAUNCH_GROUP"),
        list(
            "accept.operations.launch.task_infos.resources",
            MAX_RESOURCES,
            "resources per task",
        ),
        list(
            "accept.operations.launch.task_infos.executor.resources",
            MAX_RESOURCES,
            "resources per executor",
        ),
        list(
            "accept.operations.launch_group.task_group.tasks.resources",
            MAX_RESOURCES,
            "resources per task",
        ),
        list(
            "accept.operations.launch_group.executor.resources",
            MAX_RESOURCES,
            "resources per executor",
        ),
        list(
            "accept.operations.reserve.resources",
            MAX_RESOURCES,
            "resources per RESERVE",
        ),
        list(
            "accept.operations.unreserve.resources",
            MAX_RESOURCES,
            "resources per UNRESERVE",
        ),
        list(
            "accept.operations.create.volumes",
            MAX_RESOURCES,
            "volumes per CREATE",
        ),
        list(
            "accept.operations.destroy.volumes",
            MAX_RESOURCES,
            "volumes per DESTROY",
        ),
        list("reconcile.tasks", MAX_RECONCILE, "tasks per RECONCILE"),
        list(
            "reconcile_operations.operations",
            MAX_RECONCILE,
            "operations per RECONCILE_OPERATIONS",
        ),
        list("revive.roles", MAX_ROLES, "roles per REVIVE"),
        list("suppress.roles", MAX_ROLES, "roles per SUPPRESS"),
        list(
            "subscribe.framework_info.roles",
            MAX_ROLES,
            "roles per framework",
        ),
        list(
            "subscribe.suppressed_roles",
            MAX_ROLES,
            "suppressed roles per framework",
        ),
        list(
            "update_framework.framework_info.roles",
            MAX_ROLES,
            "roles per framework",
        ),
        list(
            "update_framework.suppressed_roles",
            MAX_ROLES,
            "suppressed roles per framework",
        ),
    ],
};
