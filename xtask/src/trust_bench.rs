//! `cargo xtask bench-trust`: what trust costs, side by side in one run
//! (`docs/design/0006-trust.md`). Each round starts a master twice, in
//! turn: plaintext and open; then TLS, authentication (HTTP basic against
//! a credentials file) and ACLs that must be evaluated (`permissive:
//! false`, the bench's principal allowed). In each it measures:
//!
//! - ACCEPT -> TASK_RUNNING as a framework sees it (`launch_bench`);
//! - registry writes through the operator API (`UPDATE_WEIGHTS`, one
//!   master: each one fsynced to its log), p50 / p99;
//! - agent admission: from spawning `keel-agent` (fresh work dir) to the
//!   master listing it active: open admission against a join token, the
//!   master signing the agent's certificate request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use keel_api::keel::{CreateToken, TokenKind};
use keel_api::operator::WeightInfo;
use keel_client::{Client, Credentials};
use keel_pki::{Ca, Material, Role};

use crate::cluster::{self, Api, free_port, percentile, wait_until};

const PRINCIPAL: &str = "bench";
const SECRET: &str = "bench-secret";
const ACLS: &str = r#"{"permissive": false,
 "register_frameworks": [{"principals": {"values": ["bench"]}, "roles": {"type": "ANY"}}],
 "run_tasks": [{"principals": {"values": ["bench"]}, "users": {"type": "ANY"}}],
 "update_weights": [{"principals": {"values": ["bench"]}, "roles": {"type": "ANY"}}],
 "view_frameworks": [{"principals": {"values": ["bench"]}, "users": {"type": "ANY"}}],
 "view_tasks": [{"principals": {"values": ["bench"]}, "users": {"type": "ANY"}}],
 "view_agents": [{"principals": {"values": ["bench"]}, "agents": {"type": "ANY"}}],
 "manage_tokens": [{"principals": {"values": ["bench"]}, "tokens": {"type": "ANY"}}]}"#;

#[derive(Default)]
struct Figures {
    launches: Vec<f64>,
    writes: Vec<f64>,
    admissions: Vec<f64>,
}

pub fn run(rounds: usize, launches: usize, writes: usize) -> Result<()> {
    if rounds == 0 || launches == 0 || writes == 0 {
        bail!("--rounds, --launches and --writes must be at least 1");
    }
    cluster::build_release()?;
    let tmp = std::env::temp_dir().join(format!("keel-bench-trust-{}", std::process::id()));
    let mut plain = Figures::default();
    let mut secure = Figures::default();
    for round in 0..rounds {
        for tls in [false, true] {
            let dir = tmp.join(format!("{round}-{tls}"));
            let f = if tls { &mut secure } else { &mut plain };
            one(&dir, tls, launches, writes, f)?;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "keel bench-trust ({rounds} rounds, plaintext and TLS in turn, release build, loopback)"
    );
    for (name, p, s) in [
        (
            "ACCEPT -> TASK_RUNNING",
            &mut plain.launches,
            &mut secure.launches,
        ),
        (
            "registry write (1 master)",
            &mut plain.writes,
            &mut secure.writes,
        ),
        (
            "agent admitted (spawn -> active)",
            &mut plain.admissions,
            &mut secure.admissions,
        ),
    ] {
        p.sort_by(f64::total_cmp);
        s.sort_by(f64::total_cmp);
        let (p50, s50) = (percentile(p, 0.5), percentile(s, 0.5));
        println!(
            "{name:34} plaintext p50 {p50:.2} ms p99 {:.2} ms | TLS+auth p50 {s50:.2} ms p99 {:.2} ms | {:+.1} % at p50",
            percentile(p, 0.99),
            percentile(s, 0.99),
            (s50 / p50 - 1.0) * 100.0
        );
    }
    Ok(())
}

/// One master (and one agent): its figures into `f`.
fn one(dir: &Path, tls: bool, launches: usize, writes: usize, f: &mut Figures) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let setup = if tls {
        Some(Secure::new(dir, &addr)?)
    } else {
        None
    };
    let flags = setup.as_ref().map(Secure::master_flags).unwrap_or_default();
    let master = cluster::spawn_master_with(port, &dir.join("master"), true, &flags)?;
    let client = |b: keel_client::ClientBuilder| match &setup {
        Some(s) => b
            .tls(Some(s.client.clone()))
            .credentials(Some(Credentials::basic(PRINCIPAL, SECRET))),
        None => b,
    };
    let api = Api::with(port, client)?;
    if !wait_until(Duration::from_secs(15), || api.healthy()) {
        bail!("master did not start");
    }
    let mut agent_flags = Vec::new();
    if let Some(s) = &setup {
        let join = api.client().create_token(&CreateToken {
            kind: TokenKind::Join,
            principal: None,
            ttl_seconds: Some(600),
            uses: Some(1),
        })?;
        agent_flags = vec![
            "--tls-ca".into(),
            s.ca.display().to_string(),
            "--join-token".into(),
            join.token,
        ];
    }
    let start = Instant::now();
    let agent = cluster::spawn_agent_with(
        &addr,
        free_port(),
        &dir.join("agent"),
        true,
        &agent_flags,
        &[],
    )?;
    if !wait_until(Duration::from_secs(30), || !api.active_agents().is_empty()) {
        bail!("agent did not register (tls: {tls})");
    }
    f.admissions.push(start.elapsed().as_secs_f64() * 1000.0);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let async_client = client(Client::builder(&addr)).build()?;
    f.launches
        .extend(rt.block_on(crate::launch_bench::measure_with(&async_client, launches))?);
    f.writes
        .extend(rt.block_on(write_latencies(&async_client, writes))?);
    agent.stop()?;
    master.stop()?;
    Ok(())
}

async fn write_latencies(client: &Client, writes: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(writes);
    for i in 0..writes {
        let weights = vec![WeightInfo {
            role: "bench".into(),
            weight: 1.0 + (i % 7) as f64,
        }];
        let start = Instant::now();
        client.update_weights(weights).await?;
        out.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// The secured master's files: a CA, its certificate, credentials, ACLs.
struct Secure {
    ca: PathBuf,
    files: Vec<(&'static str, PathBuf)>,
    client: Material,
}

impl Secure {
    fn new(dir: &Path, addr: &str) -> Result<Secure> {
        let ca = Ca::create("bench CA")?;
        let master = ca.issue(
            Role::Master,
            addr,
            &["127.0.0.1".into()],
            Duration::from_secs(3600),
        )?;
        let write = |name: &str, text: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            Ok(p)
        };
        let credentials =
            format!(r#"{{"credentials": [{{"principal": "{PRINCIPAL}", "secret": "{SECRET}"}}]}}"#);
        let files = vec![
            ("--tls-ca", write("ca.crt", ca.cert_pem())?),
            ("--tls-cert", write("master.crt", &master.cert_pem)?),
            ("--tls-key", write("master.key", &master.key_pem)?),
            ("--tls-ca-key", write("ca.key", ca.key_pem())?),
            ("--credentials", write("credentials.json", &credentials)?),
            ("--acls", write("acls.json", ACLS)?),
        ];
        Ok(Secure {
            ca: dir.join("ca.crt"),
            files,
            client: Material::from_pem(ca.cert_pem(), None)?,
        })
    }

    fn master_flags(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
            .collect()
    }
}
