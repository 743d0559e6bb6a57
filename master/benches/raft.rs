//! Registry writes through Raft on 3 masters on loopback, each on its own
//! tokio runtime with real gRPC between them and a real (fsynced) redb store.
//!
//! `cargo bench -p keel-master --bench raft` (`-- --writes N`, `--kills N`).
//! Printed:
//!
//! - `sequential`: one proposal at a time, leader-side `propose` latency
//!   (p50, p99, max) and the resulting rate;
//! - `concurrent`: 16 proposers at once (openraft batches them), latency
//!   and rate;
//! - `failover`: leader killed (its runtime dropped, as `kill -9`) until a
//!   new leader has committed a write (p50, max over the kills);
//! - `etcd ...`: the same sequential and concurrent writes against a
//!   3-member etcd on loopback, when `etcd` is installed (Debian
//!   `etcd-server`), through its JSON gateway on kept-alive connections to
//!   its leader. Keel's figures are taken at the leader's `propose`, without
//!   a client hop; etcd's include one HTTP round trip on loopback.

#[path = "raft/etcd.rs"]
mod etcd;
#[path = "../tests/raft_support/mod.rs"]
mod raft_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_master::raft::RaftOptions;
use raft_support::{Cluster, add_framework, bootstrap};

const SETTLE: Duration = Duration::from_secs(10);

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    println!(
        "{name:<11} n={:<5} p50={:>8.3?} p99={:>8.3?} max={:>8.3?} rate={:>7.0}/s",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
        lat.len() as f64 / wall.as_secs_f64()
    );
}

async fn sequential(c: &Cluster, l: usize, writes: usize) {
    let mut lat = Vec::with_capacity(writes);
    let start = Instant::now();
    for i in 0..writes {
        let t = Instant::now();
        c.propose(l, add_framework(&format!("s{i}"))).await.unwrap();
        lat.push(t.elapsed());
    }
    report("sequential", lat, start.elapsed());
}

async fn concurrent(c: &Cluster, l: usize, writes: usize, proposers: usize) {
    let node = c.masters[l].node.clone().expect("leader runs");
    let start = Instant::now();
    let tasks: Vec<_> = (0..proposers)
        .map(|p| {
            let node = Arc::clone(&node);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..writes / proposers {
                    let t = Instant::now();
                    node.propose(add_framework(&format!("c{p}-{i}")))
                        .await
                        .unwrap()
                        .unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    report(&format!("concurrent{proposers}"), lat, start.elapsed());
}

async fn failover(c: &mut Cluster, kills: usize) {
    let mut times = Vec::new();
    for k in 0..kills {
        let l = c.leader(SETTLE).await;
        c.converged(l, SETTLE).await;
        c.kill(l).await;
        let start = Instant::now();
        'serving: loop {
            for (_, n) in c.running() {
                if n.is_leader()
                    && matches!(n.propose(add_framework(&format!("k{k}"))).await, Ok(Ok(_)))
                {
                    break 'serving;
                }
            }
            assert!(start.elapsed() < SETTLE, "no new leader");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(start.elapsed());
        c.restart(l).await;
    }
    times.sort();
    println!(
        "failover    n={:<5} p50={:>8.3?} max={:>8.3?}  (leader killed -> new leader committed a write)",
        times.len(),
        percentile(&times, 0.5),
        times[times.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too.
    let quick = !std::env::args().any(|a| a == "--bench");
    let writes = arg("--writes").unwrap_or(if quick { 50 } else { 2000 });
    let kills = arg("--kills").unwrap_or(if quick { 1 } else { 10 });
    let mut c = Cluster::start(3, RaftOptions::default()).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    for i in 0..100.min(writes) {
        c.propose(l, add_framework(&format!("warm{i}")))
            .await
            .unwrap();
    }
    println!(
        "3 masters on loopback, redb fsync per write, {} cpus",
        cpus()
    );
    sequential(&c, l, writes).await;
    concurrent(&c, l, writes, 16).await;
    failover(&mut c, kills).await;
    drop(c);
    if etcd::installed() {
        etcd_writes(writes, 16).await;
    } else {
        println!("etcd        not installed (apt-get install etcd-server); skipped");
    }
}

/// A value the size of a registry command.
fn value(i: usize) -> String {
    serde_json::to_string(&add_framework(&format!("e{i}"))).unwrap()
}

async fn etcd_writes(writes: usize, proposers: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = etcd::Etcd::start(dir.path()).await;
    let leader = cluster.leader().await.expect("etcd leader");
    let mut client = etcd::Client::connect(leader).await.unwrap();
    for i in 0..100.min(writes) {
        client.put(&format!("warm{i}"), &value(i)).await.unwrap();
    }
    let mut lat = Vec::with_capacity(writes);
    let start = Instant::now();
    for i in 0..writes {
        let t = Instant::now();
        client.put(&format!("s{i}"), &value(i)).await.unwrap();
        lat.push(t.elapsed());
    }
    report("etcd seq", lat, start.elapsed());
    let start = Instant::now();
    let tasks: Vec<_> = (0..proposers)
        .map(|p| {
            tokio::spawn(async move {
                let mut client = etcd::Client::connect(leader).await.unwrap();
                let mut lat = Vec::new();
                for i in 0..writes / proposers {
                    let t = Instant::now();
                    client.put(&format!("c{p}-{i}"), &value(i)).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    report(&format!("etcd conc{proposers}"), lat, start.elapsed());
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
