//! The master's Mesos logic as a pure engine: plain data in, decisions out.
//!
//! The engine owns everything a leading master knows at runtime — its copy
//! of the committed [`Registry`], the allocator, agent sessions and
//! liveness, frameworks and their streams, the offer book and the task
//! table — and decides every Mesos behaviour: registration, SUBSCRIBE,
//! ACCEPT, status updates and their acknowledgement order, reconciliation,
//! agent loss, framework failover, offers and rescinds. It does no I/O:
//! no clock (time comes in as [`Now`]), no channels, no async, no HTTP.
//!
//! Calls come in as typed inputs (methods). What the engine wants done
//! comes out two ways:
//! - [`Effect`]s, collected in order and taken with [`Engine::take_effects`]:
//!   a message to an agent's session, an event on a framework's stream,
//!   a session or stream to close, an allocation to run soon;
//! - a registry [`Command`] to commit, returned as a [`Planned`] together
//!   with what the engine needs to finish the call. The shell commits it
//!   through the replicator and hands the outcome back
//!   ([`Engine::committed`], then the call's own `*_committed` method).
//!
//! The shell (`crate::core`) serializes the calls, performs the effects and
//! renders views from one [`Snapshot`]. Files: `agents.rs` (registration,
//! heartbeats, liveness, loss), `frameworks.rs` (subscriptions, streams,
//! failover, teardown), `offers.rs` (allocation cycles, decline, rescind),
//! `accept.rs` (ACCEPT and its launches), `changes.rs` (its
//! reservations and volumes), `operations.rs` (operation feedback), `tasks.rs` (the task table, updates,
//! acknowledgements, kill, reconciliation), `loss.rs` (agent loss and
//! return, framework removal), `gone.rs` (MARK_AGENT_GONE),
//! `maintenance.rs` (schedules, machines down, DRAIN_AGENT,
//! DEACTIVATE/REACTIVATE_AGENT), `inverse.rs` (inverse offers), `counters.rs` (what the metrics count), `roles.rs` (weights, quota,
//! operator reservations), `volumes.rs` (operator volume calls), `views.rs` (the snapshot), `observe.rs` (changes
//! for the operator event stream).

mod accept;
mod agents;
mod changes;
mod counters;
mod executors;
mod frameworks;
mod gone;
mod inverse;
mod loss;
mod maintenance;
mod observe;
mod offers;
mod operations;
mod reconcile;
mod roles;
mod task_table;
mod tasks;
mod validation;
mod views;
mod volumes;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use keel_api::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo};
use keel_api::scheduler::Event;

use crate::allocator::Allocator;
use crate::registry::{Applied, Command, Registry, RegistryError};

pub use agents::{AgentUpdate, Registration, ReportedTask};
pub use counters::{Counters, Gauges, Sample};
pub use executors::{ExecutorRecord, ReportedExecutor};
pub use frameworks::{FrameworkView, Refusal};
pub use gone::{GONE_REASON, gone_message};
pub use inverse::{InverseAnswer, unavailability};
pub use maintenance::{DEFAULT_GRACE, down_message, drain_grace};
pub use observe::Observed;
pub use offers::{OfferView, offered_resources};
pub use operations::OperationView;
pub use tasks::{TaskRecord, TaskView};
pub use views::Snapshot;
pub use volumes::{VolumeChange, VolumeError};

/// The current time, as the shell read it: `instant` for timeouts,
/// `unix` (seconds) for what is recorded and reported.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub unix: f64,
}

impl Now {
    /// The clock, read once.
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        }
    }

    /// `d` later.
    pub fn after(self, d: Duration) -> Now {
        Now {
            instant: self.instant + d,
            unix: self.unix + d.as_secs_f64(),
        }
    }
}

/// What the engine needs from the master's configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub ip: IpAddr,
    pub port: u16,
    pub hostname: String,
    /// An agent that sends nothing for this long is marked unreachable.
    pub agent_timeout: Duration,
    /// How often master and agents heartbeat each other.
    pub heartbeat_interval: Duration,
    pub framework_heartbeat_interval: Duration,
    /// Offers outstanding longer than this are rescinded.
    pub offer_timeout: Option<Duration>,
    /// After a takeover, how long agents have to re-register.
    pub agent_reregister_timeout: Duration,
    /// The allocation policy (`drf`).
    pub allocator: String,
}

/// Tasks for an agent to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub framework_id: String,
    pub framework_info: Option<FrameworkInfo>,
    pub tasks: Vec<TaskInfo>,
    /// The task group's executor (LAUNCH_GROUP).
    pub executor: Option<ExecutorInfo>,
}

/// A message for an agent's session.
#[derive(Debug, Clone, PartialEq)]
pub enum ToAgent {
    Launch(Box<Launch>),
    Kill {
        framework_id: String,
        task_id: String,
        grace_period_ms: Option<u64>,
    },
    Acknowledge {
        framework_id: String,
        task_id: String,
        uuid: Vec<u8>,
    },
    ShutdownFramework {
        framework_id: String,
    },
    /// Delete these persistent volumes' data, as (role, id).
    DestroyVolumes {
        volumes: Vec<(String, String)>,
    },
    /// A scheduler's data for one of its executors.
    FrameworkMessage {
        framework_id: String,
        executor_id: String,
        data: Vec<u8>,
    },
    /// A scheduler's SHUTDOWN of one of its custom executors.
    ShutdownExecutor {
        framework_id: String,
        executor_id: String,
    },
    Heartbeat {
        seq: u64,
        sent_unix_ms: u64,
    },
    /// The session is refused from now on (the agent was marked gone);
    /// the reason is said to the agent before its session is closed.
    Refuse {
        reason: String,
    },
}

/// Something for the shell to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send on the agent's session `session`. If it cannot be sent, tell
    /// the engine ([`Engine::agent_send_failed`]).
    ToAgent {
        agent_id: String,
        session: u64,
        message: ToAgent,
    },
    /// End the agent's session `session` (replaced, or the agent was
    /// marked unreachable).
    CloseAgentSession { agent_id: String, session: u64 },
    /// Send on the framework's stream `stream`. If it cannot be sent (full
    /// or gone), tell the engine ([`Engine::stream_closed`]).
    ToFramework {
        framework_id: String,
        stream: String,
        event: Event,
    },
    /// End the framework's stream `stream` (after any events before this).
    CloseStream {
        framework_id: String,
        stream: String,
    },
    /// Resources were freed or added: run an allocation cycle soon.
    AllocateSoon,
    /// A change for the operator event stream (only while observed).
    Observed(Observed),
}

/// A registry command to commit before the call can finish, and what the
/// engine needs to finish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned<T> {
    pub command: Command,
    pub then: T,
}

/// Why the engine refused something or could not finish it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("unknown allocator {0:?} (available: drf)")]
    UnknownAllocator(String),
    #[error(transparent)]
    Allocator(#[from] crate::allocator::AllocatorError),
    /// The replicator reported an outcome that does not belong to the
    /// command (a bug, reported instead of panicking).
    #[error("committing {command} applied as {applied:?}")]
    Unexpected {
        command: &'static str,
        applied: Box<Applied>,
    },
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    /// Another session of this agent id is alive: the agent must wait
    /// until it ends (or times out) instead of taking it over.
    #[error("agent {0} already has a live session; retry once it has ended")]
    SessionLive(String),
}

/// A refusal whose reason goes to the framework as it is (TASK_ERROR,
/// OPERATION_ERROR messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(reason: String) -> Self {
        Invalid(reason)
    }
}

impl From<&str> for Invalid {
    fn from(reason: &str) -> Self {
        Invalid(reason.to_string())
    }
}

pub(crate) fn unexpected(command: &'static str, applied: &Applied) -> EngineError {
    EngineError::Unexpected {
        command,
        applied: Box::new(applied.clone()),
    }
}

/// The master's runtime state and its Mesos logic.
pub struct Engine {
    cfg: EngineConfig,
    registry: Registry,
    allocator: Box<dyn Allocator>,
    agents: agents::Agents,
    frameworks: HashMap<String, frameworks::FrameworkRuntime>,
    /// Reconciliation answers waiting for room on their streams.
    reconciling: reconcile::Backlog,
    offers: offers::OfferBook,
    inverse: inverse::InverseBook,
    tasks: tasks::TaskTable,
    /// Executors on agents and what they hold (`executors.rs`).
    executors: executors::ExecutorTable,
    operations: operations::OperationLog,
    metering: counters::Metering,
    /// When this master took over as leader (unix seconds).
    elected_time: Option<f64>,
    /// Whether operator subscribers listen ([`Engine::set_observed`]).
    observed: bool,
    out: Vec<Effect>,
}

impl Engine {
    /// An engine over `registry`, not leading yet.
    pub fn new(cfg: EngineConfig, registry: Registry) -> Result<Engine, EngineError> {
        let allocator = crate::allocator::create(&cfg.allocator)
            .ok_or_else(|| EngineError::UnknownAllocator(cfg.allocator.clone()))?;
        Ok(Engine {
            cfg,
            registry,
            allocator,
            agents: agents::Agents::default(),
            frameworks: HashMap::new(),
            reconciling: Default::default(),
            offers: offers::OfferBook::default(),
            inverse: inverse::InverseBook::default(),
            tasks: tasks::TaskTable::default(),
            executors: Default::default(),
            operations: operations::OperationLog::default(),
            metering: counters::Metering::default(),
            elected_time: None,
            observed: false,
            out: Vec::new(),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The engine's copy of the committed registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The effects decided since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    fn allocate_soon(&mut self) {
        if !self.out.contains(&Effect::AllocateSoon) {
            self.out.push(Effect::AllocateSoon);
        }
    }

    /// A command was committed with `applied` as its outcome: the engine's
    /// copy applies it too. `false` when the copy disagrees (it must then
    /// be replaced with [`Engine::replace_registry`]).
    pub fn committed(&mut self, command: &Command, applied: &Applied) -> bool {
        match self.registry.apply(command) {
            Ok(mine) if &mine == applied => true,
            other => {
                tracing::error!(?other, ?applied, "registry copy diverged");
                false
            }
        }
    }

    /// Replaces the registry copy (after a divergence).
    pub fn replace_registry(&mut self, registry: Registry) {
        self.registry = registry;
    }

    /// Validates `command` against the registry copy (before committing).
    fn plan<T>(&self, command: Command, then: T) -> Result<Planned<T>, EngineError> {
        self.registry.validate(&command)?;
        Ok(Planned { command, then })
    }

    /// Takes over as leader with the committed `registry`: runtime state
    /// starts empty; agents get `agent_reregister_timeout` to come back.
    /// Returns the commands to commit next, in order: a bootstrap (a new
    /// cluster: `master_id` is used) and the disconnection of every agent
    /// that was active under the old leader.
    pub fn take_over(&mut self, registry: Registry, master_id: &str, now: Now) -> Vec<Command> {
        self.reset();
        self.registry = registry;
        let grace = now.instant
            + self
                .cfg
                .agent_reregister_timeout
                .saturating_sub(self.cfg.agent_timeout);
        self.agents.expect_all(&self.registry, grace);
        let mut commands = Vec::new();
        if self.registry.master_id().is_none() {
            commands.push(Command::Bootstrap {
                master_id: master_id.to_string(),
            });
        }
        let stale: Vec<String> = self
            .registry
            .agents()
            .filter(|a| a.state == crate::registry::AgentState::Active)
            .map(|a| a.id.clone())
            .collect();
        if !stale.is_empty() {
            commands.push(Command::DisconnectAgents {
                agent_ids: stale,
                at: now.unix,
            });
        }
        commands
    }

    /// The takeover's commands are committed: frameworks come back as
    /// disconnected with their failover timeouts, roles go into the
    /// allocator, and the master leads from `now`.
    pub fn lead(&mut self, now: Now) {
        roles::load_into_allocator(self);
        frameworks::recover(self, now);
        self.elected_time = Some(now.unix);
        tracing::info!(
            master_id = self.registry.master_id().unwrap_or_default(),
            agents = self.registry.agents().count(),
            frameworks = self.registry.frameworks().count(),
            "leading: registry recovered"
        );
        self.allocate_soon();
    }

    /// No longer leading: every session and stream ends, runtime state is
    /// dropped (the registry copy is kept).
    pub fn step_down(&mut self) {
        for (agent_id, session) in self.agents.sessions() {
            self.out
                .push(Effect::CloseAgentSession { agent_id, session });
        }
        for (framework_id, fw) in &self.frameworks {
            if let Some(stream) = &fw.stream {
                self.out.push(Effect::CloseStream {
                    framework_id: framework_id.clone(),
                    stream: stream.clone(),
                });
            }
        }
        self.reset();
    }

    fn reset(&mut self) {
        if let Some(a) = crate::allocator::create(&self.cfg.allocator) {
            self.allocator = a;
        }
        self.agents = agents::Agents::default();
        self.frameworks.clear();
        self.offers = offers::OfferBook::default();
        self.inverse = inverse::InverseBook::default();
        self.tasks = tasks::TaskTable::default();
        self.operations = operations::OperationLog::default();
        self.metering.reset();
        self.elected_time = None;
    }

    /// When this master took over (unix seconds), while it leads.
    pub fn elected_time(&self) -> Option<f64> {
        self.elected_time
    }
}
