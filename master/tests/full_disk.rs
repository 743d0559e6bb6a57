//! Finding 2 of the hardening issue, through the API of a single master
//! whose work dir is a small tmpfs filled to the last byte: a write the
//! registry cannot record is answered 503 with the reason (not 400/409),
//! an operator TEARDOWN it cannot record is not answered 200 and leaves the
//! framework in place, reads go on, and once there is room again the same
//! master takes writes; after a restart it holds exactly what it
//! acknowledged.

mod support;

use std::time::Duration;

use keel_api::mesos::Id;
use keel_client::scheduler::Subscribe;
use keel_hardware_tests::tmpfs::Tmpfs;
use serde_json::{Value as Json, json};
use support::scheduler::{Scheduler, framework};
use support::{Master, free_port, post_json};

fn weight(port: u16, role: &str, weight: u64) -> (u16, String) {
    let body = json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
        {"role": role, "weight": weight}]}});
    let r = post_json(port, "/api/v1", &body.to_string());
    (r.0, r.2)
}

fn weights(port: u16) -> Vec<(String, u64)> {
    let r = post_json(port, "/api/v1", r#"{"type":"GET_WEIGHTS"}"#);
    assert_eq!(r.0, 200, "{}", r.2);
    let v: Json = serde_json::from_str(&r.2).unwrap();
    let mut out: Vec<(String, u64)> = v["get_weights"]["weight_infos"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|w| {
            let weight = w["weight"].as_f64().unwrap();
            (w["role"].as_str().unwrap().to_string(), weight as u64)
        })
        .collect();
    out.sort();
    out
}

fn frameworks(port: u16) -> Vec<String> {
    let r = post_json(port, "/api/v1", r#"{"type":"GET_FRAMEWORKS"}"#);
    assert_eq!(r.0, 200, "{}", r.2);
    let v: Json = serde_json::from_str(&r.2).unwrap();
    v["get_frameworks"]["frameworks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            f["framework_info"]["id"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_full_disk_is_503_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount_on(&tmp.path().join("master"), 1 << 20) else {
        return;
    };
    let port = free_port();
    let mut m = Master::start(tmp.path(), port, "5s");
    let fw = Scheduler::subscribe(port, framework("full-disk"));
    let id = fw.framework_id.clone();
    assert_eq!(weight(port, "before", 1).0, 200);

    fs.fill();
    // A line goes into the log's last page until one needs a new page.
    let mut acked = vec![("before".to_string(), 1)];
    let refusal = (2..200)
        .find_map(|n| {
            let role = format!("r{n}");
            match weight(port, &role, n) {
                (200, _) => {
                    acked.push((role, n));
                    None
                }
                other => Some(other),
            }
        })
        .expect("the disk never filled");
    assert_eq!(refusal.0, 503, "{}", refusal.1);
    assert!(
        refusal.1.contains("No space left on device"),
        "{}",
        refusal.1
    );

    let teardown = json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": id}}});
    let r = post_json(port, "/api/v1", &teardown.to_string());
    assert_eq!(r.0, 503, "TEARDOWN that was not recorded: {}", r.2);
    // Reads go on and show what was acknowledged, nothing else.
    assert_eq!(frameworks(port), std::slice::from_ref(&id));
    acked.sort();
    assert_eq!(weights(port), acked);

    fs.free();
    assert_eq!(weight(port, "after", 9).0, 200);
    acked.push(("after".to_string(), 9));
    acked.sort();
    m.proc.terminate(Duration::from_secs(10));
    drop(fw);
    let m = Master::start(tmp.path(), port, "5s");
    assert_eq!(weights(m.port), acked);
    // The framework was not removed: it fails over to a new connection.
    let mut again = framework("full-disk");
    again.id = Some(Id::new(&id));
    let fw = Scheduler::subscribe_with(m.port, Subscribe::new(again));
    assert_eq!(fw.framework_id, id);
    assert_eq!(frameworks(m.port), [id]);
}
