//! Fuzzing the agent's checkpoint decoders with a fixed budget: the status
//! update log, `container.json` and `task.info`, read back as recovery reads
//! them after a restart. Random bytes and randomly damaged real checkpoints
//! must never panic; a damaged update log keeps a prefix of what was written
//! and never invents an update.

use std::fs;
use std::path::Path;

use keel_agent::executor::checkpoint::log::{UpdateLog, replay};
use keel_agent::executor::checkpoint::recover::scan;
use keel_agent::executor::checkpoint::{
    CONTAINER_FILE, ContainerCheckpoint, MetaDir, TASK_INFO_FILE, UPDATES_FILE, write_killed,
};
use keel_api::pb;
use proptest::prelude::*;

fn update(n: u8) -> pb::StatusUpdate {
    pb::StatusUpdate {
        framework_id: "fw".into(),
        status: Some(pb::TaskStatus {
            task_id: "t1".into(),
            state: if n.is_multiple_of(2) {
                "TASK_STARTING"
            } else {
                "TASK_RUNNING"
            }
            .into(),
            uuid: vec![n; 16],
            message: "m".repeat(usize::from(n)),
            ..Default::default()
        }),
    }
}

/// The bytes of an update log holding `n` updates, as the agent writes it.
fn log_bytes(dir: &Path, n: u8) -> (Vec<u8>, Vec<pb::StatusUpdate>) {
    let path = dir.join(UPDATES_FILE);
    let (mut log, _) = UpdateLog::open(&path).unwrap();
    let written: Vec<_> = (0..n).map(update).collect();
    for u in &written {
        log.append_update(u).unwrap();
    }
    drop(log);
    (fs::read(&path).unwrap(), written)
}

/// One of three kinds of damage, at a random place.
fn damage(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match rng.u8(..3) {
        0 => {
            let at = rng.usize(..bytes.len());
            bytes[at] ^= rng.u8(1..);
        }
        1 => bytes.truncate(rng.usize(..bytes.len())),
        _ => {
            let at = rng.usize(..bytes.len());
            let end = (at + rng.usize(1..64)).min(bytes.len());
            rng.fill(&mut bytes[at..end]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn update_logs_from_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (_, used) = replay(&bytes);
        prop_assert!(used <= bytes.len());
    }
}

/// A real log, damaged: what replays is the first updates written, in
/// order, and nothing else.
#[test]
fn a_damaged_update_log_keeps_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, written) = log_bytes(dir.path(), 12);
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..2000 {
        let mut damaged = bytes.clone();
        damage(&mut rng, &mut damaged);
        let (replayed, used) = replay(&damaged);
        assert!(used <= damaged.len());
        let pending = replayed.pending();
        assert_eq!(pending, &written[..pending.len()]);
    }
}

/// A whole checkpoint tree with its files damaged: recovery reads what it
/// can, lists what it cannot, and never panics.
#[test]
fn damaged_checkpoints_are_read_or_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/checkpoint-v1");
    let mut rng = fastrand::Rng::with_seed(9);
    for round in 0..300 {
        let meta = MetaDir::new(tmp.path().join(round.to_string()));
        let c = ContainerCheckpoint {
            agent_id: "a-S0".into(),
            framework_id: "fw".into(),
            executor_id: "web-1".into(),
            container_id: "c1".into(),
            group: None,
            killing_state: false,
            cgroup: None,
            network: None,
            executor_resources: Vec::new(),
            custom: None,
        };
        let dir = meta.container_dir(&c).unwrap();
        c.write(&dir).unwrap();
        let task = MetaDir::task_dir(&dir, "web-1").unwrap();
        fs::create_dir_all(&task).unwrap();
        fs::copy(v1.join(TASK_INFO_FILE), task.join(TASK_INFO_FILE)).unwrap();
        write_killed(&task, 250).unwrap();
        log_bytes(&task, 4);
        for file in [
            dir.join(CONTAINER_FILE),
            task.join(TASK_INFO_FILE),
            task.join(UPDATES_FILE),
        ] {
            if rng.bool() {
                let mut bytes = fs::read(&file).unwrap();
                damage(&mut rng, &mut bytes);
                fs::write(&file, bytes).unwrap();
            }
        }
        let (found, problems) = scan(&meta);
        assert_eq!(found.len() + problems.len(), 1, "{problems:?}");
        for t in found.iter().flat_map(|c| &c.tasks) {
            assert_eq!(t.task_id, "web-1");
            if let Some(d) = &t.description {
                // Typed or kept as text: it serializes back either way.
                d.to_json().unwrap();
            }
        }
    }
}
