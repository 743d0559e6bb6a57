//! The agent's v1 operator API and Mesos-shaped state on a real task
//! runtime (real processes, sandboxes and updates, the test acknowledging
//! them as the master would), served by the agent's own router on
//! loopback: every call, the legacy endpoints with `?jsonp=`, and the
//! answers Mesos gives to bad input.

mod support;

use std::sync::{Arc, Once};
use std::time::Duration;

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::files::Sandboxes;
use keel_agent::http::{AgentView, router, serve};
use keel_agent::session::SessionStatus;
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

const FW: &str = "fw-api";

struct Agent {
    exec: ExecutorHandle,
    updates: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    url: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    _status: watch::Sender<SessionStatus>,
}

async fn agent() -> Agent {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        let _sink = keel_telemetry::init("agent-api-test");
    });
    let dir = tempfile::tempdir().unwrap();
    let (exec, updates) = support::start_runtime(ExecutorConfig::new(dir.path()));
    let (status_tx, status) = watch::channel(SessionStatus {
        agent_id: Some("agent-S1".into()),
        registered: true,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut flags = std::collections::BTreeMap::new();
    flags.insert("work_dir".to_string(), dir.path().display().to_string());
    let view = Arc::new(AgentView {
        hostname: "api-host".into(),
        pid: format!("slave(1)@127.0.0.1:{}", addr.port()),
        inventory: Default::default(),
        resources: keel_api::resources::Resources::parse("cpus:2;mem:1024").unwrap(),
        attributes: Default::default(),
        status,
        sandboxes: Sandboxes::new(dir.path()),
        grants: None,
        metrics: Arc::new(keel_agent::metrics::AgentMetrics::new(Default::default())),
        sys_root: "/".into(),
        runtime: exec.clone(),
        flags,
        start_time: 1.0,
    });
    tokio::spawn(serve(
        listener,
        router(view),
        keel_serve::Limits::AGENT,
        None,
        std::future::pending(),
    ));
    Agent {
        exec,
        updates,
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        dir,
        _status: status_tx,
    }
}

impl Agent {
    fn launch(&self, id: &str, cmd: &str) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"value": cmd}});
        self.exec.call(ExecutorCall::launch(pb::LaunchTasks {
            framework_id: FW.into(),
            framework_info_json: json!({"user": "root", "name": "api-test",
                "id": {"value": FW}})
            .to_string(),
            task_info_json: vec![task.to_string()],
            executor_info_json: String::new(),
        }));
    }

    fn kill(&self, id: &str) {
        self.exec.call(ExecutorCall::Kill(pb::KillTask {
            framework_id: FW.into(),
            task_id: id.into(),
            grace_period_ms: Some(0),
        }));
    }

    /// Acknowledges updates until one in `state`; returns it.
    async fn until(&mut self, state: &str) -> pb::TaskStatus {
        loop {
            let u = tokio::time::timeout(support::WAIT, self.updates.recv())
                .await
                .expect("no update")
                .unwrap();
            let st = u.status.clone().unwrap();
            self.exec.call(ExecutorCall::Acknowledge(pb::Acknowledge {
                framework_id: u.framework_id.clone(),
                task_id: st.task_id.clone(),
                uuid: st.uuid.clone(),
            }));
            if st.state == state {
                return st;
            }
        }
    }

    async fn post_raw(&self, content_type: Option<&str>, body: &str) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/api/v1", self.url))
            .body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// A call that must answer 200 with JSON.
    async fn call(&self, call: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/v1", self.url))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(call.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{call}: {text}");
        assert_eq!(ct.as_deref(), Some("application/json"), "{call}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, path: &str) -> (String, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        (ct, resp.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> Value {
        let (ct, text) = self.get(path).await;
        assert_eq!(ct, "application/json", "{path}");
        serde_json::from_str(&text).unwrap()
    }
}

fn ids(tasks: &Value) -> Vec<&str> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"]["value"].as_str().unwrap())
        .collect()
}

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
            501,
            "LAUNCH_NESTED_CONTAINER_SESSION is not implemented yet",
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

impl Agent {
    /// Acknowledges updates until each of `tasks` reached `state`.
    async fn all(&mut self, tasks: &[&str], state: &str) -> Vec<pb::TaskStatus> {
        let mut seen: Vec<pb::TaskStatus> = Vec::new();
        while !tasks
            .iter()
            .all(|t| seen.iter().any(|s| s.task_id == *t && s.state == state))
        {
            seen.push(self.until_any().await);
        }
        seen.retain(|s| s.state == state);
        seen
    }

    async fn until_any(&mut self) -> pb::TaskStatus {
        let u = tokio::time::timeout(support::WAIT, self.updates.recv())
            .await
            .expect("no update")
            .unwrap();
        let st = u.status.clone().unwrap();
        self.exec.call(ExecutorCall::Acknowledge(pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: st.task_id.clone(),
            uuid: st.uuid.clone(),
        }));
        st
    }
}

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
    let out = std::fs::read_to_string(dir.join("tasks/g2/stdout")).unwrap();
    assert!(out.contains("g2-out"), "{out}");

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
