//! Operator volume calls in the engine: checked before anything is
//! written (a refusal rescinds no offer), offers on the agent rescinded
//! once valid, a volume a task uses refused, sizes kept as committed.

use keel_api::scheduler::Event;

use super::*;
use crate::engine::{VolumeChange, VolumeError};
use crate::registry::volumes::Volume;

fn vol(id: &str, mb: f64) -> Volume {
    Volume {
        id: id.into(),
        role: "eng".into(),
        principal: None,
        disk_mb: mb,
        container_path: "data".into(),
        mode: "RW".into(),
    }
}

fn rescinds(h: &mut Harness, fw: &str) -> usize {
    h.events(fw)
        .iter()
        .filter(|e| matches!(e, Event::Rescind { .. }))
        .count()
}

/// Plans and commits `change`, as the shell does.
fn change(h: &mut Harness, agent: &str, change: VolumeChange) -> Result<(), EngineError> {
    let planned = h.engine.change_volumes(agent, change)?;
    h.commit(planned.command.clone()).unwrap();
    h.engine.volumes_changed(&planned.command);
    h.collect();
    Ok(())
}

fn size(h: &Harness, agent: &str, id: &str) -> Option<f64> {
    let agent = h.engine.registry().agent(agent)?;
    agent.volumes.iter().find(|v| v.id == id).map(|v| v.disk_mb)
}

#[test]
fn volumes_are_checked_before_anything_changes() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024;disk(eng):1000");
    let (fw, _) = h.framework(framework_info("f", json!({"role": "eng"})));
    let offer = h.offers(&fw).remove(0);

    // Refusals: nothing written, the outstanding offer stays.
    let unknown = h
        .engine
        .change_volumes("nope", VolumeChange::Create(vec![vol("v", 1.0)]));
    assert!(matches!(unknown, Err(EngineError::UnknownAgent(_))));
    let too_big = h
        .engine
        .change_volumes(&agent, VolumeChange::Create(vec![vol("v", 5000.0)]));
    assert!(
        matches!(too_big, Err(EngineError::Registry(_))),
        "{too_big:?}"
    );
    let missing = h.engine.change_volumes(
        &agent,
        VolumeChange::Shrink {
            role: "eng".into(),
            id: "v".into(),
            by_mb: 1.0,
        },
    );
    assert!(matches!(
        missing,
        Err(EngineError::Volume(VolumeError::Invalid(_)))
    ));
    assert_eq!(rescinds(&mut h, &fw), 0);

    // A valid change rescinds the agent's offers, then commits.
    change(&mut h, &agent, VolumeChange::Create(vec![vol("v", 300.0)])).unwrap();
    assert_eq!(rescinds(&mut h, &fw), 1, "the offer {:?}", offer.id);
    assert_eq!(size(&h, &agent, "v"), Some(300.0));
    // The volume is offered apart from the 700 MB of disk left.
    let offer = h.offers(&fw).remove(0);
    let disk: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "disk" && r.disk.is_none())
        .map(|r| r.scalar_value())
        .sum();
    assert_eq!(disk, 700.0, "{offer:?}");
    assert!(offer.resources.iter().any(|r| r.disk.is_some()));

    // GROW within the reservation, SHRINK leaving some.
    let grow = |by_mb| VolumeChange::Grow {
        role: "eng".into(),
        id: "v".into(),
        by_mb,
    };
    let shrink = |by_mb| VolumeChange::Shrink {
        role: "eng".into(),
        id: "v".into(),
        by_mb,
    };
    change(&mut h, &agent, grow(200.0)).unwrap();
    assert_eq!(size(&h, &agent, "v"), Some(500.0));
    assert!(change(&mut h, &agent, grow(600.0)).is_err());
    assert!(matches!(
        change(&mut h, &agent, shrink(500.0)),
        Err(EngineError::Volume(VolumeError::Invalid(_)))
    ));
    assert!(change(&mut h, &agent, grow(-1.0)).is_err());
    change(&mut h, &agent, shrink(450.0)).unwrap();
    assert_eq!(size(&h, &agent, "v"), Some(50.0));
}

#[test]
fn a_volume_in_use_is_neither_destroyed_nor_resized() {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024;disk(eng):1000");
    let (fw, _) = h.framework(framework_info("f", json!({"role": "eng"})));
    change(&mut h, &agent, VolumeChange::Create(vec![vol("v", 300.0)])).unwrap();
    let offer = h.offers(&fw).remove(0);
    let mut t = task(&offer, "t1", 1.0, 64.0);
    let volume = offer
        .resources
        .iter()
        .find(|r| r.disk.is_some())
        .expect("the volume offered")
        .clone();
    t.resources.push(volume);
    let disk: mesos::Resource = mesos::parse(json!({"name": "disk", "type": "SCALAR",
        "scalar": {"value": 600}, "role": "eng"}))
    .unwrap();
    t.resources.push(disk);
    h.accept(&fw, &[&offer], vec![launch(vec![t])]);
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    for c in [
        VolumeChange::Destroy(vec![vol("v", 300.0)]),
        VolumeChange::Grow {
            role: "eng".into(),
            id: "v".into(),
            by_mb: 1.0,
        },
        VolumeChange::Shrink {
            role: "eng".into(),
            id: "v".into(),
            by_mb: 1.0,
        },
    ] {
        let refused = h.engine.change_volumes(&agent, c);
        assert!(
            matches!(refused, Err(EngineError::Volume(VolumeError::InUse(_)))),
            "{refused:?}"
        );
    }
    // Reserved disk a task uses is not free for a new volume either: 700
    // MB are left besides the volume, the task uses 600.
    let refused = h
        .engine
        .change_volumes(&agent, VolumeChange::Create(vec![vol("w", 200.0)]));
    assert!(
        matches!(refused, Err(EngineError::Volume(VolumeError::InUse(_)))),
        "{refused:?}"
    );
    assert_eq!(h.task_state(&fw, "t1"), Some(TaskState::TASK_RUNNING));
    h.update(&agent, &fw, "t1", TaskState::TASK_FINISHED, 2);
    change(&mut h, &agent, VolumeChange::Destroy(vec![vol("v", 300.0)])).unwrap();
    assert_eq!(size(&h, &agent, "v"), None);
    assert!(
        h.sent_to(&agent)
            .iter()
            .any(|m| matches!(m, ToAgent::DestroyVolumes { volumes } if volumes == &[("eng".to_string(), "v".to_string())]))
    );
}
