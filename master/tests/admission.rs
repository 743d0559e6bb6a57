//! Agent admission by join token (`docs/design/0006-trust.md`), with real
//! processes: a TLS master that holds the CA key admits an agent that
//! presents a join token and issues it a certificate; the agent comes back
//! after a restart on that certificate (the token is spent); agents
//! without a token, with a spent one or an expired one are refused and get
//! no tasks; the agent's certificate cannot call the operator API.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_api::keel::{CreateToken, TokenKind};
use keel_pki::{Ca, Material};
use support::*;

const T: Duration = Duration::from_secs(30);

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    master: Master,
    ca_file: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let ca = Ca::create("admission test").unwrap();
    let (master, ca_file) = start_secure_master(&root, &ca, &[]);
    Setup {
        _tmp: tmp,
        root,
        master,
        ca_file: ca_file.display().to_string(),
    }
}

impl Setup {
    fn token(&self, ttl_seconds: u64, uses: u32) -> String {
        let request = CreateToken {
            kind: TokenKind::Join,
            principal: None,
            ttl_seconds: Some(ttl_seconds),
            uses: Some(uses),
        };
        self.master.api.create_token(&request).unwrap().token
    }

    fn agent(&self, name: &str, token: Option<&str>) -> (Proc, PathBuf) {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut flags = vec!["--tls-ca", &self.ca_file];
        if let Some(t) = token {
            flags.extend(["--join-token", t]);
        }
        (
            start_agent(&dir, &self.master.addr(), &flags),
            dir.join("agent"),
        )
    }

    /// An agent that knows only the CA's fingerprint (`keel.ca=`).
    fn pinned_agent(&self, name: &str, fingerprint: &str, token: &str) -> (Proc, PathBuf) {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let flags = ["--tls-ca-fingerprint", fingerprint, "--join-token", token];
        (
            start_agent(&dir, &self.master.addr(), &flags),
            dir.join("agent"),
        )
    }

    fn agents(&self) -> usize {
        self.master
            .api
            .keel_agents()
            .map(|a| a.agents.len())
            .unwrap_or(0)
    }
}

fn refused(agent: &Proc, why: &str) {
    wait_for(
        T,
        why,
        || agent.log_text().contains(why),
        || agent.log_text(),
    );
}

#[test]
fn join_tokens_admit_agents_once_and_certificates_bring_them_back() {
    let s = setup();
    let once = s.token(3600, 1);

    // No token: refused, and told how to get in.
    let (no_token, _) = s.agent("a-none", None);
    refused(&no_token, "start the agent with --join-token");

    // A token with one use: admitted, and a certificate for its agent id.
    let (mut first, first_dir) = s.agent("a-first", Some(&once));
    wait_for(
        T,
        "the agent admitted",
        || s.agents() == 1,
        || first.log_text(),
    );
    let cert = first_dir.join("tls").join("agent.crt");
    wait_for(
        T,
        "the agent's certificate",
        || cert.exists(),
        || first.log_text(),
    );
    let agent_id = s.master.api.keel_agents().unwrap().agents[0].id.clone();
    let material = Material::load(
        Path::new(&s.ca_file),
        Some((&cert, &first_dir.join("tls").join("agent.key"))),
    )
    .unwrap();
    assert_eq!(material.identity().unwrap().unwrap().name, agent_id);

    // The spent token admits nobody else.
    let (second, _) = s.agent("a-second", Some(&once));
    refused(&second, "no uses left");

    // The first agent comes back after a restart, on its certificate.
    first.kill9();
    let (again, _) = s.agent("a-first", Some(&once));
    wait_for(
        T,
        "re-registered on its certificate",
        || again.log_text().contains("registered with master"),
        || again.log_text(),
    );
    assert_eq!(s.agents(), 1);
    let log = s.master.proc.log_text();
    assert_eq!(
        log.matches("agent admitted by join token").count(),
        1,
        "{log}"
    );

    // An expired token.
    let short = s.token(1, 5);
    std::thread::sleep(Duration::from_millis(1500));
    let (late, _) = s.agent("a-late", Some(&short));
    refused(&late, "expired");

    // A garbage token.
    let (junk, _) = s.agent("a-junk", Some("keel1.zz.not-a-token"));
    refused(&junk, "join token refused");
    assert_eq!(s.agents(), 1, "refused agents are not registered");

    // The agent's certificate holds an agent session and nothing else.
    let as_agent = keel_client::blocking::Client::from_builder(
        keel_client::Client::builder(&s.master.addr()).tls(Some(material.clone())),
    )
    .unwrap();
    let err = as_agent
        .update_weights(vec![keel_api::operator::WeightInfo {
            role: "x".into(),
            weight: 2.0,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // (Raft refusing agent certificates: `tls.rs`.)
}

#[test]
fn an_agent_that_knows_only_the_fingerprint_fetches_the_ca() {
    let s = setup();
    let pem = std::fs::read_to_string(&s.ca_file).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
    let fingerprint = keel_pki::ca::fingerprint(&der);

    // A wrong fingerprint: the master's CA is refused, nothing is kept.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (liar, liar_dir) = s.pinned_agent("p-wrong", &wrong, &s.token(3600, 1));
    refused(&liar, "refusing the master's CA");
    assert!(!liar_dir.join("tls").join("ca.crt").exists());

    // The right one: fetched, kept, and the agent is admitted over TLS.
    let (agent, dir) = s.pinned_agent("p-right", &fingerprint, &s.token(3600, 1));
    wait_for(
        T,
        "the pinned agent admitted",
        || s.agents() == 1,
        || agent.log_text(),
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tls").join("ca.crt")).unwrap(),
        pem
    );
}
