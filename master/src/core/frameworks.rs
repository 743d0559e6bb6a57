//! The scheduler API as the shell carries it: SUBSCRIBE on a
//! [`FrameworkConnection`], then every other call through [`Master::call`],
//! whichever way the framework reaches the master (HTTP or in-process).

use keel_api::scheduler::{CallKind, Event, Subscribe};

use super::links::FrameworkConnection;
use super::{Master, MasterError};
use crate::engine::{EngineError, Invalid, Refusal};
use crate::registry::RegistryError;

/// A call the master took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallReply {
    /// Taken; its effects follow as events (HTTP 202).
    Accepted,
    /// Done (UPDATE_FRAMEWORK; HTTP 200).
    Done,
}

/// A call the master did not take.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Mesos' refusal (403 for a framework that is not subscribed, 400
    /// otherwise).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Valid, but it could not be recorded (503 when the master does not
    /// lead any more or its store failed).
    #[error(transparent)]
    Failed(#[from] MasterError),
}

impl Master {
    /// SUBSCRIBE: `conn` carries the framework's events on stream `stream`
    /// from now on, the first being SUBSCRIBED; returns the framework id.
    /// A refused subscription gets a single ERROR, after which `conn` is
    /// dropped (`None`).
    pub async fn subscribe(
        &self,
        framework_id: Option<String>,
        sub: Subscribe,
        stream: String,
        conn: Box<dyn FrameworkConnection>,
    ) -> Option<String> {
        let refuse = |conn: Box<dyn FrameworkConnection>, message: String| {
            tracing::info!(%message, "subscription refused");
            let _ = conn.send(&Event::Error(message));
            None
        };
        let w = self.write().await;
        let planned = match self.with(|e, now| e.subscribe(framework_id, sub, stream.clone(), now))
        {
            Ok(p) => p,
            Err(r) => return refuse(conn, r.to_string()),
        };
        let applied = match self.commit(&w, planned.command).await {
            Ok(a) => a,
            Err(MasterError::Engine(EngineError::Registry(RegistryError::FrameworkRemoved(
                id,
            )))) => {
                return refuse(conn, format!("Framework {id} has been removed"));
            }
            Err(e) => return refuse(conn, format!("Cannot subscribe: {e}")),
        };
        let subscribed = self.with_links(|state, now| {
            state.links.add_stream(&stream, conn);
            state.engine.subscribed(planned.then, &applied, now)
        });
        match subscribed {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "subscription recorded but not taken");
                None
            }
        }
    }

    /// The reader of the framework's stream `stream` went away (the HTTP
    /// client disconnected, the in-process framework was dropped).
    pub fn stream_gone(&self, framework_id: &str, stream: &str) {
        self.with_links(|state, now| {
            state.links.remove_stream(stream);
            state.engine.stream_closed(framework_id, stream, now)
        });
    }

    /// Every call but SUBSCRIBE, after Mesos' stream checks.
    pub async fn call(
        &self,
        framework_id: &str,
        stream: Option<&str>,
        kind: CallKind,
    ) -> Result<CallReply, CallError> {
        if !self.serving() {
            return Err(CallError::Failed(MasterError::Propose(
                super::replicate::ProposeError::NotLeader { leader: None },
            )));
        }
        self.with(|e, _| e.check_stream(framework_id, stream))?;
        let fid = framework_id;
        match kind {
            CallKind::Subscribe(_) => {
                return Err(Refusal::Invalid("SUBSCRIBE must open its own stream".into()).into());
            }
            CallKind::Teardown => self.remove_framework(fid).await?,
            CallKind::Accept {
                offer_ids,
                operations,
                filters,
            } => self.accept(fid, &offer_ids, operations, filters).await,
            CallKind::Decline { offer_ids, filters } => {
                self.with(|e, now| e.decline(fid, &offer_ids, filters, now))
            }
            CallKind::Revive { roles } => self.with(|e, _| e.suppress(fid, &roles, true)),
            CallKind::Suppress { roles } => self.with(|e, _| e.suppress(fid, &roles, false)),
            CallKind::Kill(k) => {
                self.with(|e, now| e.kill(fid, &k.task_id.value, k.kill_policy, now))
            }
            CallKind::Shutdown { executor_id, .. } => {
                self.with(|e, now| e.shutdown_executor(fid, &executor_id, now))
            }
            CallKind::Acknowledge {
                agent_id,
                task_id,
                uuid,
            } => self.with(|e, _| e.acknowledge(fid, &agent_id, &task_id, uuid)),
            CallKind::Reconcile { tasks } => self.with(|e, now| e.reconcile(fid, &tasks, now)),
            CallKind::AcknowledgeOperationStatus {
                operation_id, uuid, ..
            } => self.with(|e, _| e.acknowledge_operation(fid, &operation_id, &uuid)),
            CallKind::ReconcileOperations { operation_ids } => {
                self.with(|e, _| e.reconcile_operations(fid, &operation_ids))
            }
            CallKind::Message {
                agent_id,
                executor_id,
                data,
            } => self.with(|e, _| e.framework_message(fid, &agent_id, &executor_id, data)),
            CallKind::Request => {}
            CallKind::InverseOffers {
                accept,
                inverse_offer_ids,
                filters,
            } => self.with(|e, now| {
                e.answer_inverse_offers(fid, &inverse_offer_ids, accept, filters, now)
            }),
            CallKind::NoOp { kind } => {
                tracing::debug!(%fid, %kind, "call accepted with nothing to do")
            }
            CallKind::UpdateFramework(sub) => {
                let w = self.write().await;
                let planned = self.with(|e, _| e.update_framework(fid, sub))?;
                self.commit(&w, planned.command).await?;
                self.with(|e, _| e.framework_updated(planned.then))?;
                return Ok(CallReply::Done);
            }
        }
        Ok(CallReply::Accepted)
    }

    /// ACCEPT: registry changes inside one ACCEPT are committed in order,
    /// and nothing else writes in between.
    async fn accept(
        &self,
        framework_id: &str,
        offer_ids: &[String],
        operations: Vec<keel_api::scheduler::Operation>,
        filters: keel_api::mesos::Filters,
    ) {
        let w = self.write().await;
        let Some(mut run) =
            self.with(|e, now| e.accept_begin(framework_id, offer_ids, operations, filters, now))
        else {
            return;
        };
        while let Some(command) = self.with(|e, now| e.accept_next(&mut run, now)) {
            let outcome = self
                .commit(&w, command)
                .await
                .map(|_| ())
                .map_err(|e| Invalid(e.to_string()));
            self.with(|e, _| e.accept_committed(&mut run, outcome));
        }
        self.with(|e, now| e.accept_end(run, now));
    }

    /// TEARDOWN (scheduler or operator) or an expired failover timeout:
    /// recorded first, then the framework's tasks are killed and its
    /// stream ends.
    pub async fn remove_framework(&self, framework_id: &str) -> Result<(), CallError> {
        let w = self.write().await;
        let planned = self.with(|e, now| e.remove_framework(framework_id, now))?;
        self.commit(&w, planned.command).await?;
        self.with(|e, now| e.framework_removed(framework_id, now));
        Ok(())
    }
}
