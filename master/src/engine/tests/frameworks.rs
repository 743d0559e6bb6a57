//! Frameworks: subscription rules, failover, timeout, teardown, offers.

use super::*;

#[test]
fn subscribe_answers_subscribed_with_the_master() {
    let mut h = Harness::new();
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let events = h.events(&fw);
    let Event::Subscribed(s) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(s.framework_id.value, fw);
    assert_eq!(s.heartbeat_interval_seconds, Some(15.0));
    let m = s.master_info.as_ref().unwrap();
    assert_eq!((m.port, m.hostname.as_deref()), (5050, Some("m1")));
    assert_eq!(m.ip, u32::from_le_bytes([127, 0, 0, 1]));
}

#[test]
fn invalid_framework_infos_are_refused() {
    let h = Harness::new();
    for (extra, needle) in [
        (
            json!({"role": "a", "roles": ["b"], "capabilities": [{"type": "MULTI_ROLE"}]}),
            "must not be set",
        ),
        (json!({"roles": ["b"]}), "MULTI_ROLE capability is not"),
        (json!({"role": "-bad"}), "not a valid role"),
        (
            json!({"roles": ["a", "a"], "capabilities": [{"type": "MULTI_ROLE"}]}),
            "more than once",
        ),
    ] {
        let sub = Subscribe {
            framework_info: framework_info("f", extra),
            suppressed_roles: Vec::new(),
        };
        let err = h
            .engine
            .subscribe(None, sub, "s".into(), h.now)
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn stream_rules_for_other_calls() {
    let mut h = Harness::new();
    let (fw, stream) = h.framework(framework_info("f", json!({})));
    assert_eq!(h.engine.check_stream(&fw, Some(&stream)), Ok(()));
    assert_eq!(
        h.engine.check_stream(&fw, None),
        Err(Refusal::MissingStreamId)
    );
    assert!(matches!(
        h.engine.check_stream(&fw, Some("x")),
        Err(Refusal::StreamMismatch { .. })
    ));
    assert_eq!(
        h.engine.check_stream("nope", Some(&stream)),
        Err(Refusal::UnknownFramework)
    );
    h.engine.stream_closed(&fw, &stream, h.now);
    assert_eq!(
        h.engine.check_stream(&fw, Some(&stream)),
        Err(Refusal::NotSubscribed)
    );
}

#[test]
fn resubscribing_from_another_connection_ends_the_old_stream() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024");
    let (fw, old) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.drain();
    let mut info = framework_info("f", json!({}));
    info.id = Some(mesos::Id::new(&fw));
    let (same, new) = h.framework(info);
    assert_eq!(same, fw);
    let effects = h.drain();
    let on = |s: &str| {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::ToFramework { stream, event, .. } if stream == s => {
                    Some(event.kind().to_string())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(on(&new), vec!["SUBSCRIBED"]);
    assert_eq!(on(&old), vec!["ERROR"]);
    assert!(effects.contains(&Effect::CloseStream {
        framework_id: fw.clone(),
        stream: old
    }));
    // Offers to the old stream are gone; the allocator offers again.
    assert!(
        h.engine
            .outstanding_offers()
            .iter()
            .all(|o| o.id != offer.id.value)
    );
}

#[test]
fn a_disconnected_framework_is_removed_after_its_failover_timeout() {
    let (mut h, agent, fw) = running();
    let stream = match h.engine.check_stream(&fw, None) {
        Err(Refusal::MissingStreamId) => "s1".to_string(),
        other => panic!("{other:?}"),
    };
    h.engine.stream_closed(&fw, &stream, h.now);
    h.advance(Duration::from_secs(59));
    assert!(h.engine.expired_frameworks(h.now).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(h.engine.expired_frameworks(h.now), vec![fw.clone()]);
    let p = h.engine.remove_framework(&fw, h.now).unwrap();
    h.commit(p.command).unwrap();
    h.engine.framework_removed(&fw, h.now);
    assert!(h.sent_to(&agent).contains(&ToAgent::ShutdownFramework {
        framework_id: fw.clone()
    }));
    assert!(h.committed.is_removed_framework(&fw));
}

/// A master failover is not the scheduler's: after a takeover a framework
/// with `failover_timeout: 0` has the agents' re-registration window to
/// subscribe to the new leader, and is removed only after it.
#[test]
fn after_a_takeover_frameworks_have_the_reregistration_window() {
    let mut h = Harness::new();
    let (fw, _) = h.framework(framework_info("zero", json!({})));
    let (slow, _) = h.framework(framework_info("hour", json!({"failover_timeout": 3600.0})));
    h.take_over();
    h.advance(Duration::from_secs(599));
    assert!(h.engine.expired_frameworks(h.now).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(h.engine.expired_frameworks(h.now), vec![fw.clone()]);
    h.advance(Duration::from_secs(3000));
    assert_eq!(h.engine.expired_frameworks(h.now), vec![fw, slow]);
}

#[test]
fn teardown_kills_tasks_records_their_end_and_closes_the_stream() {
    let (mut h, agent, fw) = running();
    let p = h.engine.remove_framework(&fw, h.now).unwrap();
    // Nothing changes before the removal is recorded.
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_RUNNING));
    h.commit(p.command).unwrap();
    h.engine.framework_removed(&fw, h.now);
    let (live, completed) = h.engine.tasks();
    assert!(live.is_empty());
    assert_eq!(completed[0].state, TaskState::TASK_KILLED);
    assert_eq!(
        completed[0].statuses.last().unwrap().state,
        TaskState::TASK_KILLED
    );
    let effects = h.drain();
    assert!(effects.iter().any(|e| matches!(e, Effect::ToFramework { event: Event::Error(message), .. } if message == "Framework has been removed")));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CloseStream { .. }))
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::ToAgent { message: ToAgent::ShutdownFramework { .. }, agent_id, .. } if agent_id == &agent)));
    assert_eq!(
        h.engine.remove_framework(&fw, h.now),
        Err(Refusal::UnknownFramework)
    );
}

#[test]
fn offers_are_rescinded_when_their_agent_disconnects_or_times_out() {
    let mut h = Harness::with(EngineConfig {
        offer_timeout: Some(Duration::from_secs(5)),
        ..config()
    });
    let (agent, session) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.advance(Duration::from_secs(6));
    h.engine.expire_offers(h.now);
    assert!(
        matches!(h.events(&fw).as_slice(), [Event::Rescind { offer_id }] if offer_id == &offer.id)
    );
    h.advance(Duration::from_secs(1));
    let offer = h.offers(&fw).remove(0);
    let p = h
        .engine
        .agent_session_closed(&agent, session, h.now)
        .unwrap();
    let applied = h.commit(p.command).unwrap();
    h.engine.agent_disconnected(&agent, &applied);
    assert!(
        matches!(h.events(&fw).as_slice(), [Event::Rescind { offer_id }] if offer_id == &offer.id)
    );
    assert!(
        h.offers(&fw).is_empty(),
        "a disconnected agent is not offered"
    );
}

#[test]
fn suppress_and_revive() {
    let mut h = Harness::new();
    h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    h.engine.suppress(&fw, &[], false);
    assert!(h.offers(&fw).is_empty());
    h.engine.suppress(&fw, &[], true);
    assert_eq!(h.offers(&fw).len(), 1);
}

#[test]
fn update_framework_keeps_principal_user_and_checkpoint() {
    let mut h = Harness::new();
    let (fw, _) = h.framework(framework_info("f", json!({"role": "a"})));
    let mut info = framework_info("renamed", json!({"role": "b"}));
    info.id = Some(mesos::Id::new(&fw));
    let sub = |info: FrameworkInfo| Subscribe {
        framework_info: info,
        suppressed_roles: Vec::new(),
    };
    let p = h.engine.update_framework(&fw, sub(info.clone())).unwrap();
    h.commit(p.command).unwrap();
    h.engine.framework_updated(p.then).unwrap();
    let view = h.engine.framework_views().remove(0);
    assert_eq!(view.info.name, "renamed");
    let mut other_user = info.clone();
    other_user.user = "bob".into();
    assert!(h.engine.update_framework(&fw, sub(other_user)).is_err());
    info.id = Some(mesos::Id::new("other"));
    assert!(h.engine.update_framework(&fw, sub(info)).is_err());
}
