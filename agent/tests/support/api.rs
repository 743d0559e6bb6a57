//! The agent's port on a real task runtime, for the operator API tests:
//! the agent's own router on loopback over `start_runtime` (real
//! processes and sandboxes), the test acknowledging updates as the master
//! would.

use std::sync::{Arc, Once};

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::files::Sandboxes;
use keel_agent::http::{AgentView, router, serve};
use keel_agent::session::SessionStatus;
use keel_api::pb;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub const FW: &str = "fw-api";

pub struct Agent {
    pub exec: ExecutorHandle,
    pub updates: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    _status: watch::Sender<SessionStatus>,
}

pub async fn agent() -> Agent {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        let _sink = keel_telemetry::init("agent-api-test");
    });
    let dir = tempfile::tempdir().unwrap();
    let (exec, updates) = super::start_runtime(ExecutorConfig::new(dir.path()));
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
        containers: keel_agent::containers::Containers::new(
            exec.clone(),
            "/bin/false".into(),
            dir.path().to_path_buf(),
        ),
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
    pub fn launch(&self, id: &str, cmd: &str) {
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

    pub fn kill(&self, id: &str) {
        self.exec.call(ExecutorCall::Kill(pb::KillTask {
            framework_id: FW.into(),
            task_id: id.into(),
            grace_period_ms: Some(0),
        }));
    }

    /// Acknowledges updates until one in `state`; returns it.
    pub async fn until(&mut self, state: &str) -> pb::TaskStatus {
        loop {
            let u = tokio::time::timeout(super::WAIT, self.updates.recv())
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

    pub async fn post_raw(&self, content_type: Option<&str>, body: &str) -> (u16, String) {
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
    pub async fn call(&self, call: Value) -> Value {
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

    pub async fn get(&self, path: &str) -> (String, String) {
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

    pub async fn get_json(&self, path: &str) -> Value {
        let (ct, text) = self.get(path).await;
        assert_eq!(ct, "application/json", "{path}");
        serde_json::from_str(&text).unwrap()
    }
}

pub fn ids(tasks: &Value) -> Vec<&str> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"]["value"].as_str().unwrap())
        .collect()
}

impl Agent {
    /// Acknowledges updates until each of `tasks` reached `state`.
    pub async fn all(&mut self, tasks: &[&str], state: &str) -> Vec<pb::TaskStatus> {
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

    pub async fn until_any(&mut self) -> pb::TaskStatus {
        let u = tokio::time::timeout(super::WAIT, self.updates.recv())
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
