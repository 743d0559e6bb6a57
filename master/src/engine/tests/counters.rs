//! What the metrics count: terminal tasks, registrations, removals, the
//! state's gauges and the latencies measured on the engine's clock.

use super::*;

#[test]
fn gauges_count_the_state_in_one_pass() {
    let (h, _agent, _fw) = running();
    let g = h.engine.gauges();
    assert!(g.elected);
    assert_eq!(g.agents_connected, 1);
    assert_eq!(g.frameworks_connected, 1);
    assert_eq!(g.tasks_running, 1);
    assert_eq!(g.resources[0], ("cpus", 4.0, 1.0));
    assert_eq!(g.resources[1], ("mem", 1024.0, 128.0));
    assert_eq!(h.engine.counters().slave_registrations, 1);
}

#[test]
fn terminal_tasks_are_counted_once_by_state() {
    let (mut h, agent, fw) = running();
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 2);
    // A repeat of the terminal update changes nothing.
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 2);
    let c = h.engine.counters();
    assert_eq!(c.tasks_finished, 1);
    assert_eq!(c.tasks_failed + c.tasks_killed + c.tasks_lost, 0);
    assert_eq!(c.valid_status_updates, 3);
    assert_eq!(h.engine.gauges().tasks_running, 0);
}

#[test]
fn a_lost_agent_is_a_removal_and_its_tasks_are_lost() {
    let (mut h, agent, _fw) = running();
    h.advance(Duration::from_secs(16));
    let expired = h.engine.agent_heartbeats(h.now);
    assert_eq!(expired, vec![agent.clone()]);
    let p = h.engine.agent_expired(&agent, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.agent_unreachable(&agent, h.now);
    let c = h.engine.counters().clone();
    assert_eq!((c.slave_removals, c.tasks_lost), (1, 1));
    let g = h.engine.gauges();
    assert_eq!((g.agents_connected, g.agents_unreachable), (0, 1));
    assert_eq!(g.resources[0], ("cpus", 0.0, 0.0));
}

#[test]
fn offer_to_accept_and_accept_to_running_are_measured() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.advance(Duration::from_millis(300));
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    h.advance(Duration::from_millis(200));
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    let samples = h.engine.take_samples();
    assert_eq!(
        samples,
        vec![
            Sample::OfferToAccept(Duration::from_millis(300)),
            Sample::AcceptToRunning(Duration::from_millis(200)),
        ]
    );
    assert!(h.engine.take_samples().is_empty());
}
