//! Registry traffic through keel-client (leader discovery over the list):
//! a writer setting the weight of one role to 1, 2, 3, ... a few times a
//! second, each write recorded with how it ended, and a reader reading it
//! back. While the disk is full, a burst of writes from several writers,
//! each to its own role, enough for the masters to take a Raft snapshot
//! (their log segments are preallocated, so without one a full disk goes
//! unnoticed). Checked afterwards as `master/tests/history.rs` does: the final
//! weight is the last acknowledged write or a later unanswered one, and no
//! read returns less than an earlier read or a write acknowledged before it
//! began.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_api::operator::WeightInfo;
use keel_client::{Client, ClientError};
use tokio::sync::watch;

use super::{Pace, Progress};

/// The role whose weight is written.
pub const ROLE: &str = "soak";
/// The burst's roles: `soak-burst-<k>`.
pub const BURST_ROLE: &str = "soak-burst-";
const TIMEOUT: Duration = Duration::from_secs(3);

/// How a write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 200: it is in the registry.
    Acked,
    /// No definite answer (a 5xx, 503 included, a timeout, a dropped
    /// connection): it may or may not have taken effect.
    Unknown(String),
    /// Refused before anything was done (4xx, redirects only, refused
    /// connections).
    NotDone(String),
}

#[derive(Debug, Clone)]
pub struct Write {
    pub value: u64,
    pub invoked: Instant,
    pub completed: Instant,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub invoked: Instant,
    pub completed: Instant,
    /// The role's weight; 0 when it has none yet.
    pub value: u64,
}

#[derive(Debug, Default)]
pub struct Reads {
    pub ok: Vec<Read>,
    /// When a read failed, and why.
    pub failed: Vec<(Instant, String)>,
}

fn client(list: &str) -> Option<Client> {
    Client::builder(list)
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .ok()
}

/// Whether the master answered 503 (a store that failed, no quorum, no
/// leader) somewhere along the way.
pub fn is_503(e: &ClientError) -> bool {
    match e {
        ClientError::Status { status, .. } => *status == 503,
        ClientError::NoMaster { tried, .. } => tried.iter().any(|a| a.outcome.starts_with("503")),
        _ => false,
    }
}

fn classify(e: &ClientError) -> Outcome {
    let text = e.to_string();
    match e {
        ClientError::Status { status, .. } if (400..500).contains(status) => Outcome::NotDone(text),
        ClientError::NoMaster { .. } if !is_503(e) => Outcome::NotDone(text),
        _ => Outcome::Unknown(text),
    }
}

/// Writes `1, 2, 3, ...` as the weight of [`ROLE`], `per_sec` times a
/// second, until `stop`.
pub async fn writer(
    list: String,
    per_sec: u32,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> Vec<Write> {
    let Some(client) = client(&list) else {
        return Vec::new();
    };
    let mut pace = Pace::new(Duration::from_secs_f64(1.0 / per_sec.max(1) as f64), stop);
    let mut out = Vec::new();
    let mut value = 0;
    while pace.next().await {
        value += 1;
        let weights = vec![WeightInfo {
            role: ROLE.into(),
            weight: value as f64,
        }];
        let invoked = Instant::now();
        let result = client.update_weights(weights).await;
        let outcome = match &result {
            Ok(()) => Outcome::Acked,
            Err(e) => classify(e),
        };
        progress.add_write(&outcome);
        out.push(Write {
            value,
            invoked,
            completed: Instant::now(),
            outcome,
        });
    }
    out
}

/// The weights as the leader answers `GET_WEIGHTS`, by role.
pub async fn read_all(client: &Client) -> Result<BTreeMap<String, u64>, ClientError> {
    let w = client.get_weights().await?;
    Ok(w.weight_infos
        .iter()
        .map(|w| (w.role.clone(), w.weight as u64))
        .collect())
}

/// [`ROLE`]'s weight; 0 when it has none.
pub async fn read_once(client: &Client) -> Result<u64, ClientError> {
    Ok(read_all(client).await?.get(ROLE).copied().unwrap_or(0))
}

/// Reads [`ROLE`]'s weight `per_sec` times a second until `stop`.
pub async fn reader(
    list: String,
    per_sec: u32,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
) -> Reads {
    let mut out = Reads::default();
    let Some(client) = client(&list) else {
        return out;
    };
    let mut pace = Pace::new(Duration::from_secs_f64(1.0 / per_sec.max(1) as f64), stop);
    while pace.next().await {
        let invoked = Instant::now();
        match read_once(&client).await {
            Ok(value) => {
                progress
                    .reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                out.ok.push(Read {
                    invoked,
                    completed: Instant::now(),
                    value,
                });
            }
            Err(e) => out.failed.push((invoked, e.to_string())),
        }
    }
    out
}

/// The last read, through the leader, retried for up to `within`: the
/// read of [`ROLE`], and every role's weight.
pub async fn final_read(
    list: String,
    within: Duration,
) -> Result<(Read, BTreeMap<String, u64>), String> {
    let client = client(&list).ok_or("no client")?;
    let deadline = Instant::now() + within;
    loop {
        let invoked = Instant::now();
        match read_all(&client).await {
            Ok(all) => {
                let read = Read {
                    invoked,
                    completed: Instant::now(),
                    value: all.get(ROLE).copied().unwrap_or(0),
                };
                return Ok((read, all));
            }
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `total` writes from `writers` concurrent writers, writer `k` setting
/// `soak-burst-<k>` to 1, 2, 3, ...; stops early at `until`. Each
/// writer's history, by role.
pub async fn burst(
    list: String,
    total: usize,
    writers: usize,
    until: Instant,
) -> BTreeMap<String, Vec<Write>> {
    let mut tasks = Vec::new();
    for k in 0..writers {
        let list = list.clone();
        let n = total / writers + usize::from(k < total % writers);
        tasks.push(tokio::spawn(async move {
            let role = format!("{BURST_ROLE}{k}");
            let mut out = Vec::new();
            let Some(client) = client(&list) else {
                return (role, out);
            };
            for value in 1..=n as u64 {
                if Instant::now() >= until {
                    break;
                }
                let invoked = Instant::now();
                let result = client
                    .update_weights(vec![WeightInfo {
                        role: role.clone(),
                        weight: value as f64,
                    }])
                    .await;
                let outcome = match &result {
                    Ok(()) => Outcome::Acked,
                    Err(e) => classify(e),
                };
                if outcome != Outcome::Acked {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                out.push(Write {
                    value,
                    invoked,
                    completed: Instant::now(),
                    outcome,
                });
            }
            (role, out)
        }));
    }
    let mut out = BTreeMap::new();
    for t in tasks {
        if let Ok((role, writes)) = t.await {
            out.insert(role, writes);
        }
    }
    out
}

/// Whether the final value `seen` of a key keeps its acknowledged writes:
/// it is the last acknowledged value or a later unanswered one (values
/// grow). What is wrong, if anything.
pub fn final_lost(writes: &[Write], seen: Option<u64>) -> Option<String> {
    let acked = writes
        .iter()
        .filter(|w| w.outcome == Outcome::Acked)
        .map(|w| w.value)
        .max()?;
    let Some(seen) = seen else {
        return Some(format!(
            "last acknowledged write {acked}, and no final read"
        ));
    };
    let later_unknown = writes
        .iter()
        .any(|w| w.value == seen && matches!(w.outcome, Outcome::Unknown(_)));
    if seen == acked || seen > acked && later_unknown {
        return None;
    }
    let how = writes
        .iter()
        .find(|w| w.value == seen)
        .map_or("never written".to_string(), |w| format!("{:?}", w.outcome));
    Some(format!(
        "last acknowledged write {acked}, final read {seen} ({how})"
    ))
}

/// What the registry checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub acked: usize,
    pub unknown: usize,
    pub not_done: usize,
    pub last_acked: Option<u64>,
    pub final_value: Option<u64>,
    /// Acknowledged writes the final read does not reflect (0 or 1: the
    /// values grow, so one missing means the last acknowledged one is).
    pub lost: Option<String>,
    /// Reads that went back: below an earlier read, or below a write
    /// acknowledged before they began.
    pub went_back: Vec<String>,
}

/// Checks the history of one run; `last` is the final read.
pub fn check(writes: &[Write], reads: &[Read], last: Option<&Read>) -> Verdict {
    let mut v = Verdict {
        acked: writes
            .iter()
            .filter(|w| w.outcome == Outcome::Acked)
            .count(),
        unknown: writes
            .iter()
            .filter(|w| matches!(w.outcome, Outcome::Unknown(_)))
            .count(),
        not_done: writes
            .iter()
            .filter(|w| matches!(w.outcome, Outcome::NotDone(_)))
            .count(),
        last_acked: writes
            .iter()
            .filter(|w| w.outcome == Outcome::Acked)
            .map(|w| w.value)
            .max(),
        final_value: last.map(|r| r.value),
        ..Verdict::default()
    };
    v.lost = final_lost(writes, v.final_value);
    // The reader is sequential: each read began after the previous ended.
    let mut all: Vec<&Read> = reads.iter().chain(last).collect();
    all.sort_by_key(|r| r.invoked);
    // Acknowledged writes by completion, to walk beside the reads.
    let mut acked: Vec<&Write> = writes
        .iter()
        .filter(|w| w.outcome == Outcome::Acked)
        .collect();
    acked.sort_by_key(|w| w.completed);
    let mut next = 0;
    let mut floor: Option<u64> = None;
    let mut best: Option<&Read> = None;
    for r in &all {
        if let Some(b) = best
            && r.value < b.value
            && r.invoked >= b.completed
        {
            v.went_back.push(format!(
                "read {} after an earlier read of {}",
                r.value, b.value
            ));
        }
        while next < acked.len() && acked[next].completed <= r.invoked {
            floor = floor.max(Some(acked[next].value));
            next += 1;
        }
        if let Some(f) = floor
            && r.value < f
        {
            v.went_back
                .push(format!("read {} after write {f} was acknowledged", r.value));
        }
        if best.is_none_or(|b| r.value > b.value) {
            best = Some(r);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn write(t0: Instant, value: u64, from: u64, to: u64, outcome: Outcome) -> Write {
        Write {
            value,
            invoked: at(t0, from),
            completed: at(t0, to),
            outcome,
        }
    }

    fn read(t0: Instant, value: u64, from: u64, to: u64) -> Read {
        Read {
            invoked: at(t0, from),
            completed: at(t0, to),
            value,
        }
    }

    #[test]
    fn the_final_read_must_show_the_last_acknowledged_write_or_a_later_unanswered_one() {
        let t0 = Instant::now();
        let writes = vec![
            write(t0, 1, 0, 1, Outcome::Acked),
            write(t0, 2, 2, 3, Outcome::Acked),
            write(t0, 3, 4, 5, Outcome::Unknown("503".into())),
            write(t0, 4, 6, 7, Outcome::NotDone("307".into())),
        ];
        let ok = |v| check(&writes, &[], Some(&read(t0, v, 10, 11)));
        assert!(ok(2).lost.is_none());
        assert!(ok(3).lost.is_none());
        assert!(ok(1).lost.is_some());
        // A refused write that took effect is not explained either.
        assert!(ok(4).lost.is_some());
        assert!(check(&writes, &[], None).lost.is_some());
    }

    #[test]
    fn reads_never_go_back() {
        let t0 = Instant::now();
        let writes = vec![write(t0, 5, 0, 10, Outcome::Acked)];
        let reads = vec![read(t0, 5, 11, 12), read(t0, 6, 13, 14)];
        assert!(check(&writes, &reads, None).went_back.is_empty());
        let older = vec![read(t0, 6, 11, 12), read(t0, 5, 13, 14)];
        assert_eq!(check(&writes, &older, None).went_back.len(), 1);
        let stale = vec![read(t0, 4, 11, 12)];
        assert_eq!(check(&writes, &stale, None).went_back.len(), 1);
        // A read that began before the write was acknowledged may miss it.
        let early = vec![read(t0, 4, 5, 12)];
        assert!(check(&writes, &early, None).went_back.is_empty());
    }
}
