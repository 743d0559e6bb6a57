//! One framework's I/O: subscribe (again, with its id, after the stream
//! ends: a leader failover), take offers, launch what the [`Book`] plans,
//! acknowledge every update (on a side task, so the event loop never waits
//! for the acknowledgements), and reconcile tasks it has not heard about.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_api::mesos::Filters;
use keel_api::mesos::{Capability, FrameworkInfo};
use keel_client::Client;
use keel_client::scheduler::compose::framework_info;
use keel_client::scheduler::{
    Accept, Acknowledge, Call, Decline, Event, Operation, Subscribe, Subscription,
};
use tokio::sync::mpsc;

use crate::book::Book;
use crate::{LoadError, Progress};

/// Calls (launches, declines, acknowledgements) in flight per framework.
const CALLS_IN_FLIGHT: usize = 32;
/// Unused offers are declined for this long when nothing is queued.
const IDLE_REFUSE: f64 = 5.0;
/// Tasks not heard about for this long are reconciled.
const QUIET: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_secs(2);

pub struct Framework {
    pub name: String,
    pub role: String,
    pub framework_id: Option<String>,
    pub book: Book,
}

impl Framework {
    fn info(&self) -> FrameworkInfo {
        let mut info = framework_info("root", &self.name);
        info.roles = vec![self.role.clone()];
        info.failover_timeout = Some(3600.0);
        info.capabilities = ["MULTI_ROLE", "GPU_RESOURCES"]
            .iter()
            .map(|k| Capability {
                kind: k.to_string(),
            })
            .collect();
        info.id = self.framework_id.clone().map(keel_api::mesos::Id::new);
        info
    }

    /// Runs until every task has ended (then tears the framework down) or
    /// `deadline`.
    pub async fn run(
        &mut self,
        client: &Client,
        progress: &Arc<Progress>,
        per_offer: usize,
        deadline: Instant,
    ) -> Result<(), LoadError> {
        let mut sub = self.subscribe(client, deadline).await?;
        loop {
            if self.book.done() {
                let _ = sub.teardown().await;
                return Ok(());
            }
            match self.serve(&mut sub, progress, per_offer, deadline).await {
                Ok(()) => continue,
                Err(LoadError::StreamEnded) => {
                    tracing::info!(framework = %self.name, "stream ended: subscribing again");
                    sub = self.subscribe(client, deadline).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn subscribe(
        &mut self,
        client: &Client,
        deadline: Instant,
    ) -> Result<Subscription, LoadError> {
        let mut delay = Duration::from_millis(200);
        loop {
            match client.subscribe(Subscribe::new(self.info())).await {
                Ok(sub) => {
                    let id = sub.framework_id().value.clone();
                    let again = self.framework_id.replace(id).is_some();
                    if again {
                        // No call of the last session is in flight any more.
                        self.book.answer_all(Instant::now());
                        // Whatever happened meanwhile: ask about every task.
                        let all = self.book.to_reconcile(Instant::now(), Duration::ZERO);
                        if !all.is_empty() {
                            let _ = sub.reconcile(all).await;
                        }
                    }
                    return Ok(sub);
                }
                Err(e) if Instant::now() + delay < deadline => {
                    tracing::info!(framework = %self.name, error = %e, "subscribe failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Serves one subscription until every task ended (`Ok`), the stream
    /// ends, or an error.
    async fn serve(
        &mut self,
        sub: &mut Subscription,
        progress: &Arc<Progress>,
        per_offer: usize,
        deadline: Instant,
    ) -> Result<(), LoadError> {
        // Calls go out from a side task, many at once: the event loop
        // never waits for the master's answers.
        let (calls, call_rx) = mpsc::unbounded_channel::<(Call, Vec<String>)>();
        // The task ids of each ACCEPT that was answered (or failed).
        let (answered_tx, mut answered) = mpsc::unbounded_channel::<Vec<String>>();
        let caller = sub.caller();
        let name = self.name.clone();
        let acker = tokio::spawn(async move {
            stream_of(call_rx)
                .for_each_concurrent(CALLS_IN_FLIGHT, |(call, launched)| {
                    let (caller, name, answered) = (caller.clone(), &name, answered_tx.clone());
                    async move {
                        // A launch lost with a failing leader is reconciled later.
                        if let Err(e) = caller.call(&call).await {
                            tracing::debug!(framework = %name, error = %e, "{} failed", call.kind());
                        }
                        if !launched.is_empty() {
                            let _ = answered.send(launched);
                        }
                    }
                })
                .await
        });
        let mut acker = AbortOnDrop(acker);
        let mut tick = tokio::time::interval(TICK);
        loop {
            if self.book.done() {
                // The last acknowledgements go out before the teardown.
                drop(calls);
                let _ = tokio::time::timeout(Duration::from_secs(30), &mut acker.0).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LoadError::Deadline {
                    framework: self.name.clone(),
                    finished: self.book.finals(),
                    total: self.book.slots.len(),
                });
            }
            let event = tokio::select! {
                e = sub.next() => e,
                Some(ids) = answered.recv() => {
                    self.book.answered(&ids, Instant::now());
                    continue;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let quiet = self.book.to_reconcile(now, QUIET);
                    if !quiet.is_empty() {
                        let _ = sub.reconcile(quiet).await;
                    }
                    continue;
                }
            };
            let event = match event {
                None | Some(Err(_)) => return Err(LoadError::StreamEnded),
                Some(Ok(e)) => e,
            };
            match event {
                Event::Offers(offers) => {
                    for offer in offers {
                        let tasks = self.book.plan(&offer, Instant::now(), per_offer);
                        let ids = tasks.iter().map(|t| t.task_id.value.clone()).collect();
                        let call = if tasks.is_empty() {
                            let refuse = if self.book.queued() == 0 {
                                IDLE_REFUSE
                            } else {
                                0.0
                            };
                            Call::Decline(Decline {
                                offer_ids: vec![offer.id.clone()],
                                filters: Some(Filters {
                                    refuse_seconds: Some(refuse),
                                }),
                            })
                        } else {
                            progress
                                .launched
                                .fetch_add(tasks.len() as u64, Ordering::Relaxed);
                            Call::Accept(Accept {
                                offer_ids: vec![offer.id.clone()],
                                operations: vec![Operation::launch(tasks)],
                                filters: Some(Filters {
                                    refuse_seconds: Some(0.0),
                                }),
                            })
                        };
                        let _ = calls.send((call, ids));
                    }
                }
                Event::Update(status) => {
                    let (finals, running) = (self.book.finals(), self.book.running());
                    self.book.update(&status, Instant::now());
                    let ran = self.book.running() - running;
                    progress.running.fetch_add(ran as u64, Ordering::Relaxed);
                    let ended = self.book.finals() - finals;
                    progress.ended.fetch_add(ended as u64, Ordering::Relaxed);
                    if let Some(ack) = Acknowledge::of(&status) {
                        let _ = calls.send((Call::Acknowledge(ack), Vec::new()));
                    }
                }
                Event::Error(message) => return Err(LoadError::Removed(message)),
                _ => {}
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn stream_of<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
