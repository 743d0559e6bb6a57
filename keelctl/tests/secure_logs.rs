//! The agent's port on a cluster with TLS (`docs/design/0006-trust.md`,
//! "The agent's port"): a master with its CA key, credentials and ACLs; an
//! agent admitted by join token, which serves its port over TLS with the
//! certificate the master issued. `keelctl logs` reads a task's output
//! through a sandbox grant; a principal without `access_sandboxes` gets
//! none; the port refuses plaintext, unauthenticated requests, and grants
//! outside their frameworks.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keel_pki::{Ca, Material, Role};
use support::{bin, free_port, keelctl_env, spawn, task_id, text};

const ACLS: &str = r#"{"permissive": true,
  "access_sandboxes": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}]}"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

struct Secure {
    master: String,
    ca: String,
    agent_port: u16,
    root: std::path::PathBuf,
}

impl Secure {
    fn keelctl(&self, who: &str, args: &[&str]) -> Output {
        let secret = format!("{who}-secret");
        let home = self.root.display().to_string();
        let env = [
            ("HOME", home.as_str()),
            ("KEEL_PRINCIPAL", who),
            ("KEEL_SECRET", secret.as_str()),
        ];
        let mut all = vec!["--tls-ca", self.ca.as_str()];
        all.extend_from_slice(args);
        keelctl_env(&self.master, &env, &all)
    }
}

#[test]
fn sandboxes_are_read_through_grants_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ca = Ca::create("secure logs").unwrap();
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let m = ca
        .issue(
            Role::Master,
            &master,
            &["127.0.0.1".into()],
            Duration::from_secs(3600),
        )
        .unwrap();
    let ca_file = write(root, "ca.crt", ca.cert_pem());
    let _m = spawn(
        Command::new(bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--work-dir")
            .arg(root.join("master"))
            .args(["--tls-ca", &ca_file])
            .args(["--tls-cert", &write(root, "m.crt", &m.cert_pem)])
            .args(["--tls-key", &write(root, "m.key", &m.key_pem)])
            .args(["--tls-ca-key", &write(root, "ca.key", ca.key_pem())])
            .args([
                "--credentials",
                &write(root, "creds", "ops ops-secret\nviewer viewer-secret\n"),
            ])
            .args(["--acls", &write(root, "acls.json", ACLS)]),
        root.join("master.log"),
    );
    let s = Secure {
        master: master.clone(),
        ca: ca_file.clone(),
        agent_port: free_port(),
        root: root.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        let out = s.keelctl("ops", &["tokens", "create", "--uses", "1"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        assert!(Instant::now() < deadline, "no join token: {}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    let _a = spawn(
        Command::new(bin("keel-agent"))
            .args(["--master", &master, "--ip", "127.0.0.1"])
            .args(["--port", &s.agent_port.to_string()])
            .arg("--work-dir")
            .arg(root.join("agent"))
            .args(["--tls-ca", &ca_file, "--join-token", &token])
            .args(["--registration-backoff-factor", "200ms"])
            .args(["--resources", "cpus:2;mem:1024"]),
        root.join("agent.log"),
    );
    loop {
        let out = s.keelctl("ops", &["agents", "-o", "json"]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"active\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent never registered");
        std::thread::sleep(Duration::from_millis(200));
    }

    let run = s.keelctl("ops", &["run", "--", "echo secret-out"]);
    assert!(run.status.success(), "{}", text(&run));
    let id = task_id(&String::from_utf8_lossy(&run.stderr));

    // ops may access sandboxes: a grant, then the file over TLS.
    let logs = s.keelctl("ops", &["logs", &id]);
    assert!(logs.status.success(), "{}", text(&logs));
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "secret-out\n");
    // viewer may not: the master signs no grant.
    let denied = s.keelctl("viewer", &["logs", &id]);
    assert!(!denied.status.success());
    assert!(
        text(&denied).contains("403") && text(&denied).contains("access sandboxes"),
        "{}",
        text(&denied)
    );

    let agent_id = agent_id(&s);
    port_refuses_what_it_should(&s, &ca, &agent_id);
}

fn agent_id(s: &Secure) -> String {
    let out = s.keelctl("ops", &["agents", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = v.get("agents").unwrap_or(&v);
    agents[0]["id"].as_str().unwrap().to_string()
}

fn port_refuses_what_it_should(s: &Secure, ca: &Ca, agent_id: &str) {
    // Plaintext gets no HTTP answer.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.agent_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /state HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "plaintext was served");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let anon = Material::from_pem(ca.cert_pem(), None).unwrap();
    let get = |material: &Material, bearer: Option<&str>, path: &str| {
        let config = keel_pki::agent_port::agent_client_config(material, agent_id).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(&config))
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}{path}", s.agent_port);
        rt.block_on(async {
            let mut req = http.get(url);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    assert_eq!(get(&anon, None, "/health").0, 200);
    let (status, reason) = get(&anon, None, "/files/browse?path=/");
    assert_eq!(status, 401, "{reason}");
    assert_eq!(get(&anon, Some("keelgrant1.junk"), "/state").0, 401);
    // An operator's certificate reads every sandbox; a reader's none.
    let cert = |role: Role| {
        let c = ca
            .issue(role, "someone", &[], Duration::from_secs(600))
            .unwrap();
        Material::from_pem(ca.cert_pem(), Some((&c.cert_pem, &c.key_pem))).unwrap()
    };
    let sandboxes = format!("/files/browse?path={}/agent/slaves", s.root.display());
    assert_eq!(get(&cert(Role::Operator), None, &sandboxes).0, 200);
    let (status, reason) = get(&cert(Role::Reader), None, &sandboxes);
    assert_eq!(status, 403, "{reason}");
    assert_eq!(get(&cert(Role::Reader), None, "/state").0, 200);
    // A grant opens its frameworks' sandboxes only.
    let client = keel_client::Client::builder(&s.master)
        .tls(Some(anon.clone()))
        .credentials(Some(keel_client::Credentials::Basic {
            principal: "ops".into(),
            secret: "ops-secret".into(),
        }))
        .build()
        .unwrap();
    let grant = rt
        .block_on(client.sandbox_grant(agent_id, &["some-other-framework".into()]))
        .unwrap();
    let (status, reason) = get(&anon, Some(&grant.token), &sandboxes);
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("access_sandboxes"), "{reason}");
}
