//! Pure checks of tasks in an ACCEPT, as `src/master/validation.cpp` does
//! them: task ids, uniqueness, command xor executor, resources present,
//! valid, on the offered agent.

use keel_api::mesos::{Resource, TaskInfo};
use keel_api::resources::Resources;
use keel_api::resources::v1::AllocationInfo;

use super::Invalid;

/// Mesos' task id rules.
pub fn valid_task_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err("Task ID must not be empty".into());
    }
    if id.len() > 255 {
        return Err("Task ID must be at most 255 characters".into());
    }
    if id == "." || id == ".." {
        return Err(Invalid(format!("Task ID '{id}' is disallowed")));
    }
    if id.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(Invalid(format!(
            "Task ID '{id}' contains invalid characters"
        )));
    }
    Ok(())
}

/// Checks one task against the agent it is launched on; `resources` are
/// the task's resources other than persistent volumes. Returns them as
/// the model (the executor's for LAUNCH_GROUP are checked apart).
pub fn validate_task(
    task: &TaskInfo,
    resources: &[Resource],
    agent_id: &str,
    exists: impl Fn(&str) -> bool,
    group: bool,
) -> Result<Resources, Invalid> {
    valid_task_id(&task.task_id.value)?;
    if exists(&task.task_id.value) {
        return Err(Invalid(format!(
            "Task has duplicate ID: {}",
            task.task_id.value
        )));
    }
    if task.agent_id.value != agent_id {
        return Err(Invalid(format!(
            "Task uses agent {} but the offers are for agent {agent_id}",
            task.agent_id.value
        )));
    }
    match (&task.command, &task.executor, group) {
        (Some(_), Some(_), _) => {
            return Err(
                "Task should have at most one of CommandInfo or ExecutorInfo present".into(),
            );
        }
        (None, None, false) => {
            return Err(
                "Task should have at least one of CommandInfo or ExecutorInfo present".into(),
            );
        }
        (_, Some(_), true) => return Err("Task in a task group must not set 'executor'".into()),
        _ => {}
    }
    if let Some(cmd) = &task.command
        && !cmd.shell()
        && cmd.value.as_deref().unwrap_or("").is_empty()
    {
        return Err("CommandInfo with 'shell' false must set 'value' to the executable".into());
    }
    if resources.is_empty() {
        return Err("Task uses no resources".into());
    }
    let model = Resources::from_v1(resources)
        .map_err(|e| Invalid(format!("Task uses invalid resources: {e}")))?;
    if model.is_empty() {
        return Err("Task uses no resources".into());
    }
    Ok(model)
}

/// Sets `allocation_info.role` on every resource of a task (Mesos injects
/// it for non-MULTI_ROLE frameworks); a different role already there is an
/// error.
pub fn inject_allocation_role(task: &mut TaskInfo, role: &str) -> Result<(), Invalid> {
    for r in &mut task.resources {
        match r.allocation_role() {
            Some(existing) if existing != role => {
                return Err(Invalid(format!(
                    "Task resources are allocated to role '{existing}' but the offer is for role '{role}'"
                )));
            }
            Some(_) => {}
            None => r.allocation_info = Some(AllocationInfo::role(role)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::mesos::parse;
    use serde_json::{Value as Json, json};

    fn task(v: Json) -> TaskInfo {
        parse(v).unwrap()
    }

    fn base() -> Json {
        json!({"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
            "command": {"value": "true"}})
    }

    fn check(t: &TaskInfo) -> Result<Resources, Invalid> {
        validate_task(t, &t.resources, "a", |_| false, false)
    }

    #[test]
    fn a_plain_command_task_is_valid() {
        let rs = check(&task(base())).unwrap();
        assert_eq!(rs.scalar("cpus"), 0.5);
    }

    #[test]
    fn each_rule_has_a_reason() {
        let cases = [
            (json!({"task_id": {"value": ""}}), "must not be empty"),
            (json!({"task_id": {"value": "a/b"}}), "invalid characters"),
            (json!({"task_id": {"value": ".."}}), "disallowed"),
            (
                json!({"agent_id": {"value": "other"}}),
                "offers are for agent a",
            ),
            (json!({"command": null}), "at least one of"),
            (
                json!({"executor": {"executor_id": {"value": "e"}}}),
                "at most one of",
            ),
            (json!({"resources": []}), "no resources"),
            (
                json!({"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]}),
                "invalid resources",
            ),
            (
                json!({"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": "NaN"}}]}),
                "invalid resources",
            ),
            (json!({"command": {"shell": false}}), "'shell' false"),
        ];
        for (patch, needle) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    v.as_object_mut().unwrap().remove(k);
                } else {
                    v[k] = val.clone();
                }
            }
            let err = check(&task(v)).unwrap_err().0;
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        let t = task(base());
        let dup = validate_task(&t, &t.resources, "a", |id| id == "t1", false)
            .unwrap_err()
            .0;
        assert!(dup.contains("duplicate"));
    }

    #[test]
    fn allocation_role_is_injected_or_checked() {
        let mut t = task(base());
        inject_allocation_role(&mut t, "eng").unwrap();
        assert_eq!(t.resources[0].allocation_role(), Some("eng"));
        assert!(inject_allocation_role(&mut t, "ops").is_err());
    }
}
