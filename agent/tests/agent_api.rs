//! The agent's v1 operator API and Mesos-shaped state on a real task
//! runtime (real processes, sandboxes and updates, the test acknowledging
//! them as the master would), served by the agent's own router on
//! loopback: every call, the legacy endpoints with `?jsonp=`, and the
//! answers Mesos gives to bad input.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::api::{FW, agent, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answers_from_a_running_task() {
    let mut a = agent().await;
    a.launch("api-task", "echo hello-from-api; sleep 30");
    let running = a.until("TASK_RUNNING").await;
    let cs = running.container_status.clone().expect("container_status");
    assert!(
        !cs.container_id.is_empty() && cs.executor_pid.is_some(),
        "{cs:?}"
    );

    let health = a.call(json!({"type": "GET_HEALTH"})).await;
    assert_eq!(
        health,
        json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
    );
    let version = a.call(json!({"type": "GET_VERSION"})).await;
    assert_eq!(version["get_version"]["version_info"]["version"], "1.11.0");
    let flags = a.call(json!({"type": "GET_FLAGS"})).await;
    assert!(
        flags["get_flags"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "work_dir"),
        "{flags}"
    );
    let metrics = a
        .call(json!({"type": "GET_METRICS", "get_metrics": {}}))
        .await;
    assert!(
        metrics["get_metrics"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "slave/uptime_secs"),
        "{metrics}"
    );
    let agent = a.call(json!({"type": "GET_AGENT"})).await;
    assert_eq!(agent["get_agent"]["agent_info"]["hostname"], "api-host");
    assert_eq!(agent["get_agent"]["agent_info"]["id"]["value"], "agent-S1");
    let ops = a.call(json!({"type": "GET_OPERATIONS"})).await;
    assert_eq!(
        ops,
        json!({"type": "GET_OPERATIONS", "get_operations": {"operations": []}})
    );

    // The logging level, raised for a second.
    let set = a
        .post_raw(
            Some("application/json"),
            &json!({"type": "SET_LOGGING_LEVEL",
        "set_logging_level": {"level": 2, "duration": {"nanoseconds": 1_000_000_000u64}}})
            .to_string(),
        )
        .await;
    assert_eq!(set, (200, String::new()));
    let level = a.call(json!({"type": "GET_LOGGING_LEVEL"})).await;
    assert_eq!(level["get_logging_level"]["level"], 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let level = a.call(json!({"type": "GET_LOGGING_LEVEL"})).await;
    assert_eq!(level["get_logging_level"]["level"], 0);

    // Tasks, executors, frameworks, containers.
    let tasks = a.call(json!({"type": "GET_TASKS"})).await["get_tasks"].clone();
    assert_eq!(ids(&tasks["launched_tasks"]), ["api-task"]);
    let task = &tasks["launched_tasks"][0];
    assert_eq!(task["state"], "TASK_RUNNING");
    assert_eq!(task["agent_id"]["value"], "agent-S1");
    let last = task["statuses"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["container_status"]["container_id"]["value"],
        cs.container_id.as_str()
    );
    assert_eq!(
        last["container_status"]["executor_pid"],
        cs.executor_pid.unwrap()
    );
    let state = a.call(json!({"type": "GET_STATE"})).await;
    assert_eq!(state["get_state"]["get_tasks"], tasks);
    let fws = a.call(json!({"type": "GET_FRAMEWORKS"})).await;
    assert_eq!(
        fws["get_frameworks"]["frameworks"][0]["framework_info"]["name"],
        "api-test"
    );
    let exs = a.call(json!({"type": "GET_EXECUTORS"})).await;
    let ex = &exs["get_executors"]["executors"][0]["executor_info"];
    assert_eq!(ex["executor_id"]["value"], "api-task");
    assert!(
        ex["name"]
            .as_str()
            .unwrap()
            .starts_with("Command Executor (Task: api-task)")
    );
    let containers = a
        .call(json!({"type": "GET_CONTAINERS",
        "get_containers": {"show_nested": true, "show_standalone": false}}))
        .await;
    let c = &containers["get_containers"]["containers"][0];
    assert_eq!(c["container_id"]["value"], cs.container_id.as_str());
    assert_eq!(c["executor_id"]["value"], "api-task");
    assert_eq!(
        c["container_status"]["executor_pid"],
        cs.executor_pid.unwrap()
    );
    let stats = &c["resource_statistics"];
    assert!(stats["timestamp"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(stats["cpus_limit"].as_f64().is_some(), "{stats}");

    // The sandbox: LIST_FILES and READ_FILE on the virtual path.
    let sandbox = format!("/frameworks/{FW}/executors/api-task/runs/latest");
    let list = a
        .call(json!({"type": "LIST_FILES", "list_files": {"path": sandbox}}))
        .await;
    let names: Vec<&str> = list["list_files"]["file_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&format!("{sandbox}/stdout").as_str()),
        "{list}"
    );
    let stdout = format!("{sandbox}/stdout");
    let read = a
        .call(json!({"type": "READ_FILE",
        "read_file": {"path": stdout, "offset": 0}}))
        .await;
    let data = keel_api::mesos::base64_decode(read["read_file"]["data"].as_str().unwrap()).unwrap();
    assert!(
        String::from_utf8_lossy(&data).contains("hello-from-api"),
        "{read}"
    );
    assert_eq!(
        read["read_file"]["size"].as_u64().unwrap() as usize,
        data.len()
    );

    // Mesos' state, flags, version and statistics, also as JSONP.
    for prefix in ["", "/slave(1)"] {
        let st = a.get_json(&format!("{prefix}/state")).await;
        assert_eq!(st["id"], "agent-S1");
        let ex = &st["frameworks"][0]["executors"][0];
        assert_eq!(st["frameworks"][0]["id"], FW);
        assert_eq!(ex["id"], "api-task");
        assert_eq!(ex["container"], cs.container_id.as_str());
        let dir = ex["directory"].as_str().unwrap();
        assert!(std::path::Path::new(dir).join("stdout").is_file(), "{dir}");
        assert!(dir.starts_with(a.dir.path().to_str().unwrap()), "{dir}");
        assert_eq!(ex["tasks"][0]["id"], "api-task");
        assert_eq!(ex["tasks"][0]["state"], "TASK_RUNNING");
        let flags = a.get_json(&format!("{prefix}/flags")).await;
        assert!(flags["flags"]["work_dir"].is_string(), "{flags}");
        let version = a.get_json(&format!("{prefix}/version")).await;
        assert_eq!(version["version"], "1.11.0");
        let monitor = a.get_json(&format!("{prefix}/monitor/statistics")).await;
        assert_eq!(monitor[0]["executor_id"], "api-task");
        assert_eq!(monitor[0]["framework_id"], FW);
        assert_eq!(monitor[0]["source"], "api-task");
        assert!(monitor[0]["statistics"]["timestamp"].as_f64().is_some());
    }
    let (ct, body) = a.get("/slave(1)/state?jsonp=angular.callbacks._0").await;
    assert_eq!(ct, "text/javascript");
    assert!(
        body.starts_with("angular.callbacks._0({") && body.ends_with("});"),
        "{body}"
    );
    let (ct, body) = a
        .get(&format!("/files/browse?path={sandbox}&jsonp=cb"))
        .await;
    assert_eq!(ct, "text/javascript");
    assert!(
        body.starts_with("cb([") && body.contains("stdout"),
        "{body}"
    );
    let bad = a
        .http
        .get(format!("{}/state?jsonp=alert(1)", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    // Killed and acknowledged: completed tasks, executors and frameworks.
    a.kill("api-task");
    let killed = a.until("TASK_KILLED").await;
    assert_eq!(
        killed.container_status.unwrap().container_id,
        cs.container_id
    );
    let mut tasks = Value::Null;
    for _ in 0..50 {
        tasks = a.call(json!({"type": "GET_TASKS"})).await["get_tasks"].clone();
        if !tasks["completed_tasks"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&tasks["completed_tasks"]), ["api-task"], "{tasks}");
    assert!(tasks["launched_tasks"].as_array().unwrap().is_empty());
    let done = &tasks["completed_tasks"][0];
    assert_eq!(done["state"], "TASK_KILLED");
    let states: Vec<&str> = done["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]);
    let exs = a.call(json!({"type": "GET_EXECUTORS"})).await["get_executors"].clone();
    assert!(exs["executors"].as_array().unwrap().is_empty(), "{exs}");
    assert_eq!(
        exs["completed_executors"][0]["executor_info"]["executor_id"]["value"],
        "api-task"
    );
    let fws = a.call(json!({"type": "GET_FRAMEWORKS"})).await["get_frameworks"].clone();
    assert!(fws["frameworks"].as_array().unwrap().is_empty(), "{fws}");
    assert_eq!(
        fws["completed_frameworks"][0]["framework_info"]["name"],
        "api-test"
    );
    let st = a.get_json("/state").await;
    let ex = &st["completed_frameworks"][0]["completed_executors"][0];
    assert_eq!(ex["completed_tasks"][0]["id"], "api-task");
    assert_eq!(ex["completed_tasks"][0]["state"], "TASK_KILLED");
    let containers = a.call(json!({"type": "GET_CONTAINERS"})).await;
    assert_eq!(
        containers,
        json!({"type": "GET_CONTAINERS", "get_containers": {"containers": []}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_mesos_answers() {
    let a = agent().await;
    let j = Some("application/json");
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (
            None,
            r#"{"type":"GET_HEALTH"}"#.into(),
            400,
            "Expecting 'Content-Type' to be present",
        ),
        (
            Some("application/x-protobuf"),
            "\x08\x01".into(),
            415,
            "Expecting 'Content-Type' of application/json",
        ),
        (
            j,
            "{not json".into(),
            400,
            "Failed to parse body into JSON: ",
        ),
        (
            j,
            "[]".into(),
            400,
            "Failed to convert JSON into Call protobuf: ",
        ),
        (
            j,
            r#"{"type":"GET_EVERYTHING"}"#.into(),
            400,
            "Failed to validate agent::Call: Expecting 'type' to be present",
        ),
        (
            j,
            r#"{}"#.into(),
            400,
            "Failed to validate agent::Call: Expecting 'type' to be present",
        ),
        (
            j,
            r#"{"type":"READ_FILE"}"#.into(),
            400,
            "Failed to validate agent::Call: Expecting 'read_file' to be present",
        ),
        (
            j,
            r#"{"type":"LIST_FILES"}"#.into(),
            400,
            "Failed to validate agent::Call: Expecting 'list_files' to be present",
        ),
        (
            j,
            r#"{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1}}"#.into(),
            400,
            "Failed to convert JSON into Call protobuf: set_logging_level: missing field `duration`",
        ),
        (
            j,
            r#"{"type":"READ_FILE","read_file":{"path":"/etc/passwd","offset":0}}"#.into(),
            404,
            "no such sandbox path: /etc/passwd",
        ),
        (
            j,
            r#"{"type":"LIST_FILES","list_files":{"path":"/frameworks/x/../../.."}}"#.into(),
            400,
            "path \"/frameworks/x/../../..\" must not contain '..'",
        ),
        (
            j,
            r#"{"type":"READ_FILE","read_file":{"path":"/frameworks/x","offset":-1}}"#.into(),
            400,
            "Negative offset provided: -1",
        ),
        (j, r#"{"type":"UNKNOWN"}"#.into(), 501, ""),
        (
            j,
            r#"{"type":"PRUNE_IMAGES"}"#.into(),
            501,
            "PRUNE_IMAGES is not supported by this agent",
        ),
        (
            j,
            r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION"}"#.into(),
            400,
            "Failed to validate agent::Call: Expecting 'launch_nested_container_session' to be present",
        ),
    ];
    for (ct, body, status, reason) in cases {
        let (got, text) = a.post_raw(ct, &body).await;
        assert_eq!(got, status, "{body}: {text}");
        assert!(
            text.starts_with(reason),
            "{body}: {text:?} (wanted {reason:?})"
        );
    }
    let get = a
        .http
        .get(format!("{}/api/v1", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let html = a
        .http
        .post(format!("{}/api/v1", a.url))
        .header("Content-Type", "application/json")
        .header("Accept", "text/html")
        .body(r#"{"type":"GET_HEALTH"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 406);
    // GET_CONTAINERS, GET_TASKS with nothing running: empty and well shaped.
    let tasks = a.call(json!({"type": "GET_TASKS"})).await;
    assert_eq!(tasks["get_tasks"]["launched_tasks"], json!([]));
    // Also under the agent's process name, as its `pid` says.
    let health = a
        .http
        .post(format!("{}/slave(1)/api/v1", a.url))
        .header("Content-Type", "application/json")
        .body(r#"{"type":"GET_HEALTH"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let rp = a.call(json!({"type": "GET_RESOURCE_PROVIDERS"})).await;
    assert_eq!(
        rp,
        json!({"type": "GET_RESOURCE_PROVIDERS",
        "get_resource_providers": {"resource_providers": []}})
    );
}
