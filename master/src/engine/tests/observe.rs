//! Changes for the operator event stream: emitted in order while observed,
//! not at all otherwise.

use super::*;
use crate::engine::Observed;

fn observed(h: &mut Harness) -> Vec<Observed> {
    h.drain()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Observed(o) => Some(o),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_copied_while_nobody_observes() {
    let (mut h, agent, fw) = running();
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 2);
    assert!(observed(&mut h).is_empty());
}

#[test]
fn a_task_agent_and_framework_are_observed_in_order() {
    let mut h = Harness::new();
    h.engine.set_observed(true);
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let seen = observed(&mut h);
    assert!(
        matches!(&seen[..], [Observed::AgentAdded { agent: a, .. }, Observed::FrameworkAdded(f)]
            if a.id == agent && f.id == fw && f.connected),
        "{seen:?}"
    );
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    let seen = observed(&mut h);
    let [
        Observed::TaskAdded { task, .. },
        Observed::TaskUpdated {
            task: updated,
            status,
            ..
        },
    ] = &seen[..]
    else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (task.task_id.as_str(), task.state),
        ("t1", TaskState::TASK_STAGING)
    );
    assert_eq!(updated.state, TaskState::TASK_RUNNING);
    assert_eq!(status.state, TaskState::TASK_RUNNING);

    h.advance(Duration::from_secs(16));
    h.engine.agent_heartbeats(h.now);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    let seen = observed(&mut h);
    assert!(
        matches!(&seen[..], [Observed::TaskUpdated { task, .. }, Observed::AgentRemoved { agent_id }]
            if task.state == TaskState::TASK_LOST && *agent_id == agent),
        "{seen:?}"
    );
}
