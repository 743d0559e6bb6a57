//! `--agent-admission tpm` end to end (`docs/design/0006-trust.md`,
//! "TPM"), with real processes and a real TPM 2.0 (swtpm on loopback,
//! tpm2-tss's swtpm TCTI): an agent whose EK is on `--tpm-ek-allow` is
//! admitted through the credential activation and a quote, gets a
//! certificate naming its EK, and keeps its agent id after a restart; an
//! agent whose EK is not listed waits as pending with no session until an
//! operator approves it; a denied EK is refused; an EK certificate (in
//! the TPM's NV, as a manufacturer writes it) from a `--tpm-ek-ca` admits. A client playing the
//! agent shows that a replayed quote (an earlier session's nonce) and an
//! AK the TPM does not hold are refused. Skipped, saying so, without
//! swtpm.

mod support;
#[path = "support/tpm.rs"]
mod tpm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_agent::trust::EsapiAttestor;
use keel_agent::trust::tpm::{Attestor, ChallengeIn, Evidence};
use keel_api::pb;
use keel_pki::Material;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::*;
use tpm::{Ek, Lab, lab};

const T: Duration = Duration::from_secs(60);

impl Lab {
    /// The agent binary in `<root>/<name>`, on the swtpm.
    fn agent(&self, name: &str) -> (Proc, PathBuf) {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let flags = ["--tls-ca", &self.ca_file, "--tpm", &self.tcti];
        (
            start_agent(&dir, &self.master.addr(), &flags),
            dir.join("agent"),
        )
    }

    fn agent_ids(&self) -> Vec<String> {
        self.master
            .api
            .keel_agents()
            .map(|a| a.agents.into_iter().map(|a| a.id).collect())
            .unwrap_or_default()
    }

    fn pending(&self) -> Vec<keel_api::keel::PendingAgent> {
        self.master.api.pending_agents(false).unwrap().agents
    }
}

fn logged(agent: &Proc, what: &str) {
    wait_for(
        T,
        what,
        || agent.log_text().contains(what),
        || agent.log_text(),
    );
}

#[test]
fn an_allowed_tpm_is_admitted_and_keeps_its_identity() {
    let Some(lab) = lab(Ek::Listed) else {
        return;
    };
    let (mut agent, dir) = lab.agent("a");
    wait_for(
        T,
        "the agent admitted",
        || lab.agent_ids().len() == 1,
        || format!("{}\n{}", agent.log_text(), lab.master.proc.log_text()),
    );
    let id = lab.agent_ids()[0].clone();
    let cert = dir.join("tls/agent.crt");
    wait_for(T, "its certificate", || cert.exists(), || agent.log_text());
    let material = Material::load(
        Path::new(&lab.ca_file),
        Some((&cert, &dir.join("tls/agent.key"))),
    )
    .unwrap();
    assert_eq!(material.identity().unwrap().unwrap().name, id);
    let pem = std::fs::read_to_string(&cert).unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let uri = format!("keel:ek:sha256:{}", lab.ek);
    assert!(
        der.windows(uri.len()).any(|w| w == uri.as_bytes()),
        "the certificate names the EK"
    );
    assert!(dir.join("tls/ak.pub").exists(), "the AK is kept");
    assert!(lab.pending().is_empty());

    // A restart (a reboot keeps the work disk): same id, on the
    // certificate, no new attestation.
    agent.kill9();
    let (again, _) = lab.agent("a");
    logged(&again, "registered with master");
    assert_eq!(lab.agent_ids(), [id]);
    let log = lab.master.proc.log_text();
    assert_eq!(log.matches("agent admitted by its TPM").count(), 1, "{log}");
}

#[test]
fn an_ek_certificate_from_a_known_manufacturer_admits() {
    let Some(lab) = lab(Ek::Certified) else {
        return;
    };
    let (agent, _) = lab.agent("a");
    wait_for(
        T,
        "the certified agent admitted",
        || lab.agent_ids().len() == 1,
        || format!("{}\n{}", agent.log_text(), lab.master.proc.log_text()),
    );
    let log = lab.master.proc.log_text();
    assert!(log.contains("Lab TPM Manufacturer EK CA"), "{log}");
    assert!(lab.pending().is_empty());
}

#[test]
fn a_pending_tpm_put_on_the_list_is_admitted_and_no_longer_pending() {
    let Some(lab) = lab(Ek::Unlisted) else {
        return;
    };
    let (agent, _) = lab.agent("a");
    wait_for(
        T,
        "the agent pending",
        || lab.pending().len() == 1,
        || agent.log_text(),
    );
    std::fs::write(lab.root.join("ek-allow"), format!("sha256:{}\n", lab.ek)).unwrap();
    wait_for(
        T,
        "the listed agent admitted",
        || lab.agent_ids().len() == 1,
        || agent.log_text(),
    );
    assert!(lab.pending().is_empty(), "{:?}", lab.pending());
    assert!(
        lab.master
            .api
            .pending_agents(true)
            .unwrap()
            .agents
            .is_empty()
    );
}

#[test]
fn an_unlisted_tpm_waits_until_an_operator_approves_it() {
    let Some(lab) = lab(Ek::Unlisted) else {
        return;
    };
    let (first, _) = lab.agent("a");
    wait_for(
        T,
        "the agent pending",
        || lab.pending().len() == 1,
        || format!("{}\n{}", first.log_text(), lab.master.proc.log_text()),
    );
    let pending = lab.pending().remove(0);
    assert_eq!(pending.ek_sha256, lab.ek);
    assert_eq!(pending.id, lab.ek[..16]);
    logged(&first, "keelctl agents approve");
    // Pending: no session, so no offers and no tasks.
    std::thread::sleep(Duration::from_secs(2));
    assert!(lab.agent_ids().is_empty());
    assert!(!first.log_text().contains("registered with master"));

    // Approved: in at its next attempt.
    let left = lab.master.api.decide_agent(&pending.id, true).unwrap();
    assert!(left.agents.is_empty());
    wait_for(
        T,
        "the approved agent admitted",
        || lab.agent_ids().len() == 1,
        || first.log_text(),
    );
    logged(&first, "registered with master");

    // Denied: another agent on this TPM (a reinstalled machine, no
    // certificate) is refused and not pending again.
    lab.master.api.decide_agent(&lab.ek, false).unwrap();
    let (second, _) = lab.agent("b");
    logged(&second, "was denied by an operator");
    assert!(lab.pending().is_empty());
    let all = lab.master.api.pending_agents(true).unwrap().agents;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, keel_api::keel::EkState::Denied);
}

async fn session(
    lab: &Lab,
    evidence: &Evidence,
    answer: impl FnOnce(ChallengeIn) -> pb::TpmResponse,
) -> Result<pb::Registered, tonic::Status> {
    tpm::session(&lab.master.addr(), &lab.ca_pem, evidence, "", answer)
        .await
        .0
}

#[test]
fn a_replayed_quote_and_an_ak_outside_the_tpm_are_refused() {
    let Some(lab) = lab(Ek::Listed) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tpm = EsapiAttestor::new(&lab.tcti, &lab.root.join("rogue"));
    let evidence = tpm.evidence().unwrap();

    // An honest session, admitted; its answer is kept.
    let mut kept = None;
    let registered = rt.block_on(session(&lab, &evidence, |c| {
        let answer = tpm.answer(&c).unwrap();
        kept = Some(answer.clone());
        answer.into()
    }));
    assert!(registered.is_ok(), "{registered:?}");
    let old = kept.unwrap();

    // The next session: this challenge's secret (the TPM activates it),
    // the old session's quote.
    let refused = rt
        .block_on(session(&lab, &evidence, |c| {
            let fresh = tpm.answer(&c).unwrap();
            pb::TpmResponse {
                secret: fresh.secret,
                quote_attest: old.attest.clone(),
                quote_signature: old.signature.clone(),
                pcr_values: old.pcr_values.clone(),
            }
        }))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("another nonce"), "{refused:?}");

    // An AK outside the TPM (a software key claiming fixedTPM): its quote
    // signs, but the credential made for it cannot be activated in this
    // TPM, with this TPM's own AK or at all.
    let soft = keel_attest::soft::SoftTpm::new().unwrap();
    let outside = Evidence {
        ak_public: soft.ak_public().to_vec(),
        ..evidence.clone()
    };
    let refused = rt
        .block_on(session(&lab, &outside, |c| {
            let activation = tpm.answer(&c);
            assert!(activation.is_err(), "the TPM activated it: {activation:?}");
            let (attest, signature, pcr_values) = soft.quote(&c.nonce, &c.pcrs).unwrap();
            pb::TpmResponse {
                secret: old.secret.clone(),
                quote_attest: attest,
                quote_signature: signature,
                pcr_values,
            }
        }))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused
            .message()
            .contains("not bound to the endorsement key"),
        "{refused:?}"
    );
    assert_eq!(
        lab.agent_ids().len(),
        1,
        "only the honest session registered"
    );
}
