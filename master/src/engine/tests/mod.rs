//! Engine tests: Mesos behaviour without sockets, tokio or a clock. A
//! [`Harness`] plays the shell: it commits what the engine plans to a
//! registry of its own (as the replicator would), feeds the outcome back,
//! and keeps the effects for the test to look at.

mod accept;
mod agents;
mod counters;
mod executors;
mod frameworks;
mod gone;
mod maintenance;
mod observe;
mod operations;
mod tasks;
mod volumes;

use std::time::Duration;

use keel_api::inventory::Inventory;
use keel_api::mesos::{self, FrameworkInfo, TaskInfo, TaskState, TaskStatus};
use keel_api::resources::Resources;
use keel_api::scheduler::{Event, Offer, Operation, OperationKind, Subscribe};
use serde_json::{Value as Json, json};

use super::*;
use crate::registry::{AgentInfo, Applied, Command, Registry};

pub struct Harness {
    pub engine: Engine,
    /// What the replicator committed.
    pub committed: Registry,
    pub now: Now,
    pub effects: Vec<Effect>,
    next_stream: u64,
    /// The current session of each agent registered through the harness.
    sessions: std::collections::HashMap<String, u64>,
}

pub fn config() -> EngineConfig {
    EngineConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port: 5050,
        hostname: "m1".into(),
        agent_timeout: Duration::from_secs(15),
        heartbeat_interval: Duration::from_secs(5),
        framework_heartbeat_interval: Duration::from_secs(15),
        offer_timeout: None,
        agent_reregister_timeout: Duration::from_secs(600),
        allocator: "drf".into(),
    }
}

pub fn agent_info(name: &str, resources: &str) -> AgentInfo {
    AgentInfo {
        hostname: name.into(),
        ip: "127.0.0.1".into(),
        port: 5051,
        resources: Resources::parse(resources).unwrap(),
        attributes: Default::default(),
        version: "test".into(),
        inventory: Inventory::default(),
    }
}

pub fn framework_info(name: &str, extra: Json) -> FrameworkInfo {
    let mut v = json!({"user": "root", "name": name, "failover_timeout": 60});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    mesos::parse(v).unwrap()
}

/// A command task on `offer` using `cpus` and `mem`.
pub fn task(offer: &Offer, id: &str, cpus: f64, mem: f64) -> TaskInfo {
    mesos::parse(json!({
        "name": id, "task_id": {"value": id}, "agent_id": {"value": offer.agent_id.value},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}
        ],
        "command": {"value": "true"}
    }))
    .unwrap()
}

pub fn launch(tasks: Vec<TaskInfo>) -> Operation {
    Operation {
        id: None,
        kind: OperationKind::Launch { task_infos: tasks },
    }
}

impl Harness {
    /// A leading engine over a bootstrapped registry, at some moment.
    pub fn new() -> Harness {
        Self::with(config())
    }

    pub fn with(cfg: EngineConfig) -> Harness {
        let mut h = Harness {
            engine: Engine::new(cfg, Registry::default()).unwrap(),
            committed: Registry::default(),
            now: Now::read(),
            effects: Vec::new(),
            next_stream: 0,
            sessions: Default::default(),
        };
        h.take_over();
        h
    }

    /// Takes over with the committed registry (a failover).
    pub fn take_over(&mut self) {
        let commands = self.engine.take_over(self.committed.clone(), "m", self.now);
        for c in commands {
            self.commit(c).unwrap();
        }
        self.engine.lead(self.now);
        self.collect();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    /// Commits as the replicator would, and tells the engine.
    pub fn commit(&mut self, command: Command) -> Result<Applied, crate::registry::RegistryError> {
        let applied = self.committed.apply(&command)?;
        assert!(self.engine.committed(&command, &applied), "copy diverged");
        Ok(applied)
    }

    /// Moves the engine's effects into `effects`.
    pub fn collect(&mut self) {
        let e = self.engine.take_effects();
        self.effects.extend(e);
    }

    /// Takes the effects so far.
    pub fn drain(&mut self) -> Vec<Effect> {
        self.collect();
        std::mem::take(&mut self.effects)
    }

    /// Registers an agent: its id and session.
    pub fn agent(&mut self, name: &str, resources: &str) -> (String, u64) {
        self.reregister(None, name, resources, Vec::new())
    }

    pub fn reregister(
        &mut self,
        id: Option<String>,
        name: &str,
        resources: &str,
        reported: Vec<ReportedTask>,
    ) -> (String, u64) {
        let p = self
            .engine
            .register_agent(id, agent_info(name, resources), self.now)
            .unwrap();
        let applied = self.commit(p.command).unwrap();
        let reg = self
            .engine
            .agent_registered(&applied, reported, self.now)
            .unwrap();
        self.collect();
        self.sessions.insert(reg.agent_id.clone(), reg.session);
        (reg.agent_id, reg.session)
    }

    /// The agent's session ends (its process died, say), and the
    /// disconnection is committed.
    pub fn end_session(&mut self, agent_id: &str) {
        let session = self.sessions[agent_id];
        let p = self
            .engine
            .agent_session_closed(agent_id, session, self.now)
            .unwrap();
        let applied = self.commit(p.command).unwrap();
        self.engine.agent_disconnected(agent_id, &applied);
        self.collect();
    }

    /// Subscribes a framework: its id and stream.
    pub fn framework(&mut self, info: FrameworkInfo) -> (String, String) {
        self.next_stream += 1;
        let stream = format!("s{}", self.next_stream);
        let id = info.id.as_ref().map(|i| i.value.clone());
        let sub = Subscribe {
            framework_info: info,
            suppressed_roles: Vec::new(),
        };
        let p = self
            .engine
            .subscribe(id, sub, stream.clone(), self.now)
            .unwrap();
        let applied = self.commit(p.command).unwrap();
        let fid = self.engine.subscribed(p.then, &applied, self.now).unwrap();
        self.collect();
        (fid, stream)
    }

    /// Events sent to the framework so far (taken out of `effects`).
    pub fn events(&mut self, framework_id: &str) -> Vec<Event> {
        self.collect();
        let mut out = Vec::new();
        self.effects.retain(|e| match e {
            Effect::ToFramework {
                framework_id: f,
                event,
                ..
            } if f == framework_id => {
                out.push(event.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// Runs an allocation cycle and returns the framework's new offers.
    pub fn offers(&mut self, framework_id: &str) -> Vec<Offer> {
        self.engine.allocate(self.now);
        self.events(framework_id)
            .into_iter()
            .flat_map(|e| match e {
                Event::Offers(o) => o,
                _ => Vec::new(),
            })
            .collect()
    }

    /// The task updates the framework received so far.
    pub fn updates(&mut self, framework_id: &str) -> Vec<TaskStatus> {
        self.events(framework_id)
            .into_iter()
            .filter_map(|e| match e {
                Event::Update(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Drives a whole ACCEPT, committing what it plans.
    pub fn accept(&mut self, framework_id: &str, offers: &[&Offer], ops: Vec<Operation>) {
        let ids: Vec<String> = offers.iter().map(|o| o.id.value.clone()).collect();
        let filters = mesos::Filters::default();
        let Some(mut run) = self
            .engine
            .accept_begin(framework_id, &ids, ops, filters, self.now)
        else {
            self.collect();
            return;
        };
        while let Some(c) = self.engine.accept_next(&mut run, self.now) {
            let outcome = self
                .commit(c)
                .map(|_| ())
                .map_err(|e| Invalid(e.to_string()));
            self.engine.accept_committed(&mut run, outcome);
        }
        self.engine.accept_end(run, self.now);
        self.collect();
    }

    /// Messages sent to the agent so far (taken out of `effects`).
    pub fn sent_to(&mut self, agent_id: &str) -> Vec<ToAgent> {
        self.collect();
        let mut out = Vec::new();
        self.effects.retain(|e| match e {
            Effect::ToAgent {
                agent_id: a,
                message,
                ..
            } if a == agent_id && !matches!(message, ToAgent::Heartbeat { .. }) => {
                out.push(message.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// An update from the agent, with a uuid made from `n`.
    pub fn update(
        &mut self,
        agent_id: &str,
        framework_id: &str,
        task_id: &str,
        state: TaskState,
        n: u8,
    ) {
        let update = AgentUpdate {
            framework_id: framework_id.into(),
            status: TaskStatus {
                source: Some("SOURCE_EXECUTOR".into()),
                ..TaskStatus::new(task_id, state)
            },
            uuid: vec![n; 16],
        };
        self.engine.status_update(agent_id, update, self.now);
        self.collect();
    }

    pub fn task_state(&self, framework_id: &str, task_id: &str) -> Option<TaskState> {
        let (live, completed) = self.engine.tasks();
        live.iter()
            .chain(completed.iter().rev())
            .find(|t| t.framework_id == framework_id && t.task_id == task_id)
            .map(|t| t.state)
    }
}

/// A running task: an agent, a framework, one task launched and RUNNING
/// (acknowledged).
pub fn running() -> (Harness, String, String) {
    let mut h = Harness::new();
    let (agent, _) = h.agent("a1", "cpus:4;mem:1024");
    let (fw, _) = h.framework(framework_info("f", json!({})));
    let offer = h.offers(&fw).remove(0);
    h.accept(
        &fw,
        &[&offer],
        vec![launch(vec![task(&offer, "t1", 1.0, 128.0)])],
    );
    h.update(&agent, &fw, "t1", TaskState::TASK_RUNNING, 1);
    h.engine.acknowledge(&fw, &agent, "t1", vec![1; 16]);
    h.drain();
    (h, agent, fw)
}
