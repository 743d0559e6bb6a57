//! An agent's session with TPM admission, played by a test: registers
//! with TPM evidence, answers the master's challenge as told, and times
//! each step. Used by `tests/tpm_admission.rs` and by the bench
//! `benches/tpm_admission.rs` (included by path: the other tests do not
//! link the agent's TPM code).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_agent::trust::EsapiAttestor;
use keel_agent::trust::tpm::Attestor;
use keel_agent::trust::tpm::{ChallengeIn, Evidence};
use keel_api::convert;
use keel_api::inventory::Inventory;
use keel_api::pb::{self, agent_message::Msg, master_message::Msg as MasterMsg};
use keel_api::resources::Resources;
use keel_attest::TpmPublic;
use keel_hardware_tests::swtpm::Swtpm;
use keel_pki::{Ca, Material};

use crate::support::{Master, start_secure_master};

pub struct Lab {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub master: Master,
    pub ca_pem: String,
    pub ca_file: String,
    pub tcti: String,
    /// The swtpm's EK fingerprint.
    pub ek: String,
    _tpm: Swtpm,
}

pub use crate::support::write_file as write;

/// How the lab's master judges EKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ek {
    /// The swtpm's EK on `--tpm-ek-allow`.
    Listed,
    /// Not on it.
    Unlisted,
    /// Not on it, but the swtpm holds an EK certificate from a
    /// manufacturer CA in `--tpm-ek-ca`.
    Certified,
}

/// A TLS master with `--agent-admission tpm` and a swtpm.
pub fn lab(ek_policy: Ek) -> Option<Lab> {
    if !Swtpm::installed() {
        eprintln!("skipped: swtpm is not installed (Debian package swtpm)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let tpm = Swtpm::start_tcp(&root.join("swtpm")).unwrap();
    let tcti = tpm.tcti().unwrap();
    let probe = EsapiAttestor::new(&tcti, &root.join("probe"))
        .evidence()
        .unwrap();
    let ek = TpmPublic::parse(&probe.ek_public).unwrap().fingerprint();

    let ca = Ca::create("tpm admission test").unwrap();
    let listing = match ek_policy {
        Ek::Listed => format!("# the lab's swtpm\nsha256:{ek}\n"),
        _ => "# nobody yet\n".to_string(),
    };
    let allow = write(&root, "ek-allow", &listing);
    let path = |p: &PathBuf| p.display().to_string();
    let mut flags: Vec<String> = vec![
        "--agent-admission".into(),
        "tpm".into(),
        "--tpm-ek-allow".into(),
        path(&allow),
    ];
    if ek_policy == Ek::Certified {
        let makers = root.join("ek-ca");
        std::fs::create_dir_all(&makers).unwrap();
        let (maker, cert) = manufacturer(&TpmPublic::parse(&probe.ek_public).unwrap().key);
        write(&makers, "maker.pem", &maker);
        provision_ek_certificate(&tcti, &cert);
        flags.extend(["--tpm-ek-ca".into(), path(&makers)]);
    }
    let (master, ca_file) = start_secure_master(&root, &ca, &flags);
    Some(Lab {
        _tmp: tmp,
        root,
        master,
        ca_pem: ca.cert_pem().to_string(),
        ca_file: path(&ca_file),
        tcti,
        ek,
        _tpm: tpm,
    })
}

/// A TPM manufacturer's CA (PEM) and the EK certificate (DER) it issued
/// for `ek`.
fn manufacturer(ek: &keel_attest::PublicKey) -> (String, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Lab TPM Manufacturer EK CA");
    let ca = params.self_signed(&key).unwrap();
    let issuer = Issuer::new(params, key);
    let spki = keel_attest::key::spki_der(ek).unwrap();
    let ek_key = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    let cert = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .signed_by(&ek_key, &issuer)
        .unwrap();
    (ca.pem(), cert.der().to_vec())
}

/// Writes `der` where a TPM keeps its RSA EK certificate (NV index
/// 0x01c00002, defined by the platform, as a manufacturer does).
fn provision_ek_certificate(tcti: &str, der: &[u8]) {
    use std::str::FromStr;
    use tss_esapi::attributes::NvIndexAttributesBuilder;
    use tss_esapi::handles::NvIndexTpmHandle;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::interface_types::resource_handles::{NvAuth, Provision};
    use tss_esapi::structures::{MaxNvBuffer, NvPublicBuilder};

    let mut ctx =
        tss_esapi::Context::new(tss_esapi::tcti_ldr::TctiNameConf::from_str(tcti).unwrap())
            .unwrap();
    let attributes = NvIndexAttributesBuilder::new()
        .with_pp_write(true)
        .with_pp_read(true)
        .with_owner_read(true)
        .with_auth_read(true)
        .with_no_da(true)
        .with_platform_create(true)
        .build()
        .unwrap();
    let public = NvPublicBuilder::new()
        .with_nv_index(NvIndexTpmHandle::new(0x01c0_0002).unwrap())
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_data_area_size(der.len())
        .build()
        .unwrap();
    let index = ctx
        .execute_with_nullauth_session(|c| c.nv_define_space(Provision::Platform, None, public))
        .unwrap();
    let max = tss_esapi::abstraction::nv::max_nv_buffer_size(&mut ctx).unwrap();
    for (i, chunk) in der.chunks(max).enumerate() {
        let data = MaxNvBuffer::try_from(chunk.to_vec()).unwrap();
        ctx.execute_with_nullauth_session(|c| {
            c.nv_write(NvAuth::Platform, index, data, (i * max) as u16)
        })
        .unwrap();
    }
}

pub fn info(hostname: &str) -> pb::AgentInfo {
    pb::AgentInfo {
        hostname: hostname.into(),
        ip: "127.0.0.1".into(),
        port: 5051,
        resources: convert::resources_to_pb(&Resources::parse("cpus:1;mem:64").unwrap()),
        attributes: Vec::new(),
        version: "test".into(),
        inventory: Some(convert::inventory_to_pb(&Inventory::default())),
    }
}

/// How long each step of a session took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// TLS connection and the stream opened.
    pub connect: Duration,
    /// `Register` sent -> `TpmChallenge` received (the master makes the
    /// credential).
    pub challenge: Duration,
    /// The agent's answer (the TPM activates and quotes).
    pub answer: Duration,
    /// `TpmResponse` sent -> `Registered` (the master verifies, commits
    /// the agent, signs its certificate).
    pub registered: Duration,
}

/// One session at `addr` (TLS, checked against `ca_pem`): registers with
/// `evidence` (and `csr_pem`), answers the challenge with `answer`; what
/// the master said last.
pub async fn session(
    addr: &str,
    ca_pem: &str,
    evidence: &Evidence,
    csr_pem: &str,
    answer: impl FnOnce(ChallengeIn) -> pb::TpmResponse,
) -> (Result<pb::Registered, tonic::Status>, Phases) {
    let mut phases = Phases::default();
    let t = Instant::now();
    let tls = Material::from_pem(ca_pem, None)
        .unwrap()
        .client_config(&[b"h2"])
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(keel_pki::TlsConnector::new(tls, Duration::from_secs(5)))
        .await
        .unwrap();
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let register = pb::Register {
        info: Some(info("rogue")),
        tpm: Some(evidence.clone().into()),
        csr_pem: csr_pem.to_string(),
        ..Default::default()
    };
    phases.connect = t.elapsed();
    let t = Instant::now();
    // Sent first: the master answers the stream once it has `Register`.
    tx.send(pb::AgentMessage {
        msg: Some(Msg::Register(register)),
    })
    .await
    .unwrap();
    let opened = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let mut inbound = match opened {
        Ok(r) => r.into_inner(),
        Err(status) => return (Err(status), phases),
    };
    let challenge = match inbound.next().await {
        Some(Ok(pb::MasterMessage {
            msg: Some(MasterMsg::TpmChallenge(c)),
        })) => c,
        Some(Err(status)) => return (Err(status), phases),
        other => panic!("expected a challenge, got {other:?}"),
    };
    phases.challenge = t.elapsed();
    let t = Instant::now();
    let response = answer(ChallengeIn::from(&challenge));
    phases.answer = t.elapsed();
    let t = Instant::now();
    tx.send(pb::AgentMessage {
        msg: Some(Msg::TpmResponse(response)),
    })
    .await
    .unwrap();
    let last = match inbound.next().await {
        Some(Ok(pb::MasterMessage {
            msg: Some(MasterMsg::Registered(r)),
        })) => Ok(r),
        Some(Err(status)) => Err(status),
        other => panic!("expected registered or a refusal, got {other:?}"),
    };
    phases.registered = t.elapsed();
    (last, phases)
}
