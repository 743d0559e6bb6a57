//! One allocation cycle of the DRF allocator at cluster scale.
//!
//! `cargo bench -p keel-master --bench allocator` (add `-- --runs N` for more
//! cycles per case, `--agents N` / `--frameworks N` for one size). For each cluster size, every agent is free and every
//! framework wants offers; frameworks are spread over 10 roles and every
//! tenth agent has a static reservation for one of them. Printed per case:
//!
//! - `full`: a cycle that hands out the whole cluster (median and min over
//!   the runs; everything is recovered, untimed, between runs);
//! - `declined`: a cycle right after every offer was declined with a 5 s
//!   filter, so that each agent first meets a filtered framework (median);
//! - `expiry`: a full cycle that also drops all those filters (median);
//! - `idle`: a cycle with nothing free (median);
//! - `setup`: adding the agents and frameworks.
//!
//! Mesos' hierarchical allocator needs about 1.06 s per cycle at 10k agents x
//! 1k frameworks; Keel's target is <= 50 ms.

use std::time::{Duration, Instant};

use keel_api::resources::Resources;
use keel_master::allocator::{Allocation, Allocator, DrfAllocator, FrameworkSpec};

const ROLES: usize = 10;

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<usize> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .and_then(|n| n.parse().ok())
}

fn main() {
    let runs = arg("--runs").unwrap_or(5);
    println!("keel allocator bench: DrfAllocator, {runs} runs per case, {ROLES} roles");
    println!(
        "{:>7} {:>10} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "agents",
        "frameworks",
        "offers",
        "full p50",
        "full min",
        "declined",
        "expiry",
        "idle",
        "setup"
    );
    for agents in [1_000, 10_000, 50_000] {
        for frameworks in [100, 1_000] {
            let only = |flag, n| arg(flag).is_none_or(|want| want == n);
            if only("--agents", agents) && only("--frameworks", frameworks) {
                case(agents, frameworks, runs);
            }
        }
    }
}

fn res(text: &str) -> Resources {
    Resources::parse(text).expect("valid resources")
}

fn setup(agents: usize, frameworks: usize) -> DrfAllocator {
    let mut a = DrfAllocator::new();
    let plain = res("cpus:16;mem:65536;disk:409600;ports:[31000-32000]");
    for i in 0..agents {
        let total = match i % 10 {
            0 => {
                let role = format!("role-{}", (i / 10) % ROLES);
                res(&format!(
                    "cpus:12;mem:49152;disk:409600;ports:[31000-32000];cpus({role}):4;mem({role}):16384"
                ))
            }
            _ => plain.clone(),
        };
        a.add_agent(&format!("agent-{i:06}"), total, &[]);
    }
    for i in 0..frameworks {
        let spec = FrameworkSpec {
            id: format!("framework-{i:05}"),
            roles: vec![format!("role-{}", i % ROLES)],
            ..Default::default()
        };
        a.add_framework(spec, 0.0);
    }
    a
}

fn recover(a: &mut DrfAllocator, out: &[Allocation], refuse: Option<f64>, now: f64) {
    for o in out {
        a.recover(
            &o.framework_id,
            &o.agent_id,
            &o.role,
            &o.resources,
            refuse,
            now,
        );
    }
}

fn timed(a: &mut DrfAllocator, now: f64) -> (Duration, Vec<Allocation>) {
    let start = Instant::now();
    let out = a.allocate(now);
    (start.elapsed(), out)
}

fn case(agents: usize, frameworks: usize, runs: usize) {
    let start = Instant::now();
    let mut a = setup(agents, frameworks);
    let setup_time = start.elapsed();
    let (mut full, mut idle, mut declined, mut expiry) = (vec![], vec![], vec![], vec![]);
    let mut offers = 0;
    for run in 0..runs {
        let now = run as f64;
        let (t, out) = timed(&mut a, now);
        full.push(t);
        offers = out.len();
        let (t, none) = timed(&mut a, now);
        assert!(none.is_empty());
        idle.push(t);
        recover(&mut a, &out, None, now);
    }
    // Every offer declined with a 5 s filter; the next cycle meets a
    // filtered framework first on every agent. The cycle 10 s later drops
    // all those filters.
    for run in 0..runs {
        let now = 100.0 + 10.0 * run as f64;
        let (t, out) = timed(&mut a, now);
        if run > 0 {
            expiry.push(t);
        }
        recover(&mut a, &out, Some(5.0), now);
        let (t, out) = timed(&mut a, now + 1.0);
        declined.push(t);
        recover(&mut a, &out, None, now + 1.0);
    }
    println!(
        "{agents:>7} {frameworks:>10} {offers:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        ms(median(&mut full)),
        ms(*full.iter().min().expect("runs")),
        ms(median(&mut declined)),
        ms(median(&mut expiry)),
        ms(median(&mut idle)),
        ms(setup_time),
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
