//! The replicated registry's history test: three masters under CPU load,
//! clients writing and reading weights through the operator API while the
//! leader is killed, paused and (as root) cut off from the other masters.
//! Afterwards every acknowledged write must still be there, and the
//! recorded history must be linearizable: no read may return older state
//! than a write acknowledged before it began (`keel_history`).

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_history::{Completion, MapAction, MapOp, Recorder};
use rustix::process::Signal;
use serde_json::{Value as Json, json};
use support::testnet::Testnet;
use support::*;

const MASTERS: usize = 3;
const WRITERS: usize = 3;
const READERS: usize = 3;
/// Busy loops beside the masters (this machine has 2 cores).
const BUSY: usize = 3;
const FAULTS: usize = 12;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the masters run: their own namespaces (as root) or loopback.
struct Net {
    testnet: Option<Testnet>,
    addrs: Vec<SocketAddr>,
}

impl Net {
    fn new() -> Net {
        match Testnet::new(MASTERS) {
            Some(t) => Net {
                addrs: (0..MASTERS)
                    .map(|i| SocketAddr::new(IpAddr::V4(t.addr(i)), 5050))
                    .collect(),
                testnet: Some(t),
            },
            None => Net {
                testnet: None,
                addrs: (0..MASTERS)
                    .map(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()))
                    .collect(),
            },
        }
    }

    fn list(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        addrs.join(",")
    }
}

struct Masters {
    net: Net,
    dir: PathBuf,
    procs: Vec<Option<Proc>>,
    started: usize,
}

impl Masters {
    fn start(dir: &Path) -> Masters {
        let mut m = Masters {
            net: Net::new(),
            dir: dir.to_path_buf(),
            procs: (0..MASTERS).map(|_| None).collect(),
            started: 0,
        };
        for i in 0..MASTERS {
            m.spawn(i);
        }
        m
    }

    fn spawn(&mut self, i: usize) {
        let master = bin("keel-master");
        let mut cmd = match &self.net.testnet {
            Some(t) => t.command(i, &master),
            None => Command::new(master),
        };
        let addr = self.net.addrs[i];
        cmd.args([
            "--ip",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
        ])
        .arg("--work-dir")
        .arg(self.dir.join(format!("m{i}")))
        .args(["--masters", &self.net.list()]);
        self.started += 1;
        let log = self.dir.join(format!("m{i}-{}.log", self.started));
        self.procs[i] = Some(Proc::spawn(&mut cmd, log));
    }

    fn proc(&self, i: usize) -> &Proc {
        self.procs[i].as_ref().expect("running")
    }

    /// The master that leads and serves the operator API, asking each.
    fn leader(&self) -> Option<usize> {
        (0..MASTERS).find(|i| {
            self.procs[*i].is_some()
                && matches!(
                    call(self.net.addrs[*i], &json!({"type": "GET_HEALTH"})),
                    Reply::Ok(_)
                )
        })
    }

    fn wait_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            if Instant::now() > deadline {
                panic!(
                    "no serving leader within {within:?}; logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {} (tail)\n", path.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// How a request ended.
enum Reply {
    Ok(String),
    /// Never reached the master, or turned away before doing anything.
    NotDone {
        redirect: Option<SocketAddr>,
    },
    /// Sent, and no definite answer: it may or may not have taken effect.
    Unknown,
}

fn call(addr: SocketAddr, body: &Json) -> Reply {
    let body = body.to_string();
    let headers = [("Content-Type", "application/json")];
    match http_to(
        addr,
        REQUEST_TIMEOUT,
        "POST",
        "/api/v1",
        &headers,
        body.as_bytes(),
    ) {
        Ok((200, _, body)) => Reply::Ok(body),
        Ok((307, headers, _)) => Reply::NotDone {
            redirect: headers
                .iter()
                .find(|(k, _)| k == "location")
                .and_then(|(_, v)| v.trim_start_matches("//").split('/').next()?.parse().ok()),
        },
        // 0: the connection closed without an answer (a killed master).
        Ok((0, _, _)) => Reply::Unknown,
        Ok((status, _, _)) if status >= 500 => Reply::Unknown,
        Ok((status, _, body)) => panic!("{status} {body} for a valid call"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Reply::NotDone { redirect: None }
        }
        Err(_) => Reply::Unknown,
    }
}

fn weights(body: &str) -> BTreeMap<String, u64> {
    let v: Json = serde_json::from_str(body).expect("GET_WEIGHTS JSON");
    v["get_weights"]["weight_infos"]
        .as_array()
        .expect("weight_infos")
        .iter()
        .map(|w| {
            let role = w["role"].as_str().expect("role").to_string();
            (role, w["weight"].as_f64().expect("weight") as u64)
        })
        .collect()
}

/// One client: a thread that keeps sending requests to whichever master it
/// believes leads until told to stop.
struct Client {
    id: usize,
    addrs: Vec<SocketAddr>,
    guess: usize,
    history: Arc<Recorder>,
}

impl Client {
    /// Sends `body` once to the master it believes leads; on a redirect or
    /// refusal, believes the next one.
    fn send(&mut self, body: &Json) -> (u64, Reply, u64) {
        let addr = self.addrs[self.guess];
        let invoked = self.history.now();
        let reply = call(addr, body);
        let completed = self.history.now();
        match &reply {
            Reply::Ok(_) => {}
            Reply::NotDone { redirect: Some(to) } => {
                if let Some(i) = self.addrs.iter().position(|a| a == to) {
                    self.guess = i;
                }
            }
            _ => self.guess = (self.guess + 1) % self.addrs.len(),
        }
        if !matches!(reply, Reply::Ok(_)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        (invoked, reply, completed)
    }

    fn write(&mut self, value: u64) -> bool {
        let key = format!("h{}", self.id);
        let body = json!({"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": key, "weight": value as f64}]}});
        let (invoked, reply, completed) = self.send(&body);
        let completion = match reply {
            Reply::Ok(_) => Completion::At(completed),
            Reply::Unknown => Completion::Unknown,
            Reply::NotDone { .. } => return false,
        };
        self.history
            .write(self.id, invoked, completion, &key, value);
        completion != Completion::Unknown
    }

    fn read(&mut self) -> bool {
        let (invoked, reply, completed) = self.send(&json!({"type": "GET_WEIGHTS"}));
        match reply {
            Reply::Ok(body) => {
                self.history
                    .read(self.id, invoked, completed, weights(&body));
                true
            }
            _ => false,
        }
    }
}

/// The client threads; stopped and joined on drop.
#[derive(Default)]
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Client>>,
}

impl Clients {
    fn join(mut self) -> Vec<Client> {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        threads
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause,
    Partition,
}

#[test]
fn acknowledged_writes_survive_leader_faults_under_load() {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("KEEL_TEST_KEEP").is_some() {
        eprintln!("history: keeping {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    let busy: Vec<Proc> = (0..BUSY)
        .map(|i| {
            Proc::spawn(
                Command::new("sh").args(["-c", "while :; do :; done"]),
                dir.path().join(format!("busy{i}.out")),
            )
        })
        .collect();
    let mut masters = Masters::start(dir.path());
    let first = masters.wait_leader(Duration::from_secs(60));
    let partitions = masters.net.testnet.is_some();
    eprintln!(
        "history: masters {} ({}), first leader {first}",
        masters.net.list(),
        if partitions {
            "own namespaces"
        } else {
            "loopback, not root: no partitions"
        }
    );

    let history = Arc::new(Recorder::default());
    // Declared after the masters and their network, so dropped (stopping
    // the clients) before them, even when the test fails.
    let mut clients = Clients::default();
    let stop = clients.stop.clone();
    let acked = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    for id in 0..WRITERS + READERS {
        let mut c = Client {
            id,
            addrs: masters.net.addrs.clone(),
            guess: first,
            history: history.clone(),
        };
        let (stop, acked, reads) = (stop.clone(), acked.clone(), reads.clone());
        clients.threads.push(std::thread::spawn(move || {
            let mut value = 0;
            while !stop.load(Ordering::SeqCst) {
                if id < WRITERS {
                    value += 1;
                    if c.write(value) {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                } else if c.read() {
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
            c
        }));
    }

    let faults = [Fault::Kill, Fault::Partition, Fault::Pause];
    let mut leader_changes = 0;
    let mut leader = first;
    for round in 0..FAULTS {
        std::thread::sleep(Duration::from_millis(1500));
        let mut fault = faults[round % faults.len()];
        if matches!(fault, Fault::Partition) && !partitions {
            fault = Fault::Pause;
        }
        let l = masters.wait_leader(Duration::from_secs(30));
        if l != leader {
            leader_changes += 1;
            leader = l;
        }
        eprintln!("history: round {round}: {fault:?} leader {l}");
        match fault {
            Fault::Kill => {
                masters.procs[l] = None;
                std::thread::sleep(Duration::from_millis(1500));
                masters.spawn(l);
            }
            Fault::Pause => {
                masters.proc(l).signal(Signal::STOP);
                std::thread::sleep(Duration::from_millis(2500));
                masters.proc(l).signal(Signal::CONT);
            }
            Fault::Partition => {
                let net = masters.net.testnet.as_ref().expect("partitions");
                net.isolate(l);
                std::thread::sleep(Duration::from_millis(2500));
                net.heal(l);
            }
        }
    }
    let l = masters.wait_leader(Duration::from_secs(30));
    if l != leader {
        leader_changes += 1;
    }
    std::thread::sleep(Duration::from_secs(2));
    let clients = clients.join();

    // One last read by each reader, through the leader, once healed.
    for mut c in clients.into_iter().filter(|c| c.id >= WRITERS) {
        c.guess = masters.wait_leader(Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.read() {
            assert!(
                Instant::now() < deadline,
                "no final read; logs:\n{}",
                masters.logs()
            );
        }
    }

    let ops = history.ops();
    let unknown = ops
        .iter()
        .filter(|o| o.completed == Completion::Unknown)
        .count();
    let (acked, reads) = (acked.load(Ordering::SeqCst), reads.load(Ordering::SeqCst));
    eprintln!(
        "history: {} operations ({acked} acknowledged writes, {unknown} unanswered, {reads} reads), \
         {leader_changes} leader changes",
        ops.len()
    );
    // The history must have enough in it to mean something.
    assert!(
        leader_changes >= FAULTS / 2,
        "{leader_changes} leader changes"
    );
    assert!(
        acked >= 100 && reads >= 100,
        "{acked} writes, {reads} reads"
    );

    if let Some(lost) = lost_writes(&ops) {
        panic!(
            "acknowledged writes lost: {lost}\nlogs:\n{}",
            masters.logs()
        );
    }
    let started = Instant::now();
    let verdict = keel_history::check_map(&ops);
    eprintln!("history: checked in {:?}", started.elapsed());
    if let Err(v) = verdict {
        panic!(
            "the history is not linearizable: {v}\nlogs:\n{}",
            masters.logs()
        );
    }
    drop(busy);
}

/// Per key, the acknowledged writes the last read does not reflect: it
/// must show the last acknowledged write or a later unanswered one.
fn lost_writes(ops: &[MapOp]) -> Option<String> {
    let last_read = ops
        .iter()
        .filter_map(|o| match (&o.action, o.completed) {
            (MapAction::Read { seen }, Completion::At(t)) => Some((t, seen)),
            _ => None,
        })
        .max_by_key(|(t, _)| *t)?
        .1;
    let mut lost = Vec::new();
    for key in (0..WRITERS).map(|i| format!("h{i}")) {
        let writes: Vec<(u64, Completion)> = ops
            .iter()
            .filter_map(|o| match &o.action {
                MapAction::Write { key: k, value } if *k == key => Some((*value, o.completed)),
                _ => None,
            })
            .collect();
        let Some(last_acked) = writes
            .iter()
            .filter(|(_, c)| *c != Completion::Unknown)
            .map(|(v, _)| *v)
            .max()
        else {
            continue;
        };
        let seen = last_read.get(&key).copied();
        // Values grow with time: an unanswered write after the last
        // acknowledged one may have won.
        let explained = seen == Some(last_acked)
            || seen.is_some_and(|s| s > last_acked && writes.contains(&(s, Completion::Unknown)));
        if !explained {
            lost.push(format!(
                "{key}: last acknowledged {last_acked}, read {seen:?}"
            ));
        }
    }
    (!lost.is_empty()).then(|| lost.join("; "))
}
