//! The soak's framework, on keel-client's scheduler API: it takes offers
//! and launches small `sleep` tasks (0.1 cpus, 32 MiB, 0.5-3 s) as fast as
//! offers come, up to a cap of live tasks; acknowledges every update; after
//! its stream ends (a leader killed) re-subscribes with its id, the client
//! finding the new leader, and reconciles. It records every task's ACCEPT
//! and each status it saw, for the checks in `report.rs`.
//!
//! Reconciliation: implicit right after each (re)subscription; explicit for
//! tasks still not terminal 20 s after their ACCEPT (the longest runs 3 s),
//! but not within 10 s of a subscription, while agents re-register with a
//! new leader. When the load stops it keeps going until every task it
//! launched is terminal (or the drain time is up).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_api::mesos::{Id, TaskState, TaskStatus};
use keel_api::operator::Offer;
use keel_api::resources::v1::{Resource, Scalar};
use keel_client::scheduler::compose::{framework_info, shell, task_info};
use keel_client::scheduler::{Event, ReconcileTask, Subscribe};
use keel_client::{Client, ClientError, Subscription};
use tokio::sync::watch;

use super::{Progress, Rng, log};

const CPUS: f64 = 0.1;
const MEM: f64 = 32.0;
/// Tasks not terminal this long after their ACCEPT are reconciled.
const STUCK: Duration = Duration::from_secs(20);
/// No explicit reconciliation this soon after a subscription.
const SUBSCRIBE_GRACE: Duration = Duration::from_secs(10);
/// A task counts against the cap of live tasks for at most this long.
const LIVE_AT_MOST: Duration = Duration::from_secs(60);

/// How the ACCEPT that launched a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// 202.
    Confirmed,
    /// No definite answer: the task may or may not have been launched.
    Unconfirmed(String),
    /// Refused (4xx): the task was never launched.
    Refused(String),
}

/// A status the framework received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub state: TaskState,
    pub agent: Option<String>,
    pub reason: Option<String>,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub agent: String,
    pub accepted: Instant,
    pub accept: Accept,
    pub seen: Vec<Seen>,
}

impl Task {
    pub fn terminal(&self) -> bool {
        self.seen.iter().any(|s| s.state.is_terminal())
    }

    /// ACCEPT -> the first TASK_RUNNING.
    pub fn running_after(&self) -> Option<Duration> {
        self.seen
            .iter()
            .find(|s| s.state == TaskState::TASK_RUNNING)
            .map(|s| s.at.saturating_duration_since(self.accepted))
    }
}

/// What the framework did and saw.
#[derive(Debug, Default)]
pub struct Report {
    pub framework_id: Option<String>,
    pub tasks: BTreeMap<String, Task>,
    /// Statuses of task ids it never launched.
    pub strangers: Vec<(String, TaskState)>,
    /// When each subscription began (the first, then each re-subscription).
    pub subscriptions: Vec<Instant>,
    /// Calls that failed, by call.
    pub call_errors: BTreeMap<&'static str, usize>,
    /// Whether every task was terminal when it stopped.
    pub drained: bool,
    pub drain_took: Option<Duration>,
}

impl Report {
    fn live(&self, now: Instant) -> usize {
        self.tasks
            .values()
            .filter(|t| {
                !matches!(t.accept, Accept::Refused(_))
                    && !t.terminal()
                    && now.duration_since(t.accepted) < LIVE_AT_MOST
            })
            .count()
    }

    fn all_terminal(&self) -> bool {
        self.tasks
            .values()
            .all(|t| matches!(t.accept, Accept::Refused(_)) || t.terminal())
    }

    fn failed(&mut self, call: &'static str) {
        *self.call_errors.entry(call).or_default() += 1;
    }
}

pub struct Config {
    pub list: String,
    pub max_tasks: usize,
    pub drain: Duration,
    pub progress: Arc<Progress>,
    pub t0: Instant,
}

/// Takes `amount` of scalar `name` out of `left` (entries keep their role
/// and allocation); `None` when there is not enough.
fn take(left: &mut [Resource], name: &str, amount: f64) -> Option<Vec<Resource>> {
    let have: f64 = left
        .iter()
        .filter(|r| r.name == name)
        .map(Resource::scalar_value)
        .sum();
    if have + 1e-9 < amount {
        return None;
    }
    let mut want = amount;
    let mut out = Vec::new();
    for r in left.iter_mut().filter(|r| r.name == name) {
        let part = r.scalar_value().min(want);
        if part <= 1e-9 {
            continue;
        }
        let mut piece = r.clone();
        piece.scalar = Some(Scalar {
            value: (part * 1000.0).round() / 1000.0,
        });
        r.scalar = Some(Scalar {
            value: ((r.scalar_value() - part) * 1000.0).round() / 1000.0,
        });
        out.push(piece);
        want -= part;
        if want <= 1e-9 {
            break;
        }
    }
    Some(out)
}

struct Framework {
    cfg: Config,
    report: Report,
    rng: Rng,
    next_task: u64,
    draining: Option<Instant>,
    last_reconcile: Option<Instant>,
}

async fn subscribe(client: &Client, id: Option<Id>) -> Result<Subscription, ClientError> {
    // Tasks run as the framework's user: whoever runs the soak.
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut info = framework_info(&user, "keel-soak");
    info.failover_timeout = Some(7.0 * 24.0 * 3600.0);
    info.id = id;
    match tokio::time::timeout(
        Duration::from_secs(10),
        client.subscribe(Subscribe::new(info)),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ClientError::Subscribe("no SUBSCRIBED within 10 s".into())),
    }
}

/// Runs the framework until `stop`, then drains; its report.
pub async fn run(cfg: Config, mut stop: watch::Receiver<bool>) -> Report {
    let client = match Client::builder(&cfg.list)
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log(cfg.t0, &format!("framework: no client: {e}"));
            return Report::default();
        }
    };
    let mut fw = Framework {
        cfg,
        report: Report::default(),
        rng: Rng::seeded(),
        next_task: 0,
        draining: None,
        last_reconcile: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last: Option<Subscription> = None;
    'subscribe: loop {
        let mut failing_since = None;
        let sub = loop {
            if fw.drain_over() {
                break 'subscribe;
            }
            let id = fw.report.framework_id.as_deref().map(Id::new);
            match subscribe(&client, id).await {
                Ok(s) => break s,
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        log(
                            fw.cfg.t0,
                            &format!("framework: cannot subscribe for 30 s: {e}"),
                        );
                        failing_since = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        let mut sub = sub;
        let first = fw.report.framework_id.is_none();
        fw.report.framework_id = Some(sub.framework_id().value.clone());
        fw.report.subscriptions.push(Instant::now());
        if !first {
            log(
                fw.cfg.t0,
                &format!("framework: re-subscribed on {}", sub.master()),
            );
        }
        if sub.reconcile(vec![]).await.is_err() {
            fw.report.failed("RECONCILE");
        }
        let heartbeat = sub.subscribed().heartbeat_interval_seconds.unwrap_or(15.0);
        let silence = Duration::from_secs_f64(heartbeat * 3.0);
        loop {
            if fw.drain_over() {
                last = Some(sub);
                break 'subscribe;
            }
            tokio::select! {
                event = tokio::time::timeout(silence, sub.next()) => match event {
                    Ok(Some(Ok(event))) => {
                        if !fw.handle(&sub, event).await {
                            continue 'subscribe;
                        }
                    }
                    Ok(Some(Err(_)) | None) => continue 'subscribe,
                    Err(_) => {
                        log(fw.cfg.t0, &format!("framework: no event for {silence:?}; re-subscribing"));
                        continue 'subscribe;
                    }
                },
                _ = tick.tick() => fw.reconcile_stuck(&sub).await,
                _ = stop.changed(), if fw.draining.is_none() => {
                    fw.draining = Some(Instant::now());
                }
            }
        }
    }
    if let Some(since) = fw.draining {
        fw.report.drain_took = Some(since.elapsed());
    }
    fw.report.drained = fw.report.all_terminal();
    if let Some(sub) = last
        && sub.teardown().await.is_err()
    {
        fw.report.failed("TEARDOWN");
    }
    fw.report
}

impl Framework {
    /// Whether the drain is done: every task terminal, or time is up.
    fn drain_over(&self) -> bool {
        self.draining
            .is_some_and(|t| self.report.all_terminal() || t.elapsed() > self.cfg.drain)
    }

    /// Handles one event; false when the subscription is over.
    async fn handle(&mut self, sub: &Subscription, event: Event) -> bool {
        match event {
            Event::Offers(offers) => {
                for offer in offers {
                    self.offer(sub, offer).await;
                }
            }
            Event::Update(status) => self.update(sub, status).await,
            Event::Error(message) => {
                log(self.cfg.t0, &format!("framework: ERROR event: {message}"));
                return false;
            }
            _ => {}
        }
        true
    }

    async fn offer(&mut self, sub: &Subscription, offer: Offer) {
        let now = Instant::now();
        let room = if self.draining.is_some() {
            0
        } else {
            self.cfg.max_tasks.saturating_sub(self.report.live(now))
        };
        let mut left = offer.resources.clone();
        let mut tasks = Vec::new();
        while tasks.len() < room {
            let (Some(cpus), Some(mem)) =
                (take(&mut left, "cpus", CPUS), take(&mut left, "mem", MEM))
            else {
                break;
            };
            self.next_task += 1;
            let id = format!("soak-{}", self.next_task);
            let secs = 0.5 + self.rng.below(26) as f64 / 10.0;
            let mut resources = cpus;
            resources.extend(mem);
            tasks.push(task_info(
                &id,
                &offer.agent_id,
                resources,
                shell(&format!("sleep {secs:.1}")),
            ));
        }
        if tasks.is_empty() {
            let refuse = if self.draining.is_some() { 60.0 } else { 1.0 };
            if sub
                .decline(vec![offer.id.clone()], Some(refuse))
                .await
                .is_err()
            {
                self.report.failed("DECLINE");
            }
            return;
        }
        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let accepted = Instant::now();
        let result = sub.launch(&offer, tasks, Some(0.2)).await;
        let accept = match &result {
            Ok(()) => Accept::Confirmed,
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                Accept::Refused(e.to_string())
            }
            Err(e) => Accept::Unconfirmed(e.to_string()),
        };
        if result.is_err() {
            self.report.failed("ACCEPT");
        }
        self.cfg
            .progress
            .launched
            .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for id in ids {
            self.report.tasks.insert(
                id,
                Task {
                    agent: offer.agent_id.value.clone(),
                    accepted,
                    accept: accept.clone(),
                    seen: Vec::new(),
                },
            );
        }
    }

    async fn update(&mut self, sub: &Subscription, status: TaskStatus) {
        let seen = Seen {
            state: status.state,
            agent: status.agent_id.as_ref().map(|a| a.value.clone()),
            reason: status.reason.clone(),
            at: Instant::now(),
        };
        match self.report.tasks.get_mut(&status.task_id.value) {
            Some(task) => {
                let was_terminal = task.terminal();
                task.seen.push(seen);
                if !was_terminal && task.terminal() {
                    self.cfg
                        .progress
                        .terminal
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            None => self
                .report
                .strangers
                .push((status.task_id.value.clone(), status.state)),
        }
        if sub.acknowledge(&status).await.is_err() {
            self.report.failed("ACKNOWLEDGE");
        }
    }

    /// Explicit reconciliation of tasks stuck past [`STUCK`].
    async fn reconcile_stuck(&mut self, sub: &Subscription) {
        let now = Instant::now();
        let settled = self
            .report
            .subscriptions
            .last()
            .is_some_and(|t| now.duration_since(*t) >= SUBSCRIBE_GRACE);
        let recently = self
            .last_reconcile
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5));
        if !settled || recently {
            return;
        }
        let stuck: Vec<ReconcileTask> = self
            .report
            .tasks
            .iter()
            .filter(|(_, t)| {
                !matches!(t.accept, Accept::Refused(_))
                    && !t.terminal()
                    && now.duration_since(t.accepted) >= STUCK
            })
            .map(|(id, t)| ReconcileTask {
                task_id: Id::new(id),
                agent_id: Some(Id::new(&t.agent)),
            })
            .collect();
        if stuck.is_empty() {
            return;
        }
        self.last_reconcile = Some(now);
        if sub.reconcile(stuck).await.is_err() {
            self.report.failed("RECONCILE");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tasks_take_what_is_left_of_an_offer() {
        let mut left: Vec<Resource> = serde_json::from_value(json!([
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 100.0}, "role": "*"}
        ]))
        .unwrap();
        assert!(take(&mut left, "cpus", 0.1).is_some());
        assert!(take(&mut left, "cpus", 0.1).is_some());
        assert!(take(&mut left, "cpus", 0.1).is_none());
        let mem = take(&mut left, "mem", 64.0).unwrap();
        assert_eq!(mem[0].scalar_value(), 64.0);
        assert!(take(&mut left, "mem", 64.0).is_none());
        assert!(take(&mut left, "gpus", 1.0).is_none());
    }
}
