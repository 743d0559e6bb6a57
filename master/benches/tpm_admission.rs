//! Time to admit an agent by its TPM (`--agent-admission tpm`), against a
//! real master process and swtpm (tpm2-tss's swtpm TCTI on loopback):
//!
//! - `evidence`: the agent makes its EK and, on a new machine, its AK
//!   (kept afterwards in its work dir);
//! - `challenge`: `Register` sent -> `TpmChallenge` back (the master
//!   checks the evidence and makes the credential: RSA-OAEP to the EK);
//! - `answer`: the TPM activates the credential and quotes PCRs 0-7;
//! - `registered`: `TpmResponse` sent -> `Registered` (the master verifies,
//!   commits the agent, signs its certificate);
//! - `total`: all of it, from a TLS connection already open.
//!
//! `cargo build --release --bins -p keel-master -p keel-agent && cargo
//! bench -p keel-master --bench tpm_admission` (`-- --runs N`, default
//! 10). Each run is a new machine (a new AK), then the same machine again
//! (its AK kept), each admitted as a new agent. Then the `keel-agent`
//! binary itself, as `cargo xtask bench-trust` measures token admission:
//! from spawning it (fresh work dir, `--tpm` on the swtpm) to the master
//! listing it. Also the master's own work per attestation, in process.
//! Prints "skipped" without swtpm.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "../tests/support/tpm.rs"]
#[allow(dead_code)]
mod tpm;

use std::time::{Duration, Instant};

use keel_agent::trust::EsapiAttestor;
use keel_agent::trust::tpm::{Attestor, ChallengeIn};
use keel_attest::{BOOT_PCRS, Challenge};

fn arg(flag: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .and_then(|n| n.parse().ok())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `min / p50 / max` in milliseconds.
fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:8.1} {:8.1} {:8.1}",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    )
}

#[derive(Default)]
struct Column {
    evidence: Vec<Duration>,
    challenge: Vec<Duration>,
    answer: Vec<Duration>,
    registered: Vec<Duration>,
    total: Vec<Duration>,
}

fn main() {
    let runs = arg("--runs").unwrap_or(10);
    let Some(lab) = tpm::lab(tpm::Ek::Listed) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = lab.master.addr();
    let (mut new, mut kept) = (Column::default(), Column::default());
    for run in 0..runs {
        let attestor = EsapiAttestor::new(&lab.tcti, &lab.root.join(format!("machine-{run}")));
        for column in [&mut new, &mut kept] {
            let key = keel_pki::new_key().unwrap();
            let csr = keel_pki::request(&key).unwrap();
            let t = Instant::now();
            let evidence = attestor.evidence().unwrap();
            let evidence_took = t.elapsed();
            let (registered, phases) = rt.block_on(tpm::session(
                &addr,
                &lab.ca_pem,
                &evidence,
                &csr,
                |c: ChallengeIn| attestor.answer(&c).unwrap().into(),
            ));
            let registered = registered.unwrap();
            assert!(!registered.certificate_pem.is_empty());
            column.evidence.push(evidence_took);
            column.challenge.push(phases.challenge);
            column.answer.push(phases.answer);
            column.registered.push(phases.registered);
            column
                .total
                .push(evidence_took + phases.challenge + phases.answer + phases.registered);
        }
    }

    // The agent binary: spawned -> listed by the master.
    let mut spawned = Vec::new();
    let agent_bin = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("keel-agent")))
        .filter(|p| p.exists());
    if agent_bin.is_some() {
        for run in 0..runs {
            let before = lab.master.api.keel_agents().unwrap().agents.len();
            let dir = lab.root.join(format!("agent-{run}"));
            std::fs::create_dir_all(&dir).unwrap();
            let t = Instant::now();
            let mut agent =
                support::start_agent(&dir, &addr, &["--tls-ca", &lab.ca_file, "--tpm", &lab.tcti]);
            while lab.master.api.keel_agents().unwrap().agents.len() == before {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "{}",
                    agent.log_text()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            spawned.push(t.elapsed());
            agent.kill9();
        }
    }

    // The master's own work, in process.
    let attestor = EsapiAttestor::new(&lab.tcti, &lab.root.join("machine-0"));
    let evidence = attestor.evidence().unwrap();
    let (mut make, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let (challenge, msg) =
            Challenge::new(&evidence.ek_public, &evidence.ak_public, &BOOT_PCRS).unwrap();
        make.push(t.elapsed());
        let answer = attestor
            .answer(&ChallengeIn {
                credential_blob: msg.credential.credential_blob,
                encrypted_secret: msg.credential.encrypted_secret,
                nonce: msg.nonce,
                pcrs: msg.pcrs,
            })
            .unwrap();
        let t = Instant::now();
        challenge
            .verify(
                &answer.secret,
                &answer.attest,
                &answer.signature,
                &answer.pcr_values,
            )
            .unwrap();
        verify.push(t.elapsed());
    }

    println!("TPM admission, swtpm on loopback, {runs} runs; ms: min / p50 / max");
    println!(
        "{:<12} {:>26}   {:>26}",
        "", "new machine (AK made)", "same machine (AK kept)"
    );
    for (name, a, b) in [
        ("evidence", new.evidence, kept.evidence),
        ("challenge", new.challenge, kept.challenge),
        ("answer", new.answer, kept.answer),
        ("registered", new.registered, kept.registered),
        ("total", new.total, kept.total),
    ] {
        println!("{name:<12} {}   {}", summary(a), summary(b));
    }
    match agent_bin {
        Some(_) => println!(
            "keel-agent spawned -> listed by the master: {}",
            summary(spawned)
        ),
        None => println!("keel-agent spawned -> listed: skipped (build the keel-agent binary)"),
    }
    println!(
        "master, in process: make credential {} | verify {}",
        summary(make),
        summary(verify)
    );
}
