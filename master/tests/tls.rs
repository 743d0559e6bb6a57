//! TLS on the masters' port (`docs/design/0006-trust.md`), as real
//! processes on loopback: three masters form a cluster over TLS and an
//! operator's write commits; an agent registers over TLS; the forged Raft
//! calls of the fault campaign (AppendEntries, Vote, and the Hello that
//! handed out what forging needs) are refused to a caller without a
//! certificate and to one with an agent's; a master certificate from
//! another CA and plaintext are refused at the handshake, with a log line.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_api::raft_pb::raft_service_client::RaftServiceClient;
use keel_api::raft_pb::{HelloRequest, RaftRequest};
use keel_pki::{Ca, Material, Role, TlsConnector};
use support::*;
use tonic::Code;

const T: Duration = Duration::from_secs(30);

/// Writes `role`'s certificate for `name` into `dir`; the flags naming it.
fn issue(ca: &Ca, dir: &Path, role: Role, name: &str, sans: &[String]) -> (PathBuf, PathBuf) {
    let issued = ca
        .issue(role, name, sans, Duration::from_secs(3600))
        .unwrap();
    let cert = dir.join(format!("{role}-{}.crt", name.replace(':', "-")));
    let key = cert.with_extension("key");
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    (cert, key)
}

fn weights(w: f64) -> Vec<keel_api::operator::WeightInfo> {
    vec![keel_api::operator::WeightInfo {
        role: "tls".into(),
        weight: w,
    }]
}

fn material(ca: &Ca, role: Option<Role>, name: &str) -> Material {
    match role {
        Some(role) => {
            let i = ca
                .issue(role, name, &[], Duration::from_secs(3600))
                .unwrap();
            Material::from_pem(ca.cert_pem(), Some((&i.cert_pem, &i.key_pem))).unwrap()
        }
        None => Material::from_pem(ca.cert_pem(), None).unwrap(),
    }
}

/// A Raft client of the master on `port`, over TLS as `who`.
async fn raft_client(port: u16, who: &Material) -> RaftServiceClient<tonic::transport::Channel> {
    let connector = TlsConnector::new(who.client_config(&[b"h2"]).unwrap(), T);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector_lazy(connector);
    RaftServiceClient::new(channel)
}

/// What the campaign sent: a Hello, then Vote and AppendEntries with a
/// header. The codes each call got.
async fn forge(port: u16, who: &Material) -> Vec<Result<(), tonic::Status>> {
    let mut c = raft_client(port, who).await;
    let request = || RaftRequest {
        header: Some(Default::default()),
        payload: br#"{"vote":{"leader_id":{"term":430,"node_id":1},"committed":true}}"#.to_vec(),
        data: Vec::new(),
    };
    vec![
        c.hello(HelloRequest::default()).await.map(|_| ()),
        c.vote(request()).await.map(|_| ()),
        c.append_entries(request()).await.map(|_| ()),
    ]
}

#[test]
fn masters_speak_tls_and_refuse_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = Ca::create("test cluster").unwrap();
    let ca_file = pki.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let (ports, list) = master_ports(3);
    let admin = material(&ca, Some(Role::Admin), "admin");
    let masters: Vec<Master> = ports
        .iter()
        .map(|p| {
            let addr = format!("127.0.0.1:{p}");
            let (cert, key) = issue(&ca, &pki, Role::Master, &addr, &["127.0.0.1".into()]);
            let d = tmp.path().join(format!("m{p}"));
            std::fs::create_dir_all(&d).unwrap();
            let flags = [
                "--masters".to_string(),
                list.clone(),
                "--tls-ca".into(),
                ca_file.display().to_string(),
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
                "--agent-admission".into(),
                "open".into(),
            ];
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            Master::start_tls(&d, *p, "3s", &flags, Some(admin.clone()))
        })
        .collect();

    // The cluster forms over TLS; an admin's write commits.
    let client = keel_client::blocking::Client::from_builder(
        keel_client::Client::builder(&list).tls(Some(admin.clone())),
    )
    .unwrap();
    wait_for(
        T,
        "a leader serving over TLS",
        || client.update_weights(weights(2.0)).is_ok(),
        || masters[0].proc.log_text(),
    );
    let view = client.masters().unwrap();
    assert_eq!(view.members.len(), 3, "{view:?}");

    // An agent registers over TLS (no certificate of its own: admission
    // is open in this test; `admission.rs` has tokens).
    let agent_dir = tmp.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let ca_arg = ca_file.display().to_string();
    let agent = start_agent(&agent_dir, &list, &["--tls-ca", &ca_arg]);
    wait_for(
        T,
        "the agent registered over TLS",
        || {
            client
                .keel_agents()
                .map(|a| a.agents.len() == 1)
                .unwrap_or(false)
        },
        || agent.log_text(),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = ports[0];
    // No certificate, and an agent's: every Raft call refused, Hello too.
    for who in [
        material(&ca, None, ""),
        material(&ca, Some(Role::Agent), "agent-1"),
    ] {
        for result in rt.block_on(forge(port, &who)) {
            let status = result.unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        }
    }
    // A master certificate from another CA: no connection at all.
    let other = Ca::create("another cluster").unwrap();
    for result in rt.block_on(forge(port, &material(&other, Some(Role::Master), "evil"))) {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    let log = masters[0].proc.log_text();
    assert!(log.contains("raft call refused: not a master"), "{log}");
    assert!(log.contains("TLS handshake refused"), "{log}");

    // Plaintext clients are refused.
    let plain = keel_client::blocking::Client::new(&format!("127.0.0.1:{port}")).unwrap();
    assert!(plain.masters().is_err());
    assert!(
        masters[0]
            .proc
            .log_text()
            .contains("plaintext client on the TLS port refused")
    );
    // The masters go on serving.
    client.update_weights(weights(3.0)).unwrap();
}
