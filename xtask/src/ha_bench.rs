//! `cargo xtask bench-ha`: replicated masters on loopback.
//!
//! - leader kill -> new leader serving: SIGKILL the leader, time until
//!   another master answers `GET_HEALTH` with 200 (it leads and has rebuilt
//!   its state), restart the killed one, repeat;
//! - leader kill -> N agents re-registered with the new leader;
//! - registry write latency: `UPDATE_WEIGHTS` through the operator API
//!   (each one a Raft commit on 3 masters), and in the same run a 3-node
//!   etcd (Debian `etcd-server`) on loopback written through its v3 HTTP
//!   gateway (`POST /v3/kv/put`) by the same client.
//!
//! Each process's stderr goes to `<tmp>/<name>.log`; the directory is kept
//! when the run fails, or always with `KEEL_BENCH_KEEP=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keel_api::keel::AgentState;
use keel_api::operator::WeightInfo;
use serde_json::json;

use crate::cluster::{self, Api, release_bin, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_master(port: u16, dir: &Path, list: &str) -> Result<Proc> {
    let child = Command::new(release_bin("keel-master"))
        .args([
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--masters",
            list,
        ])
        .args([
            "--agent-timeout",
            "5s",
            "--heartbeat-interval",
            "500ms",
            "--agent-reregister-timeout",
            "60s",
        ])
        .arg("--work-dir")
        .arg(dir.join(format!("m{port}")))
        .stderr(log_file(dir, &format!("m{port}"))?)
        .spawn()
        .context("cannot start keel-master")?;
    Ok(Proc(child))
}

/// Appends a process's stderr to `DIR/NAME.log`, kept when the run fails.
fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?;
    Ok(Stdio::from(f))
}

/// `(last log index, applied index)` of a master, from Keel's masters view.
fn log_position(master: &Api) -> Option<(u64, u64)> {
    let log = master.client().masters().ok()?.log?;
    Some((log.last_index?, log.applied_index?))
}

/// Whether the master leads and serves: `GET_HEALTH` answered by it (a
/// follower redirects, which the pinned client reports as an error).
fn health(master: &Api) -> bool {
    master.client().get_health().unwrap_or(false)
}

/// A tiny blocking HTTP client on a current-thread runtime, for etcd's
/// gateway (Keel's masters are asked through keel-client).
mod etcd_http {
    use std::time::Duration;

    pub struct Client {
        rt: tokio::runtime::Runtime,
        http: reqwest::Client,
    }

    impl Client {
        pub fn new() -> Self {
            Client {
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime"),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client"),
            }
        }

        /// POSTs; the answer's status and body.
        fn post(&self, url: &str, body: &str) -> Option<(u16, String)> {
            self.rt.block_on(async {
                let r = self
                    .http
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .ok()?;
                let status = r.status().as_u16();
                Some((status, r.text().await.unwrap_or_default()))
            })
        }

        /// POSTs and returns the body of a 2xx answer.
        pub fn post_body(&self, url: &str, body: &str) -> Option<String> {
            self.post(url, body)
                .filter(|(status, _)| (200..300).contains(status))
                .map(|(_, body)| body)
        }

        pub fn post_url(&self, url: &str, body: &str) -> Option<u16> {
            self.post(url, body).map(|(status, _)| status)
        }
    }
}

fn leader_index(apis: &[Api], alive: &[bool]) -> Option<usize> {
    (0..apis.len()).find(|i| alive[*i] && health(&apis[*i]))
}

pub fn run(kills: usize, agents: usize, writes: usize) -> Result<()> {
    cluster::build_release()?;
    let tmp = std::env::temp_dir().join(format!("keel-bench-ha-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    match bench(&tmp, kills, agents, writes) {
        Ok(()) if std::env::var_os("KEEL_BENCH_KEEP").is_some() => {
            eprintln!("logs and stores kept in {}", tmp.display());
            Ok(())
        }
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(e.context(format!("logs and stores are kept in {}", tmp.display()))),
    }
}

fn bench(tmp: &Path, kills: usize, agents: usize, writes: usize) -> Result<()> {
    let tmp = tmp.to_path_buf();
    let http = etcd_http::Client::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut masters: Vec<Option<Proc>> = ports
        .iter()
        .map(|p| spawn_master(*p, &tmp, &list).map(Some))
        .collect::<Result<_>>()?;
    let apis: Vec<Api> = ports.iter().map(|p| Api::new(*p)).collect::<Result<_>>()?;
    let mut alive = vec![true; 3];
    if !wait_until(Duration::from_secs(30), || {
        leader_index(&apis, &alive).is_some()
    }) {
        bail!("no leader within 30s");
    }

    // Agents (started before the kills, so the last kill also measures re-registration).
    let mut agent_procs = Vec::new();
    for i in 0..agents {
        let child = Command::new(release_bin("keel-agent"))
            .args([
                "--master",
                &list,
                "--ip",
                "127.0.0.1",
                // The kernel picks the port (no race with other processes
                // for a port probed free); the agent reports the one it got.
                "--port",
                "0",
            ])
            .arg("--work-dir")
            .arg(tmp.join(format!("a{i}")))
            .args([
                "--registration-backoff-factor",
                "100ms",
                "--hostname",
                &format!("bench-{i}"),
            ])
            .stderr(log_file(&tmp, &format!("a{i}"))?)
            .spawn()?;
        agent_procs.push(Proc(child));
    }
    let all_active = |master: &Api| {
        master
            .client()
            .keel_agents()
            .map(|a| {
                a.agents
                    .iter()
                    .filter(|x| x.state == AgentState::Active)
                    .count()
            })
            .unwrap_or(0)
    };
    let l = leader_index(&apis, &alive).unwrap();
    if !wait_until(Duration::from_secs(120), || all_active(&apis[l]) == agents) {
        bail!("agents did not all register");
    }

    // Registry writes through the API, then etcd's.
    let keel_writes = write_latencies(ports[l], writes)?;
    let etcd_writes = etcd_latencies(&http, &tmp, writes).unwrap_or_else(|e| {
        eprintln!("etcd comparison skipped: {e:#}");
        Vec::new()
    });

    // Leader kills.
    let mut failovers = Vec::new();
    let mut rereg = Vec::new();
    for k in 0..kills {
        let l = leader_index(&apis, &alive).context("no leader")?;
        masters[l] = None; // SIGKILL
        alive[l] = false;
        let t0 = Instant::now();
        if !wait_until(Duration::from_secs(30), || {
            leader_index(&apis, &alive).is_some()
        }) {
            bail!("no new leader after kill {k}");
        }
        failovers.push(t0.elapsed().as_secs_f64() * 1000.0);
        let n = leader_index(&apis, &alive).unwrap();
        if agents > 0 && wait_until(Duration::from_secs(120), || all_active(&apis[n]) == agents) {
            rereg.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        masters[l] = Some(spawn_master(ports[l], &tmp, &list)?);
        alive[l] = true;
        // The next kill waits until the restarted master has applied the
        // leader's whole log: killing the leader before that could leave no
        // majority that holds every committed entry up to date.
        let target = log_position(&apis[n]).map(|p| p.0).unwrap_or(0);
        if !wait_until(Duration::from_secs(30), || {
            log_position(&apis[l]).is_some_and(|(_, applied)| applied >= target)
        }) {
            bail!(
                "restarted master on port {} did not catch up to index {target} in 30s",
                ports[l]
            );
        }
    }
    drop(agent_procs);
    drop(masters);

    for v in [&mut failovers, &mut rereg] {
        v.sort_by(f64::total_cmp);
    }
    println!("keel bench-ha (3 masters on loopback, release build)");
    if !failovers.is_empty() {
        println!(
            "leader kill -> new leader serving: p50 {:.0} ms, min {:.0} ms, max {:.0} ms over {} kills",
            percentile(&failovers, 0.5),
            failovers[0],
            failovers[failovers.len() - 1],
            failovers.len()
        );
    }
    if !rereg.is_empty() {
        println!(
            "leader kill -> {agents} agents re-registered: p50 {:.0} ms, max {:.0} ms",
            percentile(&rereg, 0.5),
            rereg[rereg.len() - 1]
        );
    }
    print_latencies("keel registry write (UPDATE_WEIGHTS via API)", &keel_writes);
    print_latencies("etcd 3.4 put (v3 HTTP gateway)", &etcd_writes);
    Ok(())
}

fn print_latencies(what: &str, v: &[f64]) {
    if v.is_empty() {
        return;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms over {} writes",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.len()
    );
}

/// Writes through the async client on a current-thread runtime, as
/// etcd's are: the blocking client's calls cross to its worker thread and
/// back (about 0.1 ms here), which is the client's cost, not the master's.
fn write_latencies(port: u16, n: usize) -> Result<Vec<f64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(async {
        keel_client::Client::builder(&format!("127.0.0.1:{port}"))
            .discover_leader(false)
            .timeout(Duration::from_secs(2))
            .build()
    })?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let weights = vec![WeightInfo {
            role: format!("r{}", i % 50),
            weight: 1.0 + (i % 7) as f64,
        }];
        let t = Instant::now();
        rt.block_on(client.update_weights(weights))
            .context("UPDATE_WEIGHTS")?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

fn etcd_latencies(http: &etcd_http::Client, tmp: &Path, n: usize) -> Result<Vec<f64>> {
    let etcd = PathBuf::from("/usr/bin/etcd");
    if !etcd.exists() {
        bail!("etcd is not installed (apt-get install etcd-server)");
    }
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial = (0..3)
        .map(|i| format!("e{i}=http://127.0.0.1:{}", peers[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = Vec::new();
    for i in 0..3 {
        let child = Command::new(&etcd)
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(tmp.join(format!("etcd{i}")))
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", peers[i]),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", peers[i]),
            ])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", clients[i]),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{}", clients[i]),
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        procs.push(Proc(child));
    }
    // Find the leader's client port: writes to it avoid a proxy hop, as
    // Keel's clients write to its leader.
    let put = |port: u16, i: usize| {
        let body = json!({"key": "a2V5", "value": cluster_b64(&format!("v{i}"))}).to_string();
        http.post_url(&format!("http://127.0.0.1:{port}/v3/kv/put"), &body)
    };
    if !wait_until(Duration::from_secs(30), || put(clients[0], 0) == Some(200)) {
        bail!("etcd cluster did not come up");
    }
    let leader = clients
        .iter()
        .copied()
        .find(|p| {
            http.post_body(&format!("http://127.0.0.1:{p}/v3/maintenance/status"), "{}")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["leader"].is_string() && v["leader"] == v["header"]["member_id"])
        })
        .unwrap_or(clients[0]);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        if put(leader, i) != Some(200) {
            bail!("etcd put failed");
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(procs);
    Ok(out)
}

fn cluster_b64(s: &str) -> String {
    keel_api::mesos::base64_encode(s.as_bytes())
}
