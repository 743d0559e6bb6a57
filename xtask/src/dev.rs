//! `cargo xtask dev`: a local cluster, one master and one agent, secured
//! the way a real one is (`docs/design/0006-trust.md`): a cluster CA made
//! on first use under `target/keel-dev/pki/`, TLS on the master's port,
//! authentication required, the agent admitted with a join token. The
//! keelctl config it writes (`target/keel-dev/keelctl.toml`) holds the CA
//! and an admin bearer token. `--plaintext` runs it open, as before.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_api::keel::{CreateToken, TokenKind};

use crate::cluster::{
    Api, build_release, release_bin, spawn_agent_with, spawn_master_with, wait_for_ctrl_c,
    wait_until,
};
use crate::root;

/// How long the dev admin's bearer token lasts.
const ADMIN_TOKEN_TTL: u64 = 30 * 24 * 3600;

pub fn dev(port: u16, agent_port: u16, fresh: bool, plaintext: bool) -> Result<()> {
    build_release()?;
    let base = root().join("target/keel-dev");
    if fresh && base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    std::fs::create_dir_all(&base)?;
    let master_addr = format!("127.0.0.1:{port}");
    let secure = (!plaintext)
        .then(|| Secure::prepare(&base, &master_addr))
        .transpose()?;
    let master_flags = secure
        .as_ref()
        .map(Secure::master_flags)
        .unwrap_or_default();
    let master = spawn_master_with(port, &base.join("master"), false, &master_flags)?;
    let api = match &secure {
        Some(s) => {
            let admin = s.admin()?;
            Api::with(port, |b| b.tls(Some(admin)))?
        }
        None => Api::new(port)?,
    };
    if !wait_until(Duration::from_secs(15), || api.healthy()) {
        bail!("keel-master did not answer on {master_addr}");
    }
    let mut agent_flags = Vec::new();
    let mut join_token = String::new();
    let mut config = format!("master = \"{master_addr}\"\n");
    if let Some(s) = &secure {
        let join = api.client().create_token(&CreateToken {
            kind: TokenKind::Join,
            principal: None,
            ttl_seconds: Some(3600),
            uses: Some(1),
        })?;
        let bearer = api.client().create_token(&CreateToken {
            kind: TokenKind::Bearer,
            principal: Some("admin".into()),
            ttl_seconds: Some(ADMIN_TOKEN_TTL),
            uses: None,
        })?;
        agent_flags = vec!["--tls-ca".into(), s.ca().display().to_string()];
        join_token = join.token;
        config.push_str(&format!(
            "tls_ca = \"{}\"\ntoken = \"{}\"\n",
            s.ca().display(),
            bearer.token
        ));
    }
    let config_file = base.join("keelctl.toml");
    std::fs::write(&config_file, &config)?;
    let agent = spawn_agent_with(
        &master_addr,
        agent_port,
        &base.join("agent"),
        false,
        &agent_flags,
        &[("KEEL_JOIN_TOKEN", join_token.as_str())],
    )?;
    if !wait_until(Duration::from_secs(30), || !api.active_agents().is_empty()) {
        bail!("the agent did not register within 30s");
    }
    let agents = api.active_agents();
    let id = agents.first().map_or("", |a| a.id.as_str());
    let keelctl = release_bin("keelctl");
    println!();
    println!("+ keelctl run -- 'echo hello from keel'");
    let status = Command::new(&keelctl)
        .env("KEEL_CONFIG", &config_file)
        .args(["run", "--", "echo hello from keel"])
        .status()
        .context("cannot run keelctl")?;
    if !status.success() {
        bail!("the demo task did not finish: {status}");
    }
    print_usage(&base, &config_file, port, agent_port, id, secure.as_ref());
    wait_for_ctrl_c();
    println!("stopping");
    let agent_ok = agent.stop()?;
    let master_ok = master.stop()?;
    if !(agent_ok && master_ok) {
        bail!("a process exited uncleanly (agent ok: {agent_ok}, master ok: {master_ok})");
    }
    Ok(())
}

fn print_usage(
    base: &Path,
    config: &Path,
    port: u16,
    agent_port: u16,
    id: &str,
    secure: Option<&Secure>,
) {
    let keelctl = release_bin("keelctl");
    let k = keelctl.display();
    println!();
    println!("Keel is running (work dirs under {}):", base.display());
    match secure {
        Some(s) => {
            println!("  master API:    https://127.0.0.1:{port}  (TLS, authentication required)");
            println!("  cluster CA:    {}", s.ca().display());
            println!("  keelctl:       export KEEL_CONFIG={}", config.display());
            println!("                 (the CA and an admin bearer token; see the file)");
        }
        None => println!("  master API:    http://127.0.0.1:{port}  (PLAINTEXT, open)"),
    }
    println!("  agent:         {id} on 127.0.0.1:{agent_port}");
    println!("  try:           {k} agents");
    println!("                 {k} run -- 'uname -a'");
    println!("                 {k} tasks");
    println!(
        "                 {k} tokens create --ttl 1h --uses 1   # a join token for another agent"
    );
    match secure {
        Some(s) => println!(
            "                 curl --cacert {} -H \"Authorization: Bearer $TOKEN\" https://127.0.0.1:{port}/master/state",
            s.ca().display()
        ),
        None => println!("                 curl -s http://127.0.0.1:{port}/master/state"),
    }
    println!("Press Ctrl-C to stop.");
}

/// The dev cluster's PKI: made once, kept across runs.
struct Secure {
    pki: PathBuf,
    master_stem: String,
}

impl Secure {
    fn prepare(base: &Path, master_addr: &str) -> Result<Secure> {
        let pki = base.join("pki");
        let keelctl = release_bin("keelctl");
        if !pki.join("ca.key").exists() {
            run(Command::new(&keelctl)
                .args(["pki", "init", "--dir"])
                .arg(&pki)
                .args(["--masters", master_addr, "--name", "keel dev CA"])
                // QEMU guests reach this machine's loopback as 10.0.2.2.
                .args(["--san", "10.0.2.2"]))?;
        }
        let master_stem = format!("master-{}", master_addr.replace(':', "-"));
        // Another port than the first run's: a certificate for it.
        if !pki.join(format!("{master_stem}.crt")).exists() {
            run(Command::new(&keelctl)
                .args(["pki", "issue", "--dir"])
                .arg(&pki)
                .args([
                    "--role",
                    "master",
                    "--name",
                    master_addr,
                    "--san",
                    "127.0.0.1",
                ]))?;
        }
        Ok(Secure { pki, master_stem })
    }

    fn ca(&self) -> PathBuf {
        self.pki.join("ca.crt")
    }

    fn master_flags(&self) -> Vec<String> {
        let p = |name: &str| self.pki.join(name).display().to_string();
        vec![
            "--tls-ca".into(),
            p("ca.crt"),
            "--tls-cert".into(),
            p(&format!("{}.crt", self.master_stem)),
            "--tls-key".into(),
            p(&format!("{}.key", self.master_stem)),
            "--tls-ca-key".into(),
            p("ca.key"),
            "--authenticate".into(),
        ]
    }

    /// The admin's certificate: how the dev tool itself calls the master.
    fn admin(&self) -> Result<keel_pki::Material> {
        Ok(keel_pki::Material::load(
            &self.ca(),
            Some((&self.pki.join("admin.crt"), &self.pki.join("admin.key"))),
        )?)
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?}: {status}");
    }
    Ok(())
}
