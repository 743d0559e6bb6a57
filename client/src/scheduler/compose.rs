//! Building what frameworks send: a `FrameworkInfo`, command tasks, and
//! task resources taken from an offer's own entries (so that their role,
//! reservation and `allocation_info` match what was offered).

use keel_api::mesos::{CommandInfo, FrameworkInfo, Id, TaskInfo};
use keel_api::operator::Offer;
use keel_api::resources::v1::{Resource, Scalar};

/// A `FrameworkInfo` with only `user` and `name` set.
pub fn framework_info(user: &str, name: &str) -> FrameworkInfo {
    FrameworkInfo::new(user, name)
}

/// A command run through `/bin/sh -c`.
pub fn shell(command: &str) -> CommandInfo {
    CommandInfo {
        shell: Some(true),
        value: Some(command.to_string()),
        ..CommandInfo::default()
    }
}

/// A command run as `argv` (`argv[0]` is the executable).
pub fn argv(args: &[String]) -> CommandInfo {
    CommandInfo {
        shell: Some(false),
        value: args.first().cloned(),
        arguments: args.to_vec(),
        ..CommandInfo::default()
    }
}

/// A task named `id` on `agent_id` running `command`.
pub fn task_info(
    id: &str,
    agent_id: &Id,
    resources: Vec<Resource>,
    command: CommandInfo,
) -> TaskInfo {
    TaskInfo {
        name: id.to_string(),
        task_id: Id::new(id),
        agent_id: agent_id.clone(),
        resources: resources.to_vec(),
        executor: None,
        command: Some(command),
        container: None,
        health_check: None,
        check: None,
        kill_policy: None,
        data: None,
        labels: None,
        discovery: None,
        max_completion_time: None,
        limits: Default::default(),
    }
}

/// `amount` of the scalar resource `name` out of `offer`'s entries, in as
/// many entries as it takes (each keeps its role and `allocation_info`);
/// less when the offer has less.
pub fn take(offer: &Offer, name: &str, amount: f64) -> Vec<Resource> {
    let mut left = amount;
    let mut out = Vec::new();
    for r in offer.resources.iter().filter(|r| r.name == name) {
        if left <= 0.0 {
            break;
        }
        let part = r.scalar_value().min(left);
        if part <= 0.0 {
            continue;
        }
        let mut piece = r.clone();
        piece.scalar = Some(Scalar {
            value: (part * 1000.0).round() / 1000.0,
        });
        out.push(piece);
        left -= part;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offer() -> Offer {
        serde_json::from_value(json!({"id": {"value": "o1"}, "framework_id": {"value": "f"},
            "agent_id": {"value": "a"}, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "eng", "allocation_info": {"role": "eng"}},
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*", "allocation_info": {"role": "eng"}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}, "role": "*", "allocation_info": {"role": "eng"}}
        ]}))
        .unwrap()
    }

    #[test]
    fn tasks_take_from_the_offers_entries() {
        let cpus = take(&offer(), "cpus", 1.0);
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            (cpus[0].scalar_value(), cpus[0].reserved_role()),
            (0.5, "eng")
        );
        assert_eq!(
            (cpus[1].scalar_value(), cpus[1].reserved_role()),
            (0.5, "*")
        );
        assert_eq!(take(&offer(), "mem", 4096.0)[0].scalar_value(), 1024.0);
        assert!(take(&offer(), "gpus", 1.0).is_empty());
        let t = task_info("t", &offer().agent_id, cpus, shell("true"));
        assert_eq!(t.resources[0].allocation_role(), Some("eng"));
        assert_eq!(
            serde_json::to_value(argv(&["ls".into(), "-l".into()])).unwrap(),
            json!({"shell": false, "value": "ls", "arguments": ["ls", "-l"]})
        );
    }
}
