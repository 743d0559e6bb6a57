//! Group commit: proposals that arrive while one entry is being committed
//! travel together in the next one.
//!
//! openraft 0.9 appends each client entry on its own inside its core task,
//! so every entry costs a round trip to a follower and its fsync (the
//! leader's own fsync runs beside it: see [`super::log_writer`]), one entry
//! after the other. One task here sends one [`Batch`] at a time: a lone
//! proposal goes out at once, and under load each entry carries everything
//! that queued up meanwhile (up to [`MAX_BATCH`] commands).

use std::time::Duration;

use openraft::Raft;
use openraft::error::{ClientWriteError, RaftError as OrError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::types::{ApplyResponse, Batch, NodeId, TypeConfig, addr_of};
use crate::registry::{Applied, Command, RegistryError};

/// Commands per entry, at most. Keeps entries, and the AppendEntries calls
/// carrying up to `max_payload_entries` of them, well below the message
/// size limit even with large agent inventories.
pub const MAX_BATCH: usize = 64;
/// Proposals waiting beyond this make `propose` wait for room.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("this master is not the leader (leader: {})", leader_text(.leader))]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("not committed within {0:?}; the command may still commit later")]
    Timeout(Duration),
    #[error("raft stopped: {0}")]
    Stopped(String),
    /// This master's log cannot be written now (a full disk); writes
    /// resume by themselves once it can.
    #[error("{0}")]
    Store(String),
}

fn leader_text(leader: &Option<(NodeId, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("node {id} at {addr}"),
        None => "unknown".into(),
    }
}

pub type Outcome = Result<Result<Applied, RegistryError>, ProposeError>;
type Proposal = (Command, oneshot::Sender<Outcome>);

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Starts the task; `timeout` bounds each entry's commit.
    pub fn spawn(raft: Raft<TypeConfig>, timeout: Duration) -> (Proposer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Proposer { tx }, tokio::spawn(run(raft, rx, timeout)))
    }

    /// Queues `cmd` and waits for its outcome, `timeout` at most.
    pub async fn propose(&self, cmd: Command, timeout: Duration) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let stopped = || ProposeError::Stopped("the proposer has stopped".into());
        let wait = async {
            self.tx.send((cmd, tx)).await.map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())?
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ProposeError::Timeout(timeout)))
    }
}

async fn run(raft: Raft<TypeConfig>, mut rx: mpsc::Receiver<Proposal>, timeout: Duration) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
        let outcomes = commit(&raft, commands, replies.len(), timeout).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Commits one batch; one outcome per command.
async fn commit(
    raft: &Raft<TypeConfig>,
    commands: Vec<Command>,
    n: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    let all = |e: ProposeError| vec![Err(e); n];
    match tokio::time::timeout(timeout, raft.client_write(Batch(commands))).await {
        Err(_) => all(ProposeError::Timeout(timeout)),
        Ok(Ok(resp)) => match resp.data {
            ApplyResponse::Commands(results) if results.len() == n => {
                results.into_iter().map(Ok).collect()
            }
            other => all(ProposeError::Stopped(format!(
                "{n} commands got the response {other:?}"
            ))),
        },
        Ok(Err(OrError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            all(ProposeError::NotLeader {
                leader: f
                    .leader_id
                    .map(|id| (id, addr_of(raft, id).unwrap_or_default())),
            })
        }
        Ok(Err(OrError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            all(ProposeError::Stopped(e.to_string()))
        }
        Ok(Err(OrError::Fatal(f))) => all(ProposeError::Stopped(f.to_string())),
    }
}
