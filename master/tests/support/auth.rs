//! A master with `--credentials` and `--acls`, and requests on the wire
//! with each kind of credentials.

#![allow(dead_code)]

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keel_api::mesos::FrameworkInfo;
use keel_client::blocking::{self, Subscription};
use keel_client::scheduler::Subscribe;
use keel_client::{Client, ClientError, Credentials};

use super::{Master, Reply, free_port, http};

/// principal, secret
pub const FW: (&str, &str) = ("fw", "fw-secret");
pub const OPS: (&str, &str) = ("ops", "ops-secret");
pub const VIEWER: (&str, &str) = ("viewer", "viewer-secret");
pub const NOBODY: (&str, &str) = ("nobody", "nobody-secret");

/// `fw` runs frameworks in `eng` and `*` as alice; `ops` operates;
/// `viewer` reads; `nobody` may do nothing; what no rule names is refused.
pub const ACLS: &str = r#"{
  "permissive": false,
  "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["eng", "*"]}}],
  "run_tasks": [{"principals": {"values": ["fw"]}, "users": {"values": ["alice"]}}],
  "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
  "reserve_resources": [{"principals": {"values": ["ops", "fw"]}, "roles": {"type": "ANY"}}],
  "unreserve_resources": [{"principals": {"values": ["ops", "fw"]}, "reserver_principals": {"type": "ANY"}}],
  "create_volumes": [{"principals": {"values": ["fw", "ops"]}, "roles": {"type": "ANY"}}],
  "destroy_volumes": [{"principals": {"values": ["fw", "ops"]}, "creator_principals": {"type": "ANY"}}],
  "resize_volumes": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "update_quotas": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "get_quotas": [{"principals": {"values": ["ops", "viewer"]}, "roles": {"type": "ANY"}}],
  "view_roles": [{"principals": {"values": ["ops", "viewer"]}, "roles": {"type": "ANY"}}],
  "view_frameworks": [{"principals": {"values": ["ops", "viewer", "fw"]}, "users": {"type": "ANY"}}],
  "view_tasks": [{"principals": {"values": ["ops", "viewer", "fw"]}, "users": {"type": "ANY"}}],
  "view_flags": [{"principals": {"values": ["ops", "viewer"]}, "flags": {"type": "ANY"}}],
  "view_agents": [{"principals": {"values": ["ops", "viewer"]}, "agents": {"type": "ANY"}}],
  "manage_masters": [{"principals": {"values": ["ops"]}, "masters": {"type": "ANY"}}],
  "manage_tokens": [{"principals": {"values": ["ops"]}, "tokens": {"type": "ANY"}}],
  "mark_agents_gone": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "set_log_level": [{"principals": {"values": ["ops"]}, "level": {"type": "ANY"}}],
  "update_maintenance_schedules": [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}],
  "get_maintenance_schedules": [{"principals": {"values": ["ops", "viewer"]}, "machines": {"type": "ANY"}}],
  "get_maintenance_statuses": [{"principals": {"values": ["ops", "viewer"]}, "machines": {"type": "ANY"}}],
  "start_maintenances": [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}],
  "stop_maintenances": [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}],
  "drain_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "deactivate_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "reactivate_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}]
}"#;

/// Writes the credentials (JSON, as Mesos reads them) and the ACLs; the
/// master flags naming them.
pub fn trust_files(dir: &Path) -> Vec<String> {
    let entries: Vec<serde_json::Value> = [FW, OPS, VIEWER, NOBODY]
        .iter()
        .map(|(p, s)| serde_json::json!({"principal": p, "secret": s}))
        .collect();
    let creds = serde_json::json!({ "credentials": entries });
    let creds_path = dir.join("credentials.json");
    std::fs::write(&creds_path, creds.to_string()).unwrap();
    let acls_path = dir.join("acls.json");
    std::fs::write(&acls_path, ACLS).unwrap();
    vec![
        "--credentials".into(),
        creds_path.display().to_string(),
        "--acls".into(),
        acls_path.display().to_string(),
    ]
}

/// A master that requires authentication, under `dir`.
pub fn secured_master(dir: &Path) -> Master {
    let flags = trust_files(dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Master::start_with(dir, free_port(), "5s", &flags)
}

/// `Authorization: Basic ...`.
pub fn basic((principal, secret): (&str, &str)) -> String {
    format!("Basic {}", STANDARD.encode(format!("{principal}:{secret}")))
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As<'a> {
    Nobody,
    Basic((&'a str, &'a str)),
    Header(&'a str),
}

impl As<'_> {
    fn header(self) -> Option<String> {
        match self {
            As::Nobody => None,
            As::Basic(c) => Some(basic(c)),
            As::Header(h) => Some(h.to_string()),
        }
    }
}

/// A request with `who`'s credentials and `extra` headers.
pub fn request(
    port: u16,
    who: As<'_>,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let auth = who.header();
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    http(port, method, path, &headers, body.as_bytes()).expect("request")
}

/// An operator call (`POST /api/v1`).
pub fn operator(port: u16, who: As<'_>, body: &str) -> Reply {
    request(
        port,
        who,
        "POST",
        "/api/v1",
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A scheduler call on `stream`.
pub fn scheduler(port: u16, who: As<'_>, stream: &str, body: &str) -> Reply {
    let headers = [
        ("Content-Type", "application/json"),
        ("Mesos-Stream-Id", stream),
    ];
    request(port, who, "POST", "/api/v1/scheduler", &headers, body)
}

/// The value of `name` in a reply's headers, all of them.
pub fn header_values(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .1
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A keel-client of the master at `port` with `credentials`.
pub fn client(port: u16, credentials: Option<Credentials>) -> blocking::Client {
    let builder = Client::builder(&format!("127.0.0.1:{port}"))
        .discover_leader(false)
        .credentials(credentials);
    blocking::Client::from_builder(builder).expect("client")
}

pub fn creds((principal, secret): (&str, &str)) -> Option<Credentials> {
    Some(Credentials::basic(principal, secret))
}

/// SUBSCRIBE `info` with `credentials`.
pub fn subscribe(
    port: u16,
    credentials: Option<Credentials>,
    info: FrameworkInfo,
) -> Result<(blocking::Client, Subscription), ClientError> {
    let c = client(port, credentials);
    let sub = c.subscribe(Subscribe::new(info))?;
    Ok((c, sub))
}
