//! The typed answers against what a real master sent: every fixture under
//! `testdata/http/` (captured by `testdata/http/capture.sh` from a master
//! and an agent on loopback, with finished and running tasks, a reservation,
//! weights, quota and a persistent volume) reads into its type and writes
//! back as the same JSON. Numbers compare by value: a framework's
//! `"failover_timeout": 60` comes back as `60.0`, which is the same JSON
//! number.
//!
//! One difference is on purpose: `framework_info` is the typed
//! `FrameworkInfo`, so it comes back as Mesos emits it, without what the
//! framework sent that means nothing (`"capabilities": []`, `null`s,
//! unknown fields); the fixtures were captured while the master still
//! echoed the framework's JSON.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use keel_api::inventory::Inventory;
use keel_api::operator::{Response, VersionInfo};
use keel_api::{keel, legacy};

fn fixture(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/http")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Equal JSON, numbers compared as numbers; the first difference otherwise.
fn difference(at: &str, a: &Json, b: &Json) -> Option<String> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) if x.as_f64() == y.as_f64() => None,
        (Json::Object(x), Json::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let path = format!("{at}.{k}");
            match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => difference(&path, p, q),
                (Some(Json::Array(a)), None) if a.is_empty() && at.ends_with("framework_info") => {
                    None
                }
                (p, q) => Some(format!("{path}: {p:?} != {q:?}")),
            }
        }),
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(&format!("{at}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{at}: {a} != {b}")),
    }
}

fn round_trips<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let captured = fixture(name);
    let typed: T = serde_json::from_value(captured.clone())
        .unwrap_or_else(|e| panic!("{name} does not read: {e}"));
    let written = serde_json::to_value(&typed).unwrap();
    if let Some(d) = difference("", &captured, &written) {
        panic!("{name} changed: {d}");
    }
    typed
}

#[test]
fn operator_answers_round_trip() {
    for call in [
        "get_health",
        "get_flags",
        "get_version",
        "get_master",
        "get_agents",
        "get_state",
        "get_frameworks",
        "get_tasks",
        "get_roles",
        "get_weights",
        "get_quota",
    ] {
        let r: Response = round_trips(&format!("operator/{call}.json"));
        assert_eq!(r.kind(), call.to_uppercase());
    }
}

#[test]
fn the_fixtures_hold_what_they_are_for() {
    let Response::GetState(state) = round_trips("operator/get_state.json") else {
        panic!("not GET_STATE");
    };
    let tasks = &state.get_tasks;
    assert_eq!(tasks.tasks.len(), 1);
    assert_eq!(tasks.completed_tasks.len(), 1);
    let long = &tasks.tasks[0];
    assert!(long.labels.is_some() && long.container.is_some() && long.discovery.is_some());
    assert!(long.kill_policy.is_some());
    let fws = &state.get_frameworks;
    assert_eq!(
        fws.frameworks[0].framework_info.principal.as_deref(),
        Some("fx")
    );
    assert!(!fws.frameworks[0].offers().is_empty());
    assert!(fws.completed_frameworks[0].offers.is_none());
    let agent = &state.get_agents.agents[0];
    assert!(agent.total_resources.iter().any(|r| {
        r.disk
            .as_ref()
            .and_then(|d| d.persistence.as_ref())
            .is_some_and(|p| p.id == "fixture-data")
    }));
}

#[test]
fn legacy_answers_round_trip() {
    let state: legacy::State = round_trips("legacy/state.json");
    assert_eq!(state.slaves.len(), 1);
    assert_eq!(state.frameworks[0].role.as_deref(), Some("eng"));
    round_trips::<legacy::Slaves>("legacy/slaves.json");
    round_trips::<legacy::Frameworks>("legacy/frameworks.json");
    round_trips::<legacy::Tasks>("legacy/tasks.json");
    round_trips::<legacy::Flags>("legacy/flags.json");
    round_trips::<VersionInfo>("legacy/version.json");
}

#[test]
fn keel_answers_round_trip() {
    let agents: keel::Agents = round_trips("keel/agents.json");
    assert_eq!(agents.agents[0].state, keel::AgentState::Active);
    let detail: keel::AgentDetail = round_trips("keel/agent.json");
    assert_eq!(detail.summary, agents.agents[0]);
    round_trips::<Inventory>("keel/inventory.json");
    round_trips::<keel::Cluster>("keel/masters.json");
    let e: keel::Error = round_trips("keel/error.json");
    assert!(e.error.contains("nope"));
}

#[test]
fn differences_are_found() {
    use serde_json::json;
    let d = |a: Json, b: Json| difference("", &a, &b);
    assert_eq!(
        d(json!({"a": [1, {"b": 2}]}), json!({"a": [1.0, {"b": 2.0}]})),
        None
    );
    assert!(d(json!({"a": 1, "b": 2}), json!({"a": 1, "b": 3})).is_some());
    assert!(d(json!({"a": 1}), json!({"a": 1, "b": null})).is_some());
    assert!(d(json!({"a": []}), json!({})).is_some());
    assert!(d(json!([1, 2]), json!([1])).is_some());
}
