//! The legacy paths Mesos tools call (the Mesos CLI starts with
//! `/slaves`): the paths libprocess delegates to the master process,
//! trailing slashes, `/master/state-summary`, `/master/roles`,
//! `/master/quota`, `/master/weights` with `?jsonp=`, and the form-encoded
//! writes `/master/teardown`, `/master/reserve`, `/master/unreserve`.

mod support;

use keel_api::legacy::{Frameworks, Slaves, Tasks};
use keel_api::legacy_summary::{Roles, StateSummary};
use keel_api::operator::{QuotaStatus, WeightInfo};
use serde::de::DeserializeOwned;
use support::scheduler::{Scheduler, framework};
use support::*;

fn get<T: DeserializeOwned>(port: u16, path: &str) -> T {
    let (status, headers, body) = http(port, "GET", path, &[], b"").unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    let ct = headers.iter().find(|(k, _)| k == "content-type");
    assert_eq!(
        ct.map(|(_, v)| v.as_str()),
        Some("application/json"),
        "{path}"
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn form(port: u16, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap();
    (status, body)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn legacy_reads_answer_on_every_path_mesos_tools_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _agent) = master_and_agent(tmp.path());
    let p = m.port;
    for path in ["/slaves", "/master/slaves", "/slaves/", "/master/slaves/"] {
        let s: Slaves = get(p, path);
        assert_eq!(s.slaves.len(), 1, "{path}");
    }
    let fw = Scheduler::subscribe(p, framework("legacy"));
    for path in ["/frameworks", "/master/frameworks/"] {
        let f: Frameworks = get(p, path);
        assert_eq!(f.frameworks.len(), 1, "{path}");
    }
    let _: Tasks = get(p, "/tasks");
    let _: Tasks = get(p, "/tasks/?limit=5");
    for path in ["/state-summary", "/master/state-summary"] {
        let s: StateSummary = get(p, path);
        assert_eq!(s.slaves.len(), 1);
        assert_eq!(s.slaves[0].tasks.get("TASK_RUNNING"), Some(&0));
        assert_eq!(s.frameworks.len(), 1);
        assert_eq!(s.frameworks[0].id, fw.framework_id);
        assert_eq!(s.frameworks[0].tasks.get("TASK_FINISHED"), Some(&0));
    }
    let (code, body) = http_get(p, "/master/state-summary").unwrap();
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200);
    assert!(raw["slaves"][0]["TASK_STAGING"].is_u64(), "{raw}");
    assert!(raw["slaves"][0]["framework_ids"].is_array(), "{raw}");
    assert!(raw["frameworks"][0]["slave_ids"].is_array(), "{raw}");

    m.api
        .update_weights(vec![WeightInfo {
            role: "eng".into(),
            weight: 2.0,
        }])
        .unwrap();
    for path in ["/roles", "/master/roles"] {
        let r: Roles = get(p, path);
        assert!(
            r.roles.iter().any(|r| r.name == "eng" && r.weight == 2.0),
            "{r:?}"
        );
    }
    for path in ["/weights", "/master/weights"] {
        let w: Vec<WeightInfo> = get(p, path);
        assert_eq!(w[0].role, "eng", "{path}");
    }
    for path in ["/quota", "/master/quota"] {
        let q: QuotaStatus = get(p, path);
        assert!(q.configs.is_empty(), "{path}");
    }
    let (status, headers, body) = http(p, "GET", "/master/roles?jsonp=cb", &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("cb({") && body.ends_with(");"), "{body}");
    assert!(headers.contains(&("content-type".into(), "text/javascript".into())));
    let (status, body) = http_get(p, "/no/such/").unwrap();
    assert_eq!(status, 404);
    assert!(body.starts_with("no such endpoint: /no/such"), "{body}");
}

#[test]
fn legacy_writes_take_the_v1_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, _agent) = master_and_agent(tmp.path());
    let p = m.port;
    let agent_id = m.keel_agents()[0].id.clone();
    let resources = r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5},"role":"eng","reservation":{"principal":"ops"}}]"#;
    let body = format!("slaveId={agent_id}&resources={}", encode(resources));
    let (status, text) = form(p, "/master/reserve", &body);
    assert_eq!(status, 202, "{text}");
    let s: Slaves = get(p, "/master/slaves");
    assert!(s.slaves[0].reserved_resources.contains_key("eng"), "{s:?}");
    let (status, text) = form(p, "/unreserve", &body);
    assert_eq!(status, 202, "{text}");
    let s: Slaves = get(p, "/master/slaves");
    assert!(!s.slaves[0].reserved_resources.contains_key("eng"), "{s:?}");

    let (status, text) = form(p, "/master/reserve", "resources=[]");
    assert_eq!(status, 400);
    assert!(text.contains("'slaveId'"), "{text}");
    let unknown = format!("slaveId=no-such&resources={}", encode(resources));
    let (status, _) = form(p, "/master/reserve", &unknown);
    assert_eq!(status, 400);

    let fw = Scheduler::subscribe(p, framework("torn-down"));
    let (status, text) = form(p, "/master/teardown", "");
    assert_eq!(status, 400);
    assert!(text.contains("'frameworkId'"), "{text}");
    let (status, _) = http_get(p, "/master/teardown").unwrap();
    assert_eq!(status, 405);
    let (status, text) = form(
        p,
        "/master/teardown",
        &format!("frameworkId={}", fw.framework_id),
    );
    assert_eq!(status, 200, "{text}");
    let f: Frameworks = get(p, "/master/frameworks");
    assert!(f.frameworks.is_empty());
    assert_eq!(f.completed_frameworks[0].id, fw.framework_id);
}
