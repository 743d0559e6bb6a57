//! Property tests over random command sequences: whatever `validate`
//! accepts, `apply` applies (and what it refuses changes nothing); every
//! accepted command survives its log encoding; replaying the decoded log
//! gives the same registry. (They found that negative, infinite and empty
//! resource entries were accepted and then could not be read back.)

use keel_api::inventory::Inventory;
use keel_api::mesos::FrameworkInfo;
use keel_api::resources::{Resource, Resources, Value};
use proptest::prelude::*;

use super::volumes::Volume;
use super::*;

const AGENTS: &[&str] = &["m-S0", "m-S1", "m-S2", "other-S9", "../x"];
const FRAMEWORKS: &[&str] = &["m-0000", "m-0001", "m-0007", "bad id"];
const ROLES: &[&str] = &["eng", "eng/dev", "*", "-x", ""];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(list).prop_map(str::to_string)
}

fn amount() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-1.0),
        Just(0.5),
        Just(64.0),
        Just(1e6),
        Just(f64::INFINITY)
    ]
}

fn resources() -> impl Strategy<Value = Resources> {
    proptest::collection::vec(
        (pick(&["cpus", "mem", "disk"]), pick(ROLES), amount()),
        0..3,
    )
    .prop_map(|items| {
        let mut rs = Resources::default();
        for (name, role, v) in items {
            rs.0.push(Resource {
                name,
                role,
                value: Value::Scalar(v),
            });
        }
        rs
    })
}

fn agent_info() -> impl Strategy<Value = Box<AgentInfo>> {
    pick(&["a", "b"]).prop_map(|host| {
        Box::new(AgentInfo {
            hostname: host,
            ip: "10.0.0.1".into(),
            port: 5051,
            resources: Resources::parse("cpus:4;mem:1024;disk:1000").unwrap(),
            attributes: Default::default(),
            version: "t".into(),
            inventory: Inventory::default(),
        })
    })
}

fn framework_info() -> impl Strategy<Value = FrameworkInfo> {
    pick(&["f", "g"]).prop_map(|name| {
        keel_api::mesos::parse(serde_json::json!({"user": "u", "name": name})).unwrap()
    })
}

fn volume() -> impl Strategy<Value = Volume> {
    (pick(&["v1", "v2"]), pick(ROLES), amount()).prop_map(|(id, role, disk_mb)| Volume {
        id,
        role,
        principal: None,
        disk_mb,
        container_path: "data".into(),
        mode: "RW".into(),
    })
}

fn command() -> impl Strategy<Value = Command> {
    let at = 1.0..1e9f64;
    prop_oneof![
        pick(&["m", "n"]).prop_map(|master_id| Command::Bootstrap { master_id }),
        (agent_info(), at.clone()).prop_map(|(info, at)| Command::AdmitAgent { info, at }),
        (pick(AGENTS), agent_info(), at.clone())
            .prop_map(|(agent_id, info, at)| Command::ReadmitAgent { agent_id, info, at }),
        (pick(AGENTS), at.clone())
            .prop_map(|(agent_id, at)| Command::DisconnectAgent { agent_id, at }),
        (proptest::collection::vec(pick(AGENTS), 0..3), at.clone())
            .prop_map(|(agent_ids, at)| Command::DisconnectAgents { agent_ids, at }),
        (pick(AGENTS), at.clone())
            .prop_map(|(agent_id, at)| Command::MarkAgentUnreachable { agent_id, at }),
        (pick(AGENTS), at.clone())
            .prop_map(|(agent_id, at)| Command::MarkAgentGone { agent_id, at }),
        (framework_info(), at.clone()).prop_map(|(info, at)| Command::AddFramework { info, at }),
        (pick(FRAMEWORKS), framework_info(), at.clone()).prop_map(|(framework_id, info, at)| {
            Command::ReaddFramework {
                framework_id,
                info,
                at,
            }
        }),
        (pick(FRAMEWORKS), framework_info())
            .prop_map(|(framework_id, info)| Command::UpdateFramework { framework_id, info }),
        (pick(FRAMEWORKS), at.clone())
            .prop_map(|(framework_id, at)| Command::RemoveFramework { framework_id, at }),
        proptest::collection::vec((pick(ROLES), amount()), 0..3)
            .prop_map(|weights| Command::UpdateWeights { weights }),
        proptest::collection::vec((pick(ROLES), resources(), resources()), 0..2).prop_map(|q| {
            Command::UpdateQuotas {
                configs: q
                    .into_iter()
                    .map(|(role, guarantees, limits)| QuotaConfig {
                        role,
                        guarantees,
                        limits,
                    })
                    .collect(),
            }
        }),
        (pick(AGENTS), resources()).prop_map(|(agent_id, resources)| Command::ReserveResources {
            agent_id,
            resources
        }),
        (pick(AGENTS), resources()).prop_map(|(agent_id, resources)| {
            Command::UnreserveResources {
                agent_id,
                resources,
            }
        }),
        (pick(AGENTS), proptest::collection::vec(volume(), 0..3))
            .prop_map(|(agent_id, volumes)| Command::CreateVolumes { agent_id, volumes }),
        (
            pick(AGENTS),
            proptest::collection::vec((pick(ROLES), pick(&["v1", "v2"])), 0..2)
        )
            .prop_map(|(agent_id, volumes)| Command::DestroyVolumes { agent_id, volumes }),
        (pick(AGENTS), pick(ROLES), pick(&["v1", "v2"]), amount()).prop_map(
            |(agent_id, role, id, disk_mb)| Command::ResizeVolume {
                agent_id,
                role,
                id,
                disk_mb
            }
        ),
        token_command(),
        ek_command(),
        maintenance_command(),
    ]
}

const MACHINES: &[&str] = &["a", "b", "", "10.0.0.1"];

fn machine() -> impl Strategy<Value = Machine> {
    pick(MACHINES).prop_map(|m| match m.parse::<std::net::IpAddr>() {
        Ok(_) => Machine::new(None, Some(&m)),
        Err(_) => Machine::new(Some(&m), None),
    })
}

fn maintenance_command() -> impl Strategy<Value = Command> {
    let machines = || proptest::collection::vec(machine(), 0..3);
    let window = (machines(), -5..5i64, proptest::option::of(-1..3i64)).prop_map(
        |(machines, start_ns, duration_ns)| Window {
            machines,
            start_ns,
            duration_ns,
        },
    );
    let grace = proptest::option::of(-1..3i64);
    prop_oneof![
        proptest::collection::vec(window, 0..3)
            .prop_map(|windows| MaintenanceCommand::UpdateSchedule { windows }),
        machines().prop_map(|machines| MaintenanceCommand::Start { machines }),
        machines().prop_map(|machines| MaintenanceCommand::Stop { machines }),
        (pick(AGENTS), grace, any::<bool>()).prop_map(
            |(agent_id, max_grace_period_ns, mark_gone)| {
                MaintenanceCommand::Drain {
                    agent_id,
                    max_grace_period_ns,
                    mark_gone,
                }
            }
        ),
        pick(AGENTS).prop_map(|agent_id| MaintenanceCommand::Drained { agent_id }),
        pick(AGENTS).prop_map(|agent_id| MaintenanceCommand::Deactivate { agent_id }),
        pick(AGENTS).prop_map(|agent_id| MaintenanceCommand::Reactivate { agent_id }),
    ]
    .prop_map(Command::Maintenance)
}

const TOKENS: &[&str] = &["00000000000000aa", "00000000000000bb", "XYZ"];

fn token_command() -> impl Strategy<Value = Command> {
    let at = 1.0..1e9f64;
    let hash = || pick(&["ab", "cd", "x"]).prop_map(|h| h.repeat(32));
    let kind = proptest::sample::select(vec![TokenKind::Bearer, TokenKind::Join]);
    let expiry = proptest::option::of(prop_oneof![Just(0.5), 1.0..2e9f64, Just(f64::NAN)]);
    let uses = proptest::option::of(0..3u32);
    let created = (
        pick(TOKENS),
        kind,
        pick(&["ops", "", "a:b"]),
        hash(),
        at.clone(),
        expiry,
        uses,
    );
    prop_oneof![
        created.prop_map(
            |(id, kind, principal, secret_sha256, created_at, expires_at, uses_left)| {
                Command::Token(TokenCommand::Create {
                    token: TokenRecord {
                        id,
                        kind,
                        principal,
                        secret_sha256,
                        created_at,
                        expires_at,
                        uses_left,
                    },
                })
            }
        ),
        pick(TOKENS).prop_map(|id| Command::Token(TokenCommand::Revoke { id })),
        (pick(TOKENS), hash(), at).prop_map(|(id, secret_sha256, at)| {
            Command::Token(TokenCommand::ConsumeJoin {
                id,
                secret_sha256,
                at,
            })
        }),
    ]
}

const EKS: &[&str] = &["ab", "cd", "AB"];

fn ek_command() -> impl Strategy<Value = Command> {
    let fingerprint = || pick(EKS).prop_map(|h| h.repeat(32));
    let at = prop_oneof![Just(1.0), 2.0..1e9f64, Just(f64::NAN)];
    prop_oneof![
        (fingerprint(), pick(&["node-1", "", "a\nb"]), at.clone()).prop_map(
            |(fingerprint, hostname, at)| Command::Ek(EkCommand::Pending {
                fingerprint,
                hostname,
                ip: "10.0.0.1".into(),
                at,
            })
        ),
        (fingerprint(), at.clone())
            .prop_map(|(fingerprint, at)| Command::Ek(EkCommand::Approve { fingerprint, at })),
        (fingerprint(), at)
            .prop_map(|(fingerprint, at)| Command::Ek(EkCommand::Deny { fingerprint, at })),
        fingerprint().prop_map(|fingerprint| Command::Ek(EkCommand::Forget { fingerprint })),
    ]
}

fn sequence() -> impl Strategy<Value = Vec<Command>> {
    (
        Just(Command::Bootstrap {
            master_id: "m".into(),
        }),
        proptest::collection::vec(command(), 0..40),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn what_validate_accepts_apply_applies(cmds in sequence()) {
        let mut r = Registry::default();
        let mut log = Vec::new();
        for cmd in &cmds {
            let before = r.clone();
            match r.validate(cmd) {
                Ok(()) => {
                    prop_assert!(r.apply(cmd).is_ok(), "validated but not applied: {cmd:?}");
                    log.push(serde_json::to_string(cmd).unwrap());
                }
                // Refused as it stands (not just for its encoding): apply
                // refuses it too, and changes nothing.
                Err(_) if r.check(cmd).is_err() => {
                    prop_assert!(r.apply(cmd).is_err());
                    prop_assert_eq!(&r, &before, "a refused command changed the registry");
                }
                Err(_) => {}
            }
        }
        // The log decodes to the same commands and replays to the same state.
        let mut replayed = Registry::default();
        for line in &log {
            let cmd: Command = serde_json::from_str(line).unwrap();
            prop_assert_eq!(&serde_json::to_string(&cmd).unwrap(), line);
            replayed.apply(&cmd).unwrap();
        }
        prop_assert_eq!(replayed, r);
    }
}
