//! One allocation cycle through the engine at cluster scale: the DRF
//! allocator's decisions turned into OFFERS events (typed offers with the
//! agents' attributes, URLs and resources), as a leading master does.
//!
//! `cargo bench -p keel-master --bench engine` (add `-- --runs N`,
//! `--agents N`, `--frameworks N`). Every agent is free, every framework
//! wants offers; after each timed cycle every offer is declined with no
//! filter (untimed), so each cycle hands out the whole cluster again.

use std::time::{Duration, Instant};

use keel_api::inventory::Inventory;
use keel_api::mesos::{self, Filters};
use keel_api::resources::Resources;
use keel_api::scheduler::{Event, Subscribe};
use keel_master::engine::{Effect, Engine, EngineConfig, Now};
use keel_master::registry::{AgentInfo, Command, Registry};

fn arg(flag: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .and_then(|n| n.parse().ok())
}

struct Bench {
    engine: Engine,
    committed: Registry,
    now: Now,
}

impl Bench {
    fn commit(&mut self, command: Command) -> keel_master::registry::Applied {
        let applied = self.committed.apply(&command).expect("applies");
        assert!(self.engine.committed(&command, &applied));
        applied
    }
}

fn setup(agents: usize, frameworks: usize) -> (Bench, Vec<String>) {
    let cfg = EngineConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port: 5050,
        hostname: "bench".into(),
        agent_timeout: Duration::from_secs(3600),
        heartbeat_interval: Duration::from_secs(5),
        framework_heartbeat_interval: Duration::from_secs(15),
        offer_timeout: None,
        agent_reregister_timeout: Duration::from_secs(3600),
        allocator: "drf".into(),
    };
    let mut b = Bench {
        engine: Engine::new(cfg, Registry::default()).unwrap(),
        committed: Registry::default(),
        now: Now::read(),
    };
    for c in b.engine.take_over(Registry::default(), "bench", b.now) {
        b.commit(c);
    }
    b.engine.lead(b.now);
    for i in 0..agents {
        let info = AgentInfo {
            hostname: format!("node-{i}"),
            ip: "10.0.0.1".into(),
            port: 5051,
            resources: Resources::parse("cpus:16;mem:65536;disk:409600;ports:[31000-32000]")
                .unwrap(),
            attributes: keel_api::attributes::Attributes::parse(&format!(
                "rack:r{};zone:z{}",
                i % 40,
                i % 3
            ))
            .unwrap(),
            version: "bench".into(),
            inventory: Inventory::default(),
        };
        let p = b.engine.register_agent(None, info, b.now).unwrap();
        let applied = b.commit(p.command);
        b.engine
            .agent_registered(&applied, Vec::new(), b.now)
            .unwrap();
    }
    let mut ids = Vec::new();
    for f in 0..frameworks {
        let info: mesos::FrameworkInfo = mesos::parse(serde_json::json!({
            "user": "u", "name": format!("f{f}"), "role": format!("role{}", f % 10)
        }))
        .unwrap();
        let sub = Subscribe {
            framework_info: info,
            suppressed_roles: Vec::new(),
        };
        let p = b
            .engine
            .subscribe(None, sub, format!("s{f}"), b.now)
            .unwrap();
        let applied = b.commit(p.command);
        ids.push(b.engine.subscribed(p.then, &applied, b.now).unwrap());
    }
    b.engine.take_effects();
    (b, ids)
}

fn main() {
    let runs = arg("--runs").unwrap_or(5);
    println!("keel engine bench: allocation cycle with offers, {runs} runs per case");
    println!(
        "{:>7} {:>10} {:>7} {:>10} {:>10} {:>10}",
        "agents", "frameworks", "offers", "cycle p50", "cycle min", "setup"
    );
    for (agents, frameworks) in [(1_000, 100), (10_000, 1_000)] {
        let only = |flag, n| arg(flag).is_none_or(|want| want == n);
        if !(only("--agents", agents) && only("--frameworks", frameworks)) {
            continue;
        }
        let started = Instant::now();
        let (mut b, ids) = setup(agents, frameworks);
        let setup_time = started.elapsed();
        let mut times = Vec::new();
        let mut offers = 0;
        for _ in 0..runs {
            b.now = b.now.after(Duration::from_millis(10));
            let t = Instant::now();
            offers = b.engine.allocate(b.now);
            let effects = b.engine.take_effects();
            times.push(t.elapsed());
            // Untimed: every offer back, no filter.
            let zero = Filters {
                refuse_seconds: Some(0.0),
            };
            for e in effects {
                if let Effect::ToFramework {
                    framework_id,
                    event: Event::Offers(list),
                    ..
                } = e
                {
                    let ids: Vec<String> = list.iter().map(|o| o.id.value.clone()).collect();
                    b.engine.decline(&framework_id, &ids, zero, b.now);
                }
            }
            b.engine.take_effects();
        }
        let _ = ids;
        times.sort();
        println!(
            "{:>7} {:>10} {:>7} {:>10.2?} {:>10.2?} {:>10.2?}",
            agents,
            frameworks,
            offers,
            times[times.len() / 2],
            times[0],
            setup_time
        );
    }
}
