//! A stand-in master for agent tests: a real gRPC `AgentService` on
//! loopback that hands each agent stream to the test, which plays the
//! master's part (register, launch, acknowledge, kill).

#![allow(dead_code)]

pub mod api;
pub mod fetch;
pub mod framework;
pub mod guest;

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use keel_api::pb::{self, agent_message::Msg as AgentMsg, master_message::Msg as MasterMsg};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

pub const WAIT: Duration = Duration::from_secs(15);

/// The task runtime with the real launcher (this package's `keel-agent`),
/// attached as agent `agent-S1`: its status updates come on the receiver.
pub fn start_runtime(
    config: keel_agent::executor::ExecutorConfig,
) -> (
    keel_agent::executor::ExecutorHandle,
    mpsc::UnboundedReceiver<pb::StatusUpdate>,
) {
    let exec = keel_agent::executor::ExecutorHandle::start(
        config,
        keel_agent::executor::LinuxLauncher::new(env!("CARGO_BIN_EXE_keel-agent")),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    exec.attach("agent-S1", tx);
    (exec, rx)
}

/// Turns on exactly the namespaces `features`, on a host said to have them.
pub fn only_namespaces(
    config: &mut keel_agent::executor::ExecutorConfig,
    features: &[keel_agent::isolation::Feature],
) {
    config.isolation = keel_agent::isolation::Isolation::Only(features.iter().copied().collect());
    config.host = keel_agent::isolation::HostSupport {
        namespaces: features.iter().copied().collect(),
        ..Default::default()
    };
}

/// One agent stream as the stand-in master sees it.
pub struct Stream {
    inbound: Streaming<pb::AgentMessage>,
    outbound: mpsc::UnboundedSender<Result<pb::MasterMessage, Status>>,
}

struct StandIn {
    streams: mpsc::UnboundedSender<Stream>,
}

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for StandIn {
    type SessionStream = UnboundedReceiverStream<Result<pb::MasterMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (outbound, rx) = mpsc::unbounded_channel();
        let _ = self.streams.send(Stream {
            inbound: request.into_inner(),
            outbound,
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}

/// The stand-in's address and the streams agents open to it.
pub struct Master {
    pub addr: SocketAddr,
    streams: mpsc::UnboundedReceiver<Stream>,
}

impl Master {
    pub async fn start() -> Master {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (streams_tx, streams) = mpsc::unbounded_channel();
        let service = pb::agent_service_server::AgentServiceServer::new(StandIn {
            streams: streams_tx,
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Master { addr, streams }
    }

    /// The next stream an agent opens.
    pub async fn stream(&mut self) -> Stream {
        tokio::time::timeout(WAIT, self.streams.recv())
            .await
            .expect("agent never connected")
            .unwrap()
    }
}

impl Stream {
    pub fn send(&self, msg: MasterMsg) {
        let _ = self.outbound.send(Ok(pb::MasterMessage { msg: Some(msg) }));
    }

    /// The next non-heartbeat message from the agent.
    pub async fn recv(&mut self) -> AgentMsg {
        self.recv_within(WAIT).await.expect("agent said nothing")
    }

    /// The next non-heartbeat message, if one comes within `d`.
    pub async fn recv_within(&mut self, d: Duration) -> Option<AgentMsg> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inbound.next())
                .await
                .ok()?
                .expect("stream ended")
                .expect("stream failed");
            match msg.msg {
                Some(AgentMsg::Heartbeat(_)) | None => continue,
                Some(other) => return Some(other),
            }
        }
    }

    pub async fn register(&mut self) -> pb::Register {
        match self.recv().await {
            AgentMsg::Register(r) => r,
            other => panic!("expected register, got {other:?}"),
        }
    }

    pub async fn update(&mut self) -> pb::StatusUpdate {
        match self.recv().await {
            AgentMsg::StatusUpdate(u) => u,
            other => panic!("expected a status update, got {other:?}"),
        }
    }

    pub fn registered(&self, agent_id: &str, reregistered: bool) {
        self.send(MasterMsg::Registered(pb::Registered {
            agent_id: agent_id.into(),
            master_id: "m1".into(),
            heartbeat_interval_ms: 200,
            agent_timeout_ms: 10_000,
            reregistered,
            certificate_pem: String::new(),
        }));
    }

    pub fn ack(&self, u: &pb::StatusUpdate) {
        let st = u.status.as_ref().unwrap();
        self.send(MasterMsg::Acknowledge(pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: st.task_id.clone(),
            uuid: st.uuid.clone(),
        }));
    }

    pub fn kill(&self, task_id: &str, grace_ms: Option<u64>) {
        self.send(MasterMsg::KillTask(pb::KillTask {
            framework_id: "fw".into(),
            task_id: task_id.into(),
            grace_period_ms: grace_ms,
        }));
    }
}

pub fn state(u: &pb::StatusUpdate) -> &str {
    &u.status.as_ref().unwrap().state
}

pub fn task_id(u: &pb::StatusUpdate) -> &str {
    &u.status.as_ref().unwrap().task_id
}

/// `LaunchTasks` for one command task of framework `fw`.
pub fn launch(agent_id: &str, task_id: &str, cmd: &str) -> MasterMsg {
    launch_json(
        agent_id,
        json!({"name": task_id, "task_id": {"value": task_id},
            "agent_id": {"value": agent_id}, "resources": [], "command": {"value": cmd}}),
    )
}

/// `LaunchTasks` for one task given as TaskInfo JSON.
pub fn launch_json(_agent_id: &str, task: serde_json::Value) -> MasterMsg {
    MasterMsg::LaunchTasks(pb::LaunchTasks {
        framework_id: "fw".into(),
        framework_info_json: json!({"user": "root", "name": "n"}).to_string(),
        task_info_json: vec![task.to_string()],
        executor_info_json: String::new(),
    })
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// Waits up to `within` for `pid` to be gone.
pub async fn gone(pid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while alive(pid) {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Kills, when dropped, every process a test left behind under `dir`:
/// task supervisors (their command line names their state dir) and tasks
/// (their working directory is their sandbox).
pub struct Cleanup(pub std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let needle = self.0.to_string_lossy().into_owned();
        for _ in 0..3 {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
                let mine =
                    String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.starts_with(&self.0);
                if mine && let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `keel-agent` process (the real binary), SIGKILLed when dropped.
pub struct AgentProc {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
    pub port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl AgentProc {
    pub fn start(master: SocketAddr, work_dir: &std::path::Path, extra: &[&str]) -> AgentProc {
        let port = free_port();
        let log = work_dir.with_extension(format!("{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        // KEEL_AGENT_BIN: another build (the release one, for figures).
        let bin = std::env::var_os("KEEL_AGENT_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_keel-agent").into());
        let child = std::process::Command::new(bin)
            .args(["--master", &master.to_string(), "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .arg("--work-dir")
            .arg(work_dir)
            .args(["--registration-backoff-factor", "100ms"])
            .args(["--resources", "cpus:4;mem:4096"])
            .args(extra)
            .env("KEEL_LOG_STDERR", "1")
            .env("KEEL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        AgentProc { child, log, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Processes whose command line mentions `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains(needle)
                .then_some(pid)
        })
        .collect()
}

/// Every process in the PID namespace of `pid`.
pub fn pids_in_pid_namespace_of(pid: u32) -> Vec<u32> {
    let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(target) = ns(pid) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| ns(*p).as_ref() == Some(&target))
        .collect()
}

/// Launches one task (Mesos TaskInfo JSON) for framework `fw` straight into
/// an executor, as the session would on a master's LaunchTasks.
pub fn launch_into(
    exec: &keel_agent::executor::ExecutorHandle,
    framework_info: serde_json::Value,
    task: &serde_json::Value,
) {
    exec.call(keel_agent::executor::ExecutorCall::launch(
        pb::LaunchTasks {
            framework_id: "fw".into(),
            framework_info_json: framework_info.to_string(),
            task_info_json: vec![task.to_string()],
            executor_info_json: String::new(),
        },
    ));
}

/// Receives the executor's next update and acknowledges it.
pub async fn next_acked(
    exec: &keel_agent::executor::ExecutorHandle,
    rx: &mut mpsc::UnboundedReceiver<pb::StatusUpdate>,
) -> pb::TaskStatus {
    let u = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no update")
        .expect("executor gone");
    let st = u.status.clone().expect("update without status");
    exec.call(keel_agent::executor::ExecutorCall::Acknowledge(
        pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: st.task_id.clone(),
            uuid: st.uuid.clone(),
        },
    ));
    st
}

pub fn is_terminal(st: &pb::TaskStatus) -> bool {
    matches!(
        st.state.as_str(),
        "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED" | "TASK_ERROR"
    )
}

/// Acknowledges the executor's updates until a terminal one; returns it.
pub async fn until_terminal(
    exec: &keel_agent::executor::ExecutorHandle,
    rx: &mut mpsc::UnboundedReceiver<pb::StatusUpdate>,
) -> pb::TaskStatus {
    loop {
        let st = next_acked(exec, rx).await;
        if is_terminal(&st) {
            return st;
        }
    }
}
