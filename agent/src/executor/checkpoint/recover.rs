//! Reading every checkpoint back after a restart. Pure file reading: what
//! to do with each task (re-attach, report its end, resend its updates) is
//! the runtime's decision (`runtime/recovery.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use super::log::{Replay, UpdateLog};
use super::{
    CONTAINER_FILE, ContainerCheckpoint, MetaDir, PROCESS_DIR, TASK_INFO_FILE, UPDATES_FILE,
    read_killed,
};
use crate::executor::task::TaskDescription;

#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredContainer {
    pub dir: PathBuf,
    pub checkpoint: ContainerCheckpoint,
    pub tasks: Vec<RecoveredTask>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredTask {
    pub task_id: String,
    pub dir: PathBuf,
    /// `task.info`, read; `None` when missing (the agent died while
    /// writing it).
    pub description: Option<TaskDescription>,
    pub replay: Replay,
    /// The grace period of a kill the task was given, if any.
    pub killed: Option<u64>,
}

impl RecoveredTask {
    /// The launcher's directory for this task's process.
    pub fn process_dir(&self) -> PathBuf {
        self.dir.join(PROCESS_DIR)
    }
}

/// Sub-directories of `dir` (sorted), ignoring hidden names and `latest`.
fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(name, _)| !name.starts_with('.') && name != "latest")
        .collect();
    out.sort();
    out
}

/// Every container under `meta`, with its tasks. Damaged entries are
/// skipped (and listed in the second value) rather than stopping recovery.
pub fn scan(meta: &MetaDir) -> (Vec<RecoveredContainer>, Vec<String>) {
    let mut containers = Vec::new();
    let mut problems = Vec::new();
    for (_, agent) in subdirs(&meta.slaves()) {
        for (_, fw) in subdirs(&agent.join("frameworks")) {
            for (_, ex) in subdirs(&fw.join("executors")) {
                for (_, run) in subdirs(&ex.join("runs")) {
                    match read_container(&run) {
                        Ok(Some(c)) => containers.push(c),
                        Ok(None) => {}
                        Err(e) => problems.push(e),
                    }
                }
            }
        }
    }
    (containers, problems)
}

fn read_container(dir: &Path) -> Result<Option<RecoveredContainer>, String> {
    if !dir.join(CONTAINER_FILE).exists() {
        // Created, but the agent died before writing anything in it.
        return Ok(None);
    }
    let checkpoint = ContainerCheckpoint::read(dir).map_err(|e| e.to_string())?;
    let mut tasks = Vec::new();
    for (task_id, task_dir) in subdirs(&dir.join("tasks")) {
        let replay = UpdateLog::read(&task_dir.join(UPDATES_FILE)).unwrap_or_default();
        tasks.push(RecoveredTask {
            description: fs::read_to_string(task_dir.join(TASK_INFO_FILE))
                .ok()
                .map(|text| TaskDescription::read(&text)),
            killed: read_killed(&task_dir),
            replay,
            task_id,
            dir: task_dir,
        });
    }
    Ok(Some(RecoveredContainer {
        dir: dir.to_path_buf(),
        checkpoint,
        tasks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::executor::checkpoint::{write_killed, write_task_info};
    use crate::executor::command;
    use crate::executor::health::{HealthCheck, Probe};
    use crate::isolation::cgroups::io;
    use crate::isolation::network;
    use keel_api::pb;

    #[test]
    fn finds_containers_tasks_and_their_logs() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(tmp.path());
        let c = ContainerCheckpoint {
            agent_id: "a-S0".into(),
            framework_id: "fw".into(),
            executor_id: "t1".into(),
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
        let t1 = MetaDir::task_dir(&dir, "t1").unwrap();
        let info = TaskDescription::Unreadable(r#"{"task_id":{"value":"t1"}}"#.into());
        write_task_info(&t1, &info).unwrap();
        write_killed(&t1, 250).unwrap();
        let (mut log, _) = UpdateLog::open(&t1.join(UPDATES_FILE)).unwrap();
        let update = pb::StatusUpdate {
            framework_id: "fw".into(),
            status: Some(pb::TaskStatus {
                task_id: "t1".into(),
                state: "TASK_RUNNING".into(),
                uuid: vec![7; 16],
                ..Default::default()
            }),
        };
        log.append_update(&update).unwrap();
        // Noise recovery must step over.
        std::os::unix::fs::symlink("c1", dir.parent().unwrap().join("latest")).unwrap();
        fs::create_dir_all(dir.parent().unwrap().join("c-empty")).unwrap();
        let broken = dir.parent().unwrap().join("c-broken");
        fs::create_dir_all(&broken).unwrap();
        fs::write(broken.join(CONTAINER_FILE), "not json").unwrap();

        let (found, problems) = scan(&meta);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("c-broken"), "{problems:?}");
        assert_eq!(found.len(), 1);
        let rc = &found[0];
        assert_eq!((rc.dir.as_path(), &rc.checkpoint), (dir.as_path(), &c));
        assert_eq!(rc.tasks.len(), 1);
        let t = &rc.tasks[0];
        assert_eq!(t.task_id, "t1");
        assert_eq!(t.killed, Some(250));
        let info_json = t.description.as_ref().unwrap().to_json().unwrap();
        assert!(info_json.contains("t1"));
        assert_eq!(t.replay.pending(), &[update][..]);
        assert_eq!(t.process_dir(), t1.join("process"));
    }

    /// The directory of a checkpoint in `testdata/checkpoint-v1`.
    const V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/checkpoint-v1");

    #[test]
    fn a_checkpoint_of_an_earlier_agent_is_read_typed() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(tmp.path());
        let dir = meta
            .slaves()
            .join("a-S0/frameworks/fw/executors/web-1/runs/c1");
        let task_dir = dir.join("tasks/web-1");
        fs::create_dir_all(&task_dir).unwrap();
        let v1 = Path::new(V1);
        fs::copy(v1.join(CONTAINER_FILE), dir.join(CONTAINER_FILE)).unwrap();
        fs::copy(v1.join(TASK_INFO_FILE), task_dir.join(TASK_INFO_FILE)).unwrap();

        let (found, problems) = scan(&meta);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found[0].checkpoint.container_id, "c1");
        let read = found[0].tasks[0].description.clone().unwrap();
        let spec = read.spec().expect("typed").clone();
        assert_eq!(spec.task_id(), "web-1");
        let info = spec.info();
        assert_eq!(info.resources.len(), 3);
        assert_eq!(info.resources[0].scalar.unwrap().value, 0.5);
        let command = info.command.as_ref().unwrap();
        assert_eq!(command.environment.as_ref().unwrap().variables.len(), 1);
        let grace = info.kill_policy.as_ref().unwrap().grace_period.unwrap();
        assert_eq!(grace.nanoseconds, 300_000_000);
        // The parts the agent interprets, typed and accepted as a new launch would.
        let hc = HealthCheck::from_mesos(spec.health_check().unwrap()).unwrap();
        assert_eq!(hc.probe, Probe::Tcp { port: 31080 });
        assert_eq!(hc.policy.interval, Duration::from_millis(50));
        let bw = io::from_labels(spec.labels()).unwrap();
        assert_eq!(bw.wbps, Some(1 << 20));
        let net = network::request(spec.container()).unwrap().unwrap();
        assert_eq!(
            (net.name.as_str(), net.port_mappings[0].host_port),
            ("keel", 31001)
        );
        assert_eq!(command::container_hostname(spec.container()), Some("web"));

        // Written back the new way (the typed value serialized), it reads
        // to the same value.
        write_task_info(&task_dir, &read).unwrap();
        let (again, _) = scan(&meta);
        assert_eq!(again[0].tasks[0].description.as_ref(), Some(&read));
        let text = fs::read_to_string(task_dir.join(TASK_INFO_FILE)).unwrap();
        assert!(!text.contains("null") && !text.contains("a_field_from_a_newer_mesos"));
    }

    #[test]
    fn an_unreadable_task_info_stays_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        let text = r#"{"task_id": {"value": "t"}, "command": "#;
        write_task_info(&t, &TaskDescription::Unreadable(text.into())).unwrap();
        let read = TaskDescription::read(&fs::read_to_string(t.join(TASK_INFO_FILE)).unwrap());
        assert_eq!(read, TaskDescription::Unreadable(text.into()));
    }

    #[test]
    fn an_empty_work_dir_has_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (found, problems) = scan(&MetaDir::new(tmp.path().join("nope")));
        assert!(found.is_empty() && problems.is_empty());
    }
}
