//! What a principal may be authorized to do: the ACL actions of Mesos'
//! local authorizer that Keel enforces, and Keel's own.

/// An authorizable action; its ACL key and object field are Mesos' (Keel's
/// own for the last four: `view_agents`, `manage_masters`, `manage_tokens`,
/// `approve_agents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    RegisterFramework,
    RunTask,
    TeardownFramework,
    ReserveResources,
    UnreserveResources,
    CreateVolume,
    DestroyVolume,
    /// GROW_VOLUME and SHRINK_VOLUME (`resize_volumes`).
    ResizeVolume,
    UpdateWeight,
    UpdateQuota,
    GetQuota,
    ViewRole,
    ViewFramework,
    ViewTask,
    ViewFlags,
    AccessSandbox,
    RegisterAgent,
    UpdateMaintenanceSchedule,
    GetMaintenanceSchedule,
    StartMaintenance,
    StopMaintenance,
    GetMaintenanceStatus,
    /// MARK_AGENT_GONE (`mark_agents_gone`).
    MarkAgentGone,
    /// SET_LOGGING_LEVEL (`set_log_level`).
    SetLogLevel,
    /// DRAIN_AGENT (`drain_agents`).
    DrainAgent,
    /// DEACTIVATE_AGENT (`deactivate_agents`).
    DeactivateAgent,
    /// REACTIVATE_AGENT (`reactivate_agents`).
    ReactivateAgent,
    /// Keel: the agents and their inventories (`view_agents`).
    ViewAgent,
    /// Keel: add and remove masters (`manage_masters`).
    ManageMasters,
    /// Keel: create, list and revoke tokens (`manage_tokens`).
    ManageTokens,
    /// Keel: approve or deny agents that wait with an attested TPM
    /// (`approve_agents`).
    ApproveAgent,
}

impl Action {
    pub const ALL: [Action; 31] = [
        Action::RegisterFramework,
        Action::RunTask,
        Action::TeardownFramework,
        Action::ReserveResources,
        Action::UnreserveResources,
        Action::CreateVolume,
        Action::DestroyVolume,
        Action::ResizeVolume,
        Action::UpdateWeight,
        Action::UpdateQuota,
        Action::GetQuota,
        Action::ViewRole,
        Action::ViewFramework,
        Action::ViewTask,
        Action::ViewFlags,
        Action::AccessSandbox,
        Action::RegisterAgent,
        Action::UpdateMaintenanceSchedule,
        Action::GetMaintenanceSchedule,
        Action::StartMaintenance,
        Action::StopMaintenance,
        Action::GetMaintenanceStatus,
        Action::MarkAgentGone,
        Action::SetLogLevel,
        Action::DrainAgent,
        Action::DeactivateAgent,
        Action::ReactivateAgent,
        Action::ViewAgent,
        Action::ManageMasters,
        Action::ManageTokens,
        Action::ApproveAgent,
    ];

    /// The key of its rules in the ACL file, and the name of their
    /// object field.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Action::RegisterFramework => ("register_frameworks", "roles"),
            Action::RunTask => ("run_tasks", "users"),
            Action::TeardownFramework => ("teardown_frameworks", "framework_principals"),
            Action::ReserveResources => ("reserve_resources", "roles"),
            Action::UnreserveResources => ("unreserve_resources", "reserver_principals"),
            Action::CreateVolume => ("create_volumes", "roles"),
            Action::DestroyVolume => ("destroy_volumes", "creator_principals"),
            Action::ResizeVolume => ("resize_volumes", "roles"),
            Action::UpdateWeight => ("update_weights", "roles"),
            Action::UpdateQuota => ("update_quotas", "roles"),
            Action::GetQuota => ("get_quotas", "roles"),
            Action::ViewRole => ("view_roles", "roles"),
            Action::ViewFramework => ("view_frameworks", "users"),
            Action::ViewTask => ("view_tasks", "users"),
            Action::ViewFlags => ("view_flags", "flags"),
            Action::AccessSandbox => ("access_sandboxes", "users"),
            Action::RegisterAgent => ("register_agents", "agents"),
            Action::UpdateMaintenanceSchedule => ("update_maintenance_schedules", "machines"),
            Action::GetMaintenanceSchedule => ("get_maintenance_schedules", "machines"),
            Action::StartMaintenance => ("start_maintenances", "machines"),
            Action::StopMaintenance => ("stop_maintenances", "machines"),
            Action::GetMaintenanceStatus => ("get_maintenance_statuses", "machines"),
            Action::MarkAgentGone => ("mark_agents_gone", "agents"),
            Action::SetLogLevel => ("set_log_level", "level"),
            Action::DrainAgent => ("drain_agents", "agents"),
            Action::DeactivateAgent => ("deactivate_agents", "agents"),
            Action::ReactivateAgent => ("reactivate_agents", "agents"),
            Action::ViewAgent => ("view_agents", "agents"),
            Action::ManageMasters => ("manage_masters", "masters"),
            Action::ManageTokens => ("manage_tokens", "tokens"),
            Action::ApproveAgent => ("approve_agents", "agents"),
        }
    }

    pub fn key(self) -> &'static str {
        self.names().0
    }

    pub fn object_field(self) -> &'static str {
        self.names().1
    }

    pub fn from_key(key: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.key() == key)
    }

    /// Whose objects are roles, matched hierarchically (`eng/%`).
    pub fn hierarchical_roles(self) -> bool {
        self.object_field() == "roles"
    }

    /// Reads only (what a certificate of role `reader` may do).
    pub fn is_view(self) -> bool {
        matches!(
            self,
            Action::GetQuota
                | Action::ViewRole
                | Action::ViewFramework
                | Action::ViewTask
                | Action::ViewFlags
                | Action::AccessSandbox
                | Action::GetMaintenanceSchedule
                | Action::GetMaintenanceStatus
                | Action::ViewAgent
        )
    }

    /// "register a framework with role 'eng'": what was refused.
    pub fn describe(self, object: Option<&str>) -> String {
        let (what, of) = match self {
            Action::RegisterFramework => ("register a framework", "with role"),
            Action::RunTask => ("run tasks", "as user"),
            Action::TeardownFramework => ("tear down frameworks", "of principal"),
            Action::ReserveResources => ("reserve resources", "for role"),
            Action::UnreserveResources => ("unreserve resources", "reserved by principal"),
            Action::CreateVolume => ("create volumes", "for role"),
            Action::DestroyVolume => ("destroy volumes", "created by principal"),
            Action::ResizeVolume => ("resize volumes", "for role"),
            Action::UpdateWeight => ("update weights", "of role"),
            Action::UpdateQuota => ("update quotas", "of role"),
            Action::GetQuota => ("view quotas", "of role"),
            Action::ViewRole => ("view roles", "named"),
            Action::ViewFramework => ("view frameworks", "of user"),
            Action::ViewTask => ("view tasks", "of user"),
            Action::ViewFlags => ("view the flags", ""),
            Action::AccessSandbox => ("access sandboxes", "of user"),
            Action::RegisterAgent => ("register agents", ""),
            Action::UpdateMaintenanceSchedule => ("update the maintenance schedule", ""),
            Action::GetMaintenanceSchedule => ("view the maintenance schedule", ""),
            Action::StartMaintenance => ("start maintenance", ""),
            Action::StopMaintenance => ("stop maintenance", ""),
            Action::GetMaintenanceStatus => ("view the maintenance status", ""),
            Action::MarkAgentGone => ("mark agents gone", ""),
            Action::SetLogLevel => ("set the logging level", ""),
            Action::DrainAgent => ("drain agents", "with id"),
            Action::DeactivateAgent => ("deactivate agents", "with id"),
            Action::ReactivateAgent => ("reactivate agents", "with id"),
            Action::ViewAgent => ("view agents", ""),
            Action::ManageMasters => ("add or remove masters", ""),
            Action::ManageTokens => ("manage tokens", ""),
            Action::ApproveAgent => ("approve or deny agents", ""),
        };
        match object {
            Some(o) if !of.is_empty() => format!("{what} {of} '{o}'"),
            _ => what.to_string(),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_read_back() {
        let mut keys: Vec<_> = Action::ALL.iter().map(|a| a.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), Action::ALL.len());
        for a in Action::ALL {
            assert_eq!(Action::from_key(a.key()), Some(a));
        }
        assert_eq!(Action::from_key("register_framework"), None);
    }

    #[test]
    fn descriptions_name_the_object() {
        assert_eq!(
            Action::TeardownFramework.describe(Some("fw")),
            "tear down frameworks of principal 'fw'"
        );
        assert_eq!(Action::ViewFlags.describe(Some("x")), "view the flags");
        assert_eq!(Action::RunTask.describe(None), "run tasks");
    }
}
