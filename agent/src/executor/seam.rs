//! Where a task runtime plugs into the session ([`crate::session`]): the
//! master's task calls go in, status updates come out on a sink while a
//! stream is up, and a registration reports every task the runtime knows.
//!
//! Two runtimes implement it: the real one ([`super::ExecutorHandle`]:
//! sandboxes, processes, checkpoints) and the simulator's
//! ([`crate::sim::executor::SimExecutor`]: tasks that only "run" for a
//! while). Everything on the session's side of this trait is shared.

use std::future::Future;

use keel_api::pb;
use tokio::sync::mpsc;

use super::call::ExecutorCall;

/// What the session needs from a task runtime.
pub trait TaskExecutor: Send + Sync + 'static {
    /// A call from the master (launch, kill, acknowledge, ...).
    fn call(&self, call: ExecutorCall);

    /// A stream to the master is up: updates go to `sink` from now on, and
    /// every task's outstanding update is sent again at once.
    fn attach(&self, agent_id: &str, sink: mpsc::UnboundedSender<pb::StatusUpdate>);

    /// The stream is down: updates stay queued until the next `attach`.
    fn detach(&self);

    /// Every task the agent knows (running, or not yet acknowledged as
    /// terminal), for `Register.tasks`.
    fn reports(&self) -> impl Future<Output = Vec<pb::TaskReport>> + Send;

    /// Executors' messages and exits go to `sink` while a stream is up
    /// (a runtime without custom executors sends none).
    fn attach_upstream(&self, _sink: mpsc::UnboundedSender<pb::agent_message::Msg>) {}

    /// The executors running, for `Register.executors`.
    fn executors(&self) -> impl Future<Output = Vec<pb::ExecutorReport>> + Send {
        async { Vec::new() }
    }
}

impl TaskExecutor for super::ExecutorHandle {
    fn call(&self, call: ExecutorCall) {
        super::ExecutorHandle::call(self, call)
    }

    fn attach(&self, agent_id: &str, sink: mpsc::UnboundedSender<pb::StatusUpdate>) {
        super::ExecutorHandle::attach(self, agent_id, sink)
    }

    fn detach(&self) {
        super::ExecutorHandle::detach(self)
    }

    fn reports(&self) -> impl Future<Output = Vec<pb::TaskReport>> + Send {
        super::ExecutorHandle::reports(self)
    }

    fn attach_upstream(&self, sink: mpsc::UnboundedSender<pb::agent_message::Msg>) {
        super::ExecutorHandle::attach_upstream(self, sink)
    }

    fn executors(&self) -> impl Future<Output = Vec<pb::ExecutorReport>> + Send {
        super::ExecutorHandle::executor_reports(self)
    }
}
