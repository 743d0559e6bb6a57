//! Registry writes through Raft on 3 masters on loopback, each on its own
//! tokio runtime with real gRPC between them and a real (fsynced) store: log
//! segments plus redb.
//!
//! `cargo bench -p keel-master --bench raft` (`-- --writes N`, `--kills N`).
//! Printed:
//!
//! - `one master`: sequential writes on a cluster of one master: the fsync
//!   plus everything around it (proposer, openraft, apply), no network;
//! - `wal sync`, `grpc rtt`: what a write is made of: one log segment
//!   append (write + fdatasync) of a registry-sized entry on the same disk,
//!   and one small gRPC call to a master's Raft service on loopback;
//!   `redb fsync`: one redb commit of the same value, as the log cost when
//!   redb held it;
//! - `seq serial`: as `sequential`, on a cluster whose leader fsyncs an
//!   entry before replicating it (openraft 0.9's own order,
//!   `RaftOptions::overlap_leader_fsync = false`);
//! - `sequential`: one proposal at a time, leader-side `propose` latency
//!   (p50, p99, max) and the resulting rate; the leader replicates while
//!   its own fsync runs;
//! - `concurrent16`: 16 proposers at once (batched into entries by the
//!   proposer), latency and rate;
//! - `etcd ...`: the same sequential and concurrent writes against a
//!   3-member etcd on loopback, when `etcd` is installed (Debian
//!   `etcd-server`), through its JSON gateway on kept-alive connections to
//!   its leader. Keel's figures are taken at the leader's `propose`, without
//!   a client hop; etcd's include one HTTP round trip on loopback;
//! - `failover`: leader killed (its runtime dropped, as `kill -9`) until a
//!   new leader has committed a write (p50, max over the kills).
//!
//! The sequential and concurrent writes run in rounds, both Keel clusters
//! and etcd taking turns in each, all three up at once: the shared disk's
//! fsync latency drifts by the minute.

#[path = "raft/etcd.rs"]
mod etcd;
#[path = "../tests/raft_support/mod.rs"]
mod raft_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_api::raft_pb::HelloRequest;
use keel_api::raft_pb::raft_service_client::RaftServiceClient;
use keel_master::replication::raft::RaftOptions;
use keel_master::replication::raft::wal::{self, Wal};
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

/// Runs `f` for each index in `range`: each call's latency, and the whole.
fn time_each(range: std::ops::Range<u64>, mut f: impl FnMut(u64)) -> (Vec<Duration>, Duration) {
    let mut lat = Vec::with_capacity(range.clone().count());
    let start = Instant::now();
    for i in range {
        let t = Instant::now();
        f(i);
        lat.push(t.elapsed());
    }
    (lat, start.elapsed())
}

/// The parts of a write: a log append on this disk (and a redb commit, for
/// comparison), a gRPC round trip.
async fn probes(c: &Cluster, l: usize, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let value = serde_json::to_vec(&add_framework("probe")).unwrap();
    let (lat, wall) = tokio::task::spawn_blocking(move || {
        let mut wal = Wal::open(dir.path(), wal::SEGMENT_SIZE, None).unwrap().wal;
        let mut append = |i: u64| {
            wal.append(&[(i, value.clone())]).unwrap();
            wal.sync().unwrap();
        };
        (0..100).for_each(&mut append);
        time_each(100..100 + n as u64, append)
    })
    .await
    .unwrap();
    report("wal sync", lat, wall);
    const LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.redb");
    let value = serde_json::to_vec(&add_framework("probe")).unwrap();
    let (lat, wall) = tokio::task::spawn_blocking(move || {
        let db = redb::Database::create(path).unwrap();
        let commit = |i: u64| {
            let txn = db.begin_write().unwrap();
            txn.open_table(LOG)
                .unwrap()
                .insert(i, value.as_slice())
                .unwrap();
            txn.commit().unwrap();
        };
        // Until the file has grown: a commit that grows it also pays for
        // the file system's journal.
        (0..1000).for_each(commit);
        time_each(1000..1000 + n as u64, commit)
    })
    .await
    .unwrap();
    report("redb fsync", lat, wall);
    let follower = (0..c.masters.len()).find(|i| *i != l).unwrap();
    let addr = format!("http://{}", c.masters[follower].addr);
    let mut client = RaftServiceClient::connect(addr).await.unwrap();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        client
            .hello(HelloRequest {
                from: 1,
                masters: Vec::new(),
            })
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    report("grpc rtt", lat, start.elapsed());
}

/// Latencies gathered over several rounds, and the time they took.
#[derive(Default)]
struct Samples {
    lat: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    fn add(&mut self, lat: Vec<Duration>, wall: Duration) {
        self.lat.extend(lat);
        self.wall += wall;
    }

    fn report(self, name: &str) {
        report(name, self.lat, self.wall);
    }
}

/// `n` masters started with `options`, bootstrapped and warmed up, and
/// their leader.
async fn keel(n: usize, options: RaftOptions, warm: usize) -> (Cluster, usize) {
    let c = Cluster::start(n, options).await;
    let l = c.leader(SETTLE).await;
    c.propose(l, bootstrap()).await.unwrap();
    for i in 0..warm {
        c.propose(l, add_framework(&format!("warm{i}")))
            .await
            .unwrap();
    }
    (c, l)
}

/// One proposal at a time on the leader `l`.
async fn sequential(c: &Cluster, l: usize, tag: &str, writes: usize, into: &mut Samples) {
    let mut lat = Vec::with_capacity(writes);
    let start = Instant::now();
    for i in 0..writes {
        let t = Instant::now();
        c.propose(l, add_framework(&format!("{tag}-{i}")))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    into.add(lat, start.elapsed());
}

/// `proposers` proposing at once on the leader `l`, `writes` in all.
async fn concurrent(
    c: &Cluster,
    l: usize,
    tag: &str,
    writes: usize,
    proposers: usize,
    into: &mut Samples,
) {
    let node = c.masters[l].node.clone().expect("leader runs");
    let start = Instant::now();
    let tasks: Vec<_> = (0..proposers)
        .map(|p| {
            let node = Arc::clone(&node);
            let tag = tag.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..(writes / proposers).max(1) {
                    let t = Instant::now();
                    node.propose(add_framework(&format!("{tag}-{p}-{i}")))
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
    into.add(lat, start.elapsed());
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

/// Rounds the measured writes are split into, each system taking its turn
/// in every round: the shared disk's fsync latency drifts by the minute.
const ROUNDS: usize = 4;
const PROPOSERS: usize = 16;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too.
    let quick = !std::env::args().any(|a| a == "--bench");
    let writes = arg("--writes").unwrap_or(if quick { 50 } else { 2000 });
    let kills = arg("--kills").unwrap_or(if quick { 1 } else { 10 });
    let warm = 100.min(writes);
    println!(
        "3 masters on loopback, log fdatasync per write, {} cpus",
        cpus()
    );
    {
        let (one, l) = keel(1, RaftOptions::default(), warm).await;
        let mut s = Samples::default();
        sequential(&one, l, "one", writes, &mut s).await;
        s.report("one master");
    }
    let serial_options = RaftOptions {
        overlap_leader_fsync: false,
        ..RaftOptions::default()
    };
    let (serial, ls) = keel(3, serial_options, warm).await;
    let (mut c, l) = keel(3, RaftOptions::default(), warm).await;
    let mut etcd = if etcd::installed() {
        Some(EtcdBench::start(warm).await)
    } else {
        println!("etcd        not installed (apt-get install etcd-server); skipped");
        None
    };
    probes(&c, l, 200.min(writes)).await;
    let per = (writes / ROUNDS).max(1);
    let (mut b, mut k, mut e) = Default::default();
    for r in 0..ROUNDS {
        sequential(&serial, ls, &format!("b{r}"), per, &mut b).await;
        sequential(&c, l, &format!("s{r}"), per, &mut k).await;
        if let Some(etcd) = &mut etcd {
            etcd.sequential(&format!("s{r}"), per, &mut e).await;
        }
    }
    b.report("seq serial");
    k.report("sequential");
    let (mut k, mut ec) = Default::default();
    for r in 0..ROUNDS {
        concurrent(&c, l, &format!("c{r}"), per, PROPOSERS, &mut k).await;
        if let Some(etcd) = &etcd {
            etcd.concurrent(&format!("c{r}"), per, PROPOSERS, &mut ec)
                .await;
        }
    }
    k.report(&format!("concurrent{PROPOSERS}"));
    if etcd.is_some() {
        e.report("etcd seq");
        ec.report(&format!("etcd conc{PROPOSERS}"));
    }
    drop((serial, etcd));
    failover(&mut c, kills).await;
}

/// A value the size of a registry command.
fn value(i: usize) -> String {
    serde_json::to_string(&add_framework(&format!("e{i}"))).unwrap()
}

/// A 3-member etcd and a client on its leader.
struct EtcdBench {
    _cluster: etcd::Etcd,
    _dir: tempfile::TempDir,
    leader: std::net::SocketAddr,
    client: etcd::Client,
}

impl EtcdBench {
    async fn start(warm: usize) -> EtcdBench {
        let dir = tempfile::tempdir().unwrap();
        let cluster = etcd::Etcd::start(dir.path()).await;
        let leader = cluster.leader().await.expect("etcd leader");
        let mut client = etcd::Client::connect(leader).await.unwrap();
        for i in 0..warm {
            client.put(&format!("warm{i}"), &value(i)).await.unwrap();
        }
        EtcdBench {
            _cluster: cluster,
            _dir: dir,
            leader,
            client,
        }
    }

    async fn sequential(&mut self, tag: &str, writes: usize, into: &mut Samples) {
        let mut lat = Vec::with_capacity(writes);
        let start = Instant::now();
        for i in 0..writes {
            let t = Instant::now();
            self.client
                .put(&format!("{tag}-{i}"), &value(i))
                .await
                .unwrap();
            lat.push(t.elapsed());
        }
        into.add(lat, start.elapsed());
    }

    async fn concurrent(&self, tag: &str, writes: usize, proposers: usize, into: &mut Samples) {
        let leader = self.leader;
        let start = Instant::now();
        let tasks: Vec<_> = (0..proposers)
            .map(|p| {
                let tag = tag.to_string();
                tokio::spawn(async move {
                    let mut client = etcd::Client::connect(leader).await.unwrap();
                    let mut lat = Vec::new();
                    for i in 0..(writes / proposers).max(1) {
                        let t = Instant::now();
                        client
                            .put(&format!("{tag}-{p}-{i}"), &value(i))
                            .await
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
        into.add(lat, start.elapsed());
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
