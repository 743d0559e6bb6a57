//! A task group on the agent's operator API and Mesos-shaped state: one
//! executor, one container, its tasks live and then completed together.

mod support;

use std::time::Duration;

use keel_agent::executor::ExecutorCall;
use keel_api::pb;
use serde_json::{Value, json};
use support::api::{FW, agent, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_group_is_one_executor_with_its_tasks() {
    let mut a = agent().await;
    let scalar =
        |name: &str, v: f64| json!({"name": name, "type": "SCALAR", "scalar": {"value": v}});
    let task = |id: &str, cmd: &str| {
        json!({"name": id, "task_id": {"value": id}, "agent_id": {"value": "agent-S1"},
            "resources": [scalar("cpus", 0.1), scalar("mem", 16.0)], "command": {"value": cmd}})
        .to_string()
    };
    a.exec.call(ExecutorCall::launch(pb::LaunchTasks {
        framework_id: FW.into(),
        framework_info_json: json!({"user": "root", "name": "group-test"}).to_string(),
        task_info_json: vec![task("g1", "sleep 30"), task("g2", "echo g2-out; sleep 30")],
        executor_info_json: json!({"type": "DEFAULT", "executor_id": {"value": "grp"},
            "framework_id": {"value": FW}, "resources": [scalar("cpus", 0.1), scalar("mem", 32.0)]})
        .to_string(),
    }));
    let running = a.all(&["g1", "g2"], "TASK_RUNNING").await;
    let containers: Vec<String> = running
        .iter()
        .map(|s| s.container_status.clone().unwrap().container_id)
        .collect();
    assert_eq!(containers[0], containers[1], "one container for the group");

    let exs = a.call(json!({"type": "GET_EXECUTORS"})).await["get_executors"].clone();
    let executors = exs["executors"].as_array().unwrap();
    assert_eq!(executors.len(), 1, "{exs}");
    assert_eq!(executors[0]["executor_info"]["executor_id"]["value"], "grp");
    assert_eq!(executors[0]["executor_info"]["type"], "DEFAULT");
    let tasks = a.call(json!({"type": "GET_TASKS"})).await["get_tasks"].clone();
    let mut launched = ids(&tasks["launched_tasks"]);
    launched.sort();
    assert_eq!(launched, ["g1", "g2"]);
    assert!(
        tasks["launched_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["executor_id"]["value"] == "grp"),
        "{tasks}"
    );
    let containers_call = a.call(json!({"type": "GET_CONTAINERS"})).await;
    let list = containers_call["get_containers"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(list.len(), 1, "{containers_call}");
    assert_eq!(list[0]["container_id"]["value"], containers[0].as_str());
    // cpus of the executor and both tasks.
    let cpus = list[0]["resource_statistics"]["cpus_limit"]
        .as_f64()
        .unwrap();
    assert!((cpus - 0.3).abs() < 1e-9, "{containers_call}");

    let st = a.get_json("/state").await;
    let ex = &st["frameworks"][0]["executors"][0];
    assert_eq!(ex["id"], "grp");
    assert_eq!(ex["type"], "DEFAULT");
    assert_eq!(ex["tasks"].as_array().unwrap().len(), 2, "{ex}");
    assert_eq!(ex["tasks"][0]["executor_id"], "grp");
    let dir = std::path::Path::new(ex["directory"].as_str().unwrap());
    // The task writes once it runs: wait for it.
    let mut out = String::new();
    for _ in 0..50 {
        out = std::fs::read_to_string(dir.join("tasks/g2/stdout")).unwrap_or_default();
        if out.contains("g2-out") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.contains("g2-out"), "{out:?}");

    // A kill takes the group; both complete with their executor.
    a.kill("g1");
    a.all(&["g1", "g2"], "TASK_KILLED").await;
    let mut exs = Value::Null;
    for _ in 0..50 {
        exs = a.call(json!({"type": "GET_EXECUTORS"})).await["get_executors"].clone();
        if !exs["completed_executors"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        exs["completed_executors"][0]["executor_info"]["executor_id"]["value"],
        "grp"
    );
    let st = a.get_json("/state").await;
    let done = &st["completed_frameworks"][0]["completed_executors"][0];
    let mut completed: Vec<&str> = done["completed_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    completed.sort();
    assert_eq!(completed, ["g1", "g2"], "{st}");
}
