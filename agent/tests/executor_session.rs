//! The session carries the master's task calls to the runtime and its status
//! updates back, keeps them across a reconnect and reports known tasks in
//! `Register`. The master is a stand-in gRPC server on loopback.

use std::time::Duration;

use futures::StreamExt;
use keel_agent::executor::{ExecutorConfig, ExecutorHandle, LinuxLauncher};
use keel_agent::session::{self, SessionConfig, SessionStatus};
use keel_agent::workdir::WorkDir;
use keel_api::pb::{self, agent_message::Msg as AgentMsg, master_message::Msg as MasterMsg};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

const WAIT: Duration = Duration::from_secs(10);

/// One agent stream as the stand-in master sees it.
struct Stream {
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

impl Stream {
    fn send(&self, msg: MasterMsg) {
        let _ = self.outbound.send(Ok(pb::MasterMessage { msg: Some(msg) }));
    }

    /// The next non-heartbeat message from the agent.
    async fn recv(&mut self) -> AgentMsg {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inbound.next())
                .await
                .expect("agent said nothing")
                .expect("stream ended")
                .expect("stream failed");
            match msg.msg {
                Some(AgentMsg::Heartbeat(_)) | None => continue,
                Some(other) => return other,
            }
        }
    }

    async fn register(&mut self) -> pb::Register {
        match self.recv().await {
            AgentMsg::Register(r) => r,
            other => panic!("expected register, got {other:?}"),
        }
    }

    async fn update(&mut self) -> pb::StatusUpdate {
        match self.recv().await {
            AgentMsg::StatusUpdate(u) => u,
            other => panic!("expected a status update, got {other:?}"),
        }
    }

    fn registered(&self, reregistered: bool) {
        self.send(MasterMsg::Registered(pb::Registered {
            agent_id: "m1-S0".into(),
            master_id: "m1".into(),
            heartbeat_interval_ms: 200,
            agent_timeout_ms: 10_000,
            reregistered,
        }));
    }

    fn ack(&self, u: &pb::StatusUpdate) {
        let st = u.status.as_ref().unwrap();
        self.send(MasterMsg::Acknowledge(pb::Acknowledge {
            framework_id: u.framework_id.clone(),
            task_id: st.task_id.clone(),
            uuid: st.uuid.clone(),
        }));
    }
}

fn state(u: &pb::StatusUpdate) -> &str {
    &u.status.as_ref().unwrap().state
}

struct Setup {
    streams: mpsc::UnboundedReceiver<Stream>,
    stop: watch::Sender<bool>,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
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
    let dir = tempfile::tempdir().unwrap();
    let mut config = ExecutorConfig::new(dir.path());
    config.kill_grace_period = Duration::from_secs(2);
    let executor = ExecutorHandle::start(config, LinuxLauncher::new(env!("CARGO_BIN_EXE_keel-agent")));
    let session_config = SessionConfig {
        masters: vec![addr.to_string()],
        info: pb::AgentInfo {
            hostname: "test-agent".into(),
            ip: "127.0.0.1".into(),
            port: 5051,
            ..Default::default()
        },
        backoff_factor: Duration::from_millis(20),
        executor,
    };
    let (stop, stop_rx) = watch::channel(false);
    let work_dir = WorkDir::open(dir.path()).unwrap();
    let (status, _) = watch::channel(SessionStatus::default());
    tokio::spawn(async move { session::run(session_config, &work_dir, status, stop_rx).await });
    Setup { streams, stop, dir }
}

impl Setup {
    async fn stream(&mut self) -> Stream {
        tokio::time::timeout(WAIT, self.streams.recv())
            .await
            .expect("agent never connected")
            .unwrap()
    }
}

fn launch(task_id: &str, cmd: &str) -> MasterMsg {
    let task = json!({"name": task_id, "task_id": {"value": task_id},
        "agent_id": {"value": "m1-S0"}, "resources": [], "command": {"value": cmd}});
    MasterMsg::LaunchTasks(pb::LaunchTasks {
        framework_id: "fw".into(),
        framework_info_json: json!({"user": "u", "name": "n"}).to_string(),
        task_info_json: vec![task.to_string()],
        executor_info_json: String::new(),
    })
}

#[tokio::test]
async fn updates_survive_a_reconnect_and_tasks_are_reported() {
    let mut s = setup().await;
    let mut first = s.stream().await;
    assert!(first.register().await.tasks.is_empty());
    first.registered(false);
    first.send(launch("t1", "echo hi"));
    let starting = first.update().await;
    assert_eq!(
        (state(&starting), starting.framework_id.as_str()),
        ("TASK_STARTING", "fw")
    );
    first.ack(&starting);
    let running = first.update().await;
    assert_eq!(state(&running), "TASK_RUNNING");
    // The master goes away before acknowledging RUNNING.
    drop(first);

    let mut second = s.stream().await;
    let register = second.register().await;
    assert_eq!(register.agent_id, "m1-S0");
    assert_eq!(register.tasks.len(), 1);
    let report = &register.tasks[0];
    assert_eq!(report.framework_id, "fw");
    assert!(report.task_info_json.contains("echo hi"));
    assert_eq!(report.latest.as_ref().unwrap().task_id, "t1");
    second.registered(true);
    // The outstanding update comes again, same uuid, then the rest in order.
    let again = second.update().await;
    assert_eq!(state(&again), "TASK_RUNNING");
    assert_eq!(
        again.status.as_ref().unwrap().uuid,
        running.status.as_ref().unwrap().uuid
    );
    second.ack(&again);
    let finished = second.update().await;
    assert_eq!(state(&finished), "TASK_FINISHED");
    second.ack(&finished);

    let stdout = s
        .dir
        .path()
        .join("slaves/m1-S0/frameworks/fw/executors/t1/runs/latest/stdout");
    assert_eq!(std::fs::read_to_string(stdout).unwrap(), "hi\n");
    drop(second);
    let mut third = s.stream().await;
    assert!(
        third.register().await.tasks.is_empty(),
        "acknowledged tasks are forgotten"
    );
    let _ = s.stop.send(true);
}

#[tokio::test]
async fn kill_and_framework_shutdown_arrive_through_the_session() {
    let mut s = setup().await;
    let mut m = s.stream().await;
    m.register().await;
    m.registered(false);
    m.send(launch("a", "sleep 60"));
    m.send(launch("b", "sleep 60"));
    let mut running = 0;
    while running < 2 {
        let u = m.update().await;
        m.ack(&u);
        running += usize::from(state(&u) == "TASK_RUNNING");
    }
    m.send(MasterMsg::KillTask(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "a".into(),
        grace_period_ms: Some(1_000),
    }));
    let killed = m.update().await;
    assert_eq!(
        (
            state(&killed),
            killed.status.as_ref().unwrap().task_id.as_str()
        ),
        ("TASK_KILLED", "a")
    );
    m.ack(&killed);
    m.send(MasterMsg::ShutdownFramework(pb::ShutdownFramework {
        framework_id: "fw".into(),
    }));
    let killed = m.update().await;
    assert_eq!(
        (
            state(&killed),
            killed.status.as_ref().unwrap().task_id.as_str()
        ),
        ("TASK_KILLED", "b")
    );
    m.ack(&killed);
    let _ = s.stop.send(true);
}
