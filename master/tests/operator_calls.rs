//! The cheaper operator calls on a real master: GET_EXECUTORS,
//! GET_OPERATIONS (what it lists: `engine/tests/operations.rs`),
//! SET_QUOTA/REMOVE_QUOTA (the deprecated quota calls, on the UPDATE_QUOTA
//! code), GET_LOGGING_LEVEL/SET_LOGGING_LEVEL (the tracing filter, for a
//! while).

mod support;

use std::time::Duration;

use serde_json::{Value as Json, json};
use support::*;

fn call(m: &Master, body: Json) -> (u16, String) {
    let (status, _, text) = post_json(m.port, "/api/v1", &body.to_string());
    (status, text)
}

fn answer(m: &Master, ty: &str) -> Json {
    let (status, text) = call(m, json!({"type": ty}));
    assert_eq!(status, 200, "{ty}: {text}");
    let j: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(j["type"], ty);
    j
}

#[test]
fn executors_quota_and_logging_calls_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Master::start(tmp.path(), free_port(), "5s");

    let j = answer(&m, "GET_EXECUTORS");
    assert_eq!(j["get_executors"], json!({}), "{j}");
    let ops = answer(&m, "GET_OPERATIONS");
    assert_eq!(ops["get_operations"]["operations"], json!([]), "{ops}");
    let state = answer(&m, "GET_STATE");
    assert!(state["get_state"]["get_executors"].is_object(), "{state}");

    let set = json!({"type": "SET_QUOTA", "set_quota": {"quota_request": {"role": "eng",
        "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}}});
    assert_eq!(call(&m, set.clone()).0, 200);
    let q = answer(&m, "GET_QUOTA");
    let configs = &q["get_quota"]["status"]["configs"];
    assert_eq!(configs[0]["role"], "eng", "{q}");
    assert_eq!(configs[0]["guarantees"]["cpus"]["value"], 2.0, "{q}");
    assert_eq!(configs[0]["limits"]["cpus"]["value"], 2.0, "{q}");
    let (status, text) = call(&m, set);
    assert_eq!(status, 400);
    assert!(text.contains("already has quota"), "{text}");
    let remove = json!({"type": "REMOVE_QUOTA", "remove_quota": {"role": "eng"}});
    assert_eq!(call(&m, remove.clone()).0, 200);
    let q = answer(&m, "GET_QUOTA");
    assert!(
        q["get_quota"]["status"]["configs"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{q}"
    );
    let (status, text) = call(&m, remove);
    assert_eq!(status, 400);
    assert!(text.contains("has no quota"), "{text}");
    assert_eq!(call(&m, json!({"type": "SET_QUOTA"})).0, 400);

    let level = |m: &Master| answer(m, "GET_LOGGING_LEVEL")["get_logging_level"]["level"].clone();
    assert_eq!(level(&m), 0);
    let set = json!({"type": "SET_LOGGING_LEVEL",
        "set_logging_level": {"level": 2, "duration": {"nanoseconds": 800_000_000}}});
    let (status, text) = call(&m, set);
    assert_eq!(status, 200, "{text}");
    assert_eq!(level(&m), 2);
    wait_for(
        Duration::from_secs(10),
        "the logging level back to 0",
        || level(&m) == 0,
        || m.proc.log_text(),
    );
    let never = json!({"type": "SET_LOGGING_LEVEL",
        "set_logging_level": {"level": 1, "duration": {"nanoseconds": 0}}});
    assert_eq!(call(&m, never).0, 400);
    assert_eq!(call(&m, json!({"type": "SET_LOGGING_LEVEL"})).0, 400);
}
