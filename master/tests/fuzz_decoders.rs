//! Every decoder of what peers send, fed random and mutated input with a
//! fixed budget (the test command runs these): none may panic. Mesos JSON
//! scheduler calls, operator bodies, the agents' protobuf messages and
//! what the gRPC edge makes of them, Raft RPCs and log entries, and the
//! Raft log's segment files and the single master's command log after
//! random damage.
//!
//! Random bytes rarely get past the first check, so each target also
//! mutates valid inputs: JSON values with nodes swapped for hostile ones
//! (nulls, NaN strings, huge numbers, wrong types, deep nesting), protobuf
//! bytes with flipped, cut or spliced bytes.

use axum::http::{HeaderMap, HeaderValue};
use keel_api::pb;
use keel_api::scheduler::Call;
use keel_master::grpc::{agent_info_from_pb, agent_update, reported_tasks};
use keel_master::http::parse_operator_call;
use keel_master::registry::{Command, Registry, limits};
use keel_master::replication::local::CommandLog;
use keel_master::replication::raft::types::{LogEntry, TypeConfig};
use keel_master::replication::raft::wal::Wal;
use keel_master::replication::raft::wire;
use proptest::prelude::*;
use prost::Message;
use serde_json::{Value as Json, json};

const CASES: u32 = 1500;

/// A hostile JSON value.
fn hostile() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        Just(json!("NaN")),
        Just(json!("Infinity")),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!("")),
        Just(json!("../../etc")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]])),
        any::<String>().prop_map(Json::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(Json::Bool),
    ]
}

/// `v` with the node at a random path replaced by `with`.
fn mutate(mut v: Json, picks: &[usize], with: Json) -> Json {
    replace(&mut v, picks, with);
    v
}

fn replace(node: &mut Json, picks: &[usize], with: Json) {
    let Some((p, rest)) = picks.split_first() else {
        *node = with;
        return;
    };
    match node {
        Json::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(p % map.len()).cloned().unwrap_or_default();
            if let Some(child) = map.get_mut(&key) {
                replace(child, rest, with);
            }
        }
        Json::Array(items) if !items.is_empty() => {
            let len = items.len();
            replace(&mut items[p % len], rest, with);
        }
        _ => *node = with,
    }
}

fn scheduler_calls() -> Vec<Json> {
    let task = json!({"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "*",
            "allocation_info": {"role": "*"}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]}}],
        "command": {"value": "true", "uris": [{"value": "http://x/y.tgz"}]},
        "health_check": {"type": "HTTP", "http": {"port": 80}},
        "container": {"type": "MESOS", "network_infos": [{"port_mappings": [{"host_port": 1, "container_port": 2}]}]}});
    vec![
        json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
            "roles": ["a"], "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 10}}}),
        json!({"type": "ACCEPT", "framework_id": {"value": "f"}, "accept": {
            "offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": 1},
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task.clone()]}},
                {"type": "LAUNCH_GROUP", "launch_group": {"executor": {"executor_id": {"value": "e"}},
                    "task_group": {"tasks": [task]}}},
                {"type": "RESERVE", "id": {"value": "op"}, "reserve": {"resources": []}}]}}),
        json!({"type": "DECLINE", "framework_id": {"value": "f"}, "decline": {"offer_ids": [{"value": "o"}]}}),
        json!({"type": "KILL", "framework_id": {"value": "f"}, "kill": {"task_id": {"value": "t"},
            "kill_policy": {"grace_period": {"nanoseconds": 5}}}}),
        json!({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"}, "acknowledge": {
            "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAECAwQFBgcICQoLDA0ODw=="}}),
        json!({"type": "RECONCILE", "framework_id": {"value": "f"}, "reconcile": {"tasks": [{"task_id": {"value": "t"}}]}}),
        json!({"type": "UPDATE_FRAMEWORK", "framework_id": {"value": "f"}, "update_framework": {
            "framework_info": {"user": "u", "name": "n", "id": {"value": "f"}}}}),
    ]
}

fn operator_bodies() -> Vec<Json> {
    vec![
        json!({"type": "GET_STATE"}),
        json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "a", "weight": 2}]}}),
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "a",
            "guarantees": {"cpus": {"value": 1}}, "limits": {"mem": {"value": 2}}}]}}),
        json!({"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": {"value": "a"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                "reservations": [{"type": "DYNAMIC", "role": "r"}]}]}}),
        json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "f"}}}),
    ]
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

fn take_call(bytes: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<Json>(bytes) {
        let _ = Call::from_json(v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn scheduler_calls_from_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        take_call(&bytes);
    }

    #[test]
    fn scheduler_calls_mutated(
        which in 0usize..7,
        picks in proptest::collection::vec(any::<usize>(), 0..8),
        with in hostile(),
    ) {
        let v = mutate(scheduler_calls()[which].clone(), &picks, with);
        let _ = Call::from_json(v);
    }

    #[test]
    fn operator_bodies_mutated(
        which in 0usize..5,
        picks in proptest::collection::vec(any::<usize>(), 0..8),
        with in hostile(),
        raw in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let v = mutate(operator_bodies()[which].clone(), &picks, with);
        let _ = parse_operator_call(&json_headers(), v.to_string().as_bytes());
        let _ = parse_operator_call(&json_headers(), &raw);
    }
}

/// A valid `Register`, encoded.
fn register_bytes() -> Vec<u8> {
    let info = pb::AgentInfo {
        hostname: "h".into(),
        ip: "10.0.0.1".into(),
        port: 5051,
        resources: keel_api::convert::resources_to_pb(
            &keel_api::resources::Resources::parse("cpus:2;ports:[1-2];s:{a,b}").unwrap(),
        ),
        attributes: Vec::new(),
        version: "v".into(),
        inventory: Some(keel_api::convert::inventory_to_pb(&Default::default())),
    };
    let task = json!({"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
        "command": {"value": "true"}});
    pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Register(pb::Register {
            agent_id: "m-S0".into(),
            info: Some(info),
            tasks: vec![pb::TaskReport {
                framework_id: "f".into(),
                task_info_json: task.to_string(),
                latest: Some(pb::TaskStatus {
                    task_id: "t".into(),
                    state: "TASK_RUNNING".into(),
                    uuid: vec![1; 16],
                    ..Default::default()
                }),
            }],
            ..Default::default()
        })),
    }
    .encode_to_vec()
}

/// What the gRPC edge does with one agent message.
fn take_agent_message(bytes: &[u8]) {
    let Ok(m) = pb::AgentMessage::decode(bytes) else {
        return;
    };
    match m.msg {
        Some(pb::agent_message::Msg::Register(r)) => {
            if let Some(info) = r.info.as_ref()
                && let Ok(info) = agent_info_from_pb(info)
            {
                let _ = limits::agent_info(&info);
            }
            let _ = reported_tasks("a", r.tasks);
        }
        Some(pb::agent_message::Msg::StatusUpdate(u)) => {
            let _ = agent_update("a", u);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn agent_messages_from_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        take_agent_message(&bytes);
    }

    #[test]
    fn agent_messages_mutated(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        splice in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = register_bytes();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] ^= b;
        }
        let at = cut % (bytes.len() + 1);
        bytes.splice(at..at, splice);
        take_agent_message(&bytes);
    }

    #[test]
    fn raft_messages_and_entries_mutated(
        picks in proptest::collection::vec(any::<usize>(), 0..8),
        with in hostile(),
        raw in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let entry = json!({"log_id": {"leader_id": {"term": 1, "node_id": 7}, "index": 3},
            "payload": {"Normal": [{"command": "update_weights", "weights": [["a", 2.0]]}]}});
        let v = mutate(entry.clone(), &picks, with.clone());
        let _ = wire::decode::<LogEntry>("entry", v.to_string().as_bytes());
        let _ = wire::decode::<LogEntry>("entry", &raw);
        let req = json!({"vote": {"leader_id": {"term": 1, "node_id": 7}, "committed": true},
            "prev_log_id": null, "entries": [entry], "leader_commit": null});
        let v = mutate(req, &picks, with);
        let _ = wire::decode::<openraft::raft::AppendEntriesRequest<TypeConfig>>("append", v.to_string().as_bytes());
        let _ = wire::decode_chunk(&raw, raw.clone());
    }
}

/// What a run of damaged bytes is overwritten with.
enum Fill {
    Zeros,
    Random,
}

/// Damage of kind `round % 3` at a random place of non-empty `bytes`: a
/// flipped byte, a cut, or a run of up to 64 bytes overwritten.
fn damage(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, round: usize, fill: Fill) {
    let at = rng.usize(..bytes.len());
    match round % 3 {
        0 => bytes[at] ^= rng.u8(1..),
        1 => bytes.truncate(at),
        _ => {
            let end = (at + rng.usize(1..64)).min(bytes.len());
            match fill {
                Fill::Zeros => bytes[at..end].fill(0),
                Fill::Random => rng.fill(&mut bytes[at..end]),
            }
        }
    }
}

/// A Raft log with a few entries, then random damage to its segment
/// files: opening it either succeeds (a torn tail cut) or refuses with an
/// error; reading what it kept never panics.
#[test]
fn raft_log_segments_after_random_damage() {
    let mut rng = fastrand::Rng::with_seed(11);
    let entry = |i: u64| {
        json!({"log_id": {"leader_id": {"term": 1, "node_id": 7}, "index": i},
            "payload": {"Normal": [{"command": "update_weights", "weights": [["a", i as f64]]}]}})
        .to_string()
        .into_bytes()
    };
    for round in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("wal");
        {
            let mut wal = Wal::open(&wal_dir, 4096, None).unwrap().wal;
            let entries: Vec<(u64, Vec<u8>)> = (1..=20).map(|i| (i, entry(i))).collect();
            wal.append(&entries).unwrap();
            wal.sync().unwrap();
        }
        for f in std::fs::read_dir(&wal_dir).unwrap().flatten() {
            let mut bytes = std::fs::read(f.path()).unwrap();
            if bytes.is_empty() {
                continue;
            }
            damage(&mut rng, &mut bytes, round, Fill::Zeros);
            std::fs::write(f.path(), bytes).unwrap();
        }
        if let Ok(opened) = Wal::open(&wal_dir, 4096, None) {
            let last = opened.last.map_or(0, |l| l.index);
            if last > 0 {
                let _ = opened.wal.reader().read(1, last + 1);
            }
        }
    }
}

/// The single master's command log with random damage: opening it either
/// refuses with an error or rebuilds the registry of a prefix of the
/// commands written (a torn tail cut), never a registry no prefix made.
#[test]
fn command_logs_after_random_damage() {
    let boot = Command::Bootstrap {
        master_id: "m1".into(),
    };
    let commands: Vec<Command> = std::iter::once(boot)
        .chain((1..=12).map(|i| {
            serde_json::from_value(json!({"command": "update_weights",
                "weights": [[format!("r{}", i % 4), f64::from(i)]]}))
            .unwrap()
        }))
        .collect();
    let mut prefixes = vec![Registry::default()];
    for c in &commands {
        let mut next = prefixes.last().unwrap().clone();
        next.apply(c).unwrap();
        prefixes.push(next);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.log");
    {
        let (mut log, _) = CommandLog::open(&path).unwrap();
        for c in &commands {
            log.append(c).unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    let mut rng = fastrand::Rng::with_seed(13);
    let (mut opened, mut refused) = (0, 0);
    for round in 0..600 {
        let mut damaged = bytes.clone();
        damage(&mut rng, &mut damaged, round, Fill::Random);
        std::fs::write(&path, &damaged).unwrap();
        match CommandLog::open(&path) {
            Ok((_, registry)) => {
                assert!(prefixes.contains(&registry), "round {round}: {registry:?}");
                opened += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
}

/// The seeds the mutations start from are valid, so that the mutated
/// inputs reach past the first checks.
#[test]
fn the_seeds_decode() {
    for c in scheduler_calls() {
        Call::from_json(c.clone()).unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    for b in operator_bodies() {
        parse_operator_call(&json_headers(), b.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{b}: {e:?}"));
    }
    let m = pb::AgentMessage::decode(&register_bytes()[..]).unwrap();
    let Some(pb::agent_message::Msg::Register(r)) = m.msg else {
        panic!("not a register")
    };
    let info = agent_info_from_pb(r.info.as_ref().unwrap()).unwrap();
    limits::agent_info(&info).unwrap();
    assert_eq!(reported_tasks("a", r.tasks).len(), 1);
    let entry = json!({"log_id": {"leader_id": {"term": 1, "node_id": 7}, "index": 3},
        "payload": {"Normal": [{"command": "update_weights", "weights": [["a", 2.0]]}]}});
    wire::decode::<LogEntry>("entry", entry.to_string().as_bytes()).unwrap();
    let req = json!({"vote": {"leader_id": {"term": 1, "node_id": 7}, "committed": true},
        "prev_log_id": null, "entries": [entry], "leader_commit": null});
    wire::decode::<openraft::raft::AppendEntriesRequest<TypeConfig>>(
        "append",
        req.to_string().as_bytes(),
    )
    .unwrap();
}
