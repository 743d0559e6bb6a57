//! Masters' Raft on loopback, for tests and the bench. Each master runs on
//! its own tokio runtime, serving only the Raft gRPC service on a real
//! `127.0.0.1` port, mounted the way the master's router mounts it. Killing
//! a master shuts its runtime down: every task of it (Raft, server,
//! connections) stops at once, as with `kill -9`. The masters reach each
//! other through a test network ([`net`]) that can cut links, both ways,
//! between chosen masters.

#![allow(dead_code)]

pub mod net;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use keel_master::registry::{Applied, Command, Registry, RegistryError};
use keel_master::replication::raft::{GRPC_ROUTE, RaftError, RaftNode, RaftOptions};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

pub use net::Net;

pub struct Master {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// Its `--masters`.
    pub list: Vec<SocketAddr>,
    /// `None` while killed.
    pub node: Option<Arc<RaftNode>>,
    runtime: Option<Runtime>,
}

pub struct Cluster {
    pub masters: Vec<Master>,
    pub options: RaftOptions,
    /// The network between them.
    pub net: Arc<Net>,
    /// Where the masters' data dirs are.
    base: PathBuf,
    /// The temp dir `base` is, unless the caller gave it.
    owned_tmp: Option<TempDir>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What a master is started with.
struct Boot {
    dir: PathBuf,
    me: SocketAddr,
    list: Vec<SocketAddr>,
    options: RaftOptions,
}

/// Opens the node, on the test network, and serves it on `listener`, on
/// `rt`.
async fn boot(
    rt: &Runtime,
    listener: TcpListener,
    net: &Arc<Net>,
    b: Boot,
) -> Result<Arc<RaftNode>, RaftError> {
    let connector = net.connector(b.me);
    let opened = rt
        .spawn(async move {
            // A killed master's store may take a moment to be let go of.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let open = RaftNode::open_with_connector(
                    &b.dir,
                    b.me,
                    &b.list,
                    b.options.clone(),
                    connector.clone(),
                );
                match open.await {
                    Err(e)
                        if e.to_string().contains("already open") && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => return other,
                }
            }
        })
        .await
        .expect("open task");
    let node = Arc::new(opened?);
    let app = axum::Router::new().route_service(GRPC_ROUTE, node.grpc_service());
    // As the master's server does: small Raft messages must not wait for
    // Nagle's algorithm (40 ms stalls against delayed ACKs).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    rt.spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Ok(node)
}

async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

impl Cluster {
    /// `n` masters that all know each other, started at once.
    pub async fn start(n: usize, options: RaftOptions) -> Cluster {
        let all: Vec<usize> = (0..n).collect();
        Cluster::start_lists(&vec![all; n], options).await
    }

    /// Master `i` started with `--masters` = the addresses of `lists[i]`
    /// (indexes into the ports, which may name masters never started).
    pub async fn start_lists(lists: &[Vec<usize>], options: RaftOptions) -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let base = tmp.path().to_path_buf();
        let mut c = Cluster::start_lists_in(&base, lists, options).await;
        c.owned_tmp = Some(tmp);
        c
    }

    /// [`Cluster::start`] with the masters' data dirs in `base` (which must
    /// outlive the cluster), as `base/m{i}`.
    pub async fn start_in(base: &std::path::Path, n: usize, options: RaftOptions) -> Cluster {
        let all: Vec<usize> = (0..n).collect();
        Cluster::start_lists_in(base, &vec![all; n], options).await
    }

    async fn start_lists_in(
        base: &std::path::Path,
        lists: &[Vec<usize>],
        options: RaftOptions,
    ) -> Cluster {
        if std::env::var_os("KEEL_LOG").is_some() {
            keel_telemetry::init("raft-test");
        }
        let net = Net::new();
        let ports = lists
            .iter()
            .flatten()
            .max()
            .map_or(0, |m| m + 1)
            .max(lists.len());
        let mut listeners = Vec::new();
        for _ in 0..ports {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut masters = Vec::new();
        for (i, listener) in listeners.into_iter().take(lists.len()).enumerate() {
            let list: Vec<SocketAddr> = lists[i].iter().map(|j| addrs[*j]).collect();
            let dir = base.join(format!("m{i}"));
            let rt = runtime();
            let b = Boot {
                dir: dir.clone(),
                me: addrs[i],
                list: list.clone(),
                options: options.clone(),
            };
            let node = boot(&rt, listener, &net, b).await.expect("open master");
            masters.push(Master {
                addr: addrs[i],
                dir,
                list,
                node: Some(node),
                runtime: Some(rt),
            });
        }
        Cluster {
            masters,
            options,
            net,
            base: base.to_path_buf(),
            owned_tmp: None,
        }
    }

    /// Starts one more master, given every master's address as
    /// `--masters`; it is not a member until added.
    pub async fn start_extra(&mut self) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let mut list: Vec<SocketAddr> = self.masters.iter().map(|m| m.addr).collect();
        list.push(addr);
        let dir = self.base.join(format!("m{}", self.masters.len()));
        let rt = runtime();
        let b = Boot {
            dir: dir.clone(),
            me: addr,
            list: list.clone(),
            options: self.options.clone(),
        };
        let node = boot(&rt, listener, &self.net, b)
            .await
            .expect("open master");
        self.masters.push(Master {
            addr,
            dir,
            list,
            node: Some(node),
            runtime: Some(rt),
        });
        self.masters.len() - 1
    }

    /// Cuts master `i` off from the others, both ways, as a network
    /// partition would.
    pub fn isolate(&self, i: usize) {
        self.net.isolate(self.masters[i].addr);
    }

    /// Undoes [`Cluster::isolate`].
    pub fn rejoin(&self, i: usize) {
        self.net.rejoin(self.masters[i].addr);
    }

    pub fn node(&self, i: usize) -> &RaftNode {
        self.masters[i].node.as_ref().expect("master is running")
    }

    pub fn running(&self) -> impl Iterator<Item = (usize, &RaftNode)> {
        self.masters
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.node.as_deref().map(|n| (i, n)))
    }

    /// A running master other than `old` that believes it leads (the
    /// majority's new leader while `old` is cut off).
    pub async fn leader_other_than(&self, old: usize, within: Duration) -> usize {
        let mut found = None;
        eventually(within, "a new leader among the majority", || {
            found = self
                .running()
                .find(|(i, n)| *i != old && n.is_leader())
                .map(|(i, _)| i);
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// The running master that leads, once all running ones agree on it.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders: Vec<usize> = self
                .running()
                .filter(|(_, n)| n.is_leader())
                .map(|(i, _)| i)
                .collect();
            if let [i] = leaders[..] {
                let id = self.node(i).id();
                if self
                    .running()
                    .filter(|(_, n)| n.problem().is_none())
                    .all(|(_, n)| n.leader().map(|l| l.0) == Some(id))
                {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single leader within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Proposes on master `i`, which must lead.
    pub async fn propose(&self, i: usize, cmd: Command) -> Result<Applied, RegistryError> {
        self.node(i).propose(cmd).await.expect("proposal commits")
    }

    /// Waits until every running master (or those in `only`) has applied
    /// what `i` has, and returns its registry.
    pub async fn converged(&self, i: usize, within: Duration) -> Arc<Registry> {
        let deadline = Instant::now() + within;
        loop {
            let target = *self.node(i).applied_index().borrow();
            let reg = self.node(i).registry();
            let all = self
                .running()
                .all(|(_, n)| *n.applied_index().borrow() >= target && *n.registry() == *reg);
            if all {
                return reg;
            }
            assert!(
                Instant::now() < deadline,
                "masters did not converge within {within:?}: {:?}",
                self.running()
                    .map(|(i, n)| (i, *n.applied_index().borrow()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops master `i` abruptly (its runtime and every task on it), and
    /// waits until its store file is let go of.
    pub async fn kill(&mut self, i: usize) {
        let m = &mut self.masters[i];
        m.node = None;
        if let Some(rt) = m.runtime.take() {
            rt.shutdown_background();
        }
        let path = m.dir.join("raft").join("raft.redb");
        eventually(Duration::from_secs(5), "the store is closed", || {
            is_unlocked(&path)
        })
        .await;
    }

    /// Starts master `i` again on its address and data dir.
    pub async fn restart(&mut self, i: usize) {
        self.try_restart(i).await.expect("restart master");
    }

    pub async fn try_restart(&mut self, i: usize) -> Result<(), RaftError> {
        assert!(self.masters[i].node.is_none(), "kill it first");
        let addr = self.masters[i].addr;
        let rt = runtime();
        let listener = bind(addr).await;
        let b = Boot {
            dir: self.masters[i].dir.clone(),
            me: addr,
            list: self.masters[i].list.clone(),
            options: self.options.clone(),
        };
        let node = boot(&rt, listener, &self.net, b).await;
        let m = &mut self.masters[i];
        match node {
            Ok(node) => {
                m.node = Some(node);
                m.runtime = Some(rt);
                Ok(())
            }
            Err(e) => {
                rt.shutdown_background();
                Err(e)
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.masters {
            m.node = None;
            if let Some(rt) = m.runtime.take() {
                rt.shutdown_background();
            }
        }
    }
}

/// Whether no open database holds `path` (redb keeps an exclusive flock).
fn is_unlocked(path: &std::path::Path) -> bool {
    use rustix::fs::{FlockOperation, flock};
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    let free = flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok();
    if free {
        let _ = flock(&file, FlockOperation::Unlock);
    }
    free
}

/// Waits until `f` holds.
pub async fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A command that always applies (once the registry is bootstrapped).
pub fn add_framework(name: &str) -> Command {
    Command::AddFramework {
        info: keel_api::mesos::parse(serde_json::json!({ "name": name, "user": "test" }))
            .expect("framework info"),
        at: 1.0,
    }
}

pub fn bootstrap() -> Command {
    Command::Bootstrap {
        master_id: "keel-test".into(),
    }
}

/// Names of the registry's frameworks, in id order.
pub fn framework_names(reg: &Registry) -> Vec<String> {
    reg.frameworks().map(|f| f.info.name.clone()).collect()
}
