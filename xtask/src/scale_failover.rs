//! `cargo xtask bench-scale --masters 3`: three masters (release build,
//! default flags), the agents and tasks of the run, and the leader killed
//! (SIGKILL) with every task running:
//!
//! - kill -> another master serving (`/health` 200 from it);
//! - kill -> every agent active on it again (re-registered);
//! - kill -> every task known to it again (reconciled: its `master/tasks_*`
//!   gauges and counters add up to the number of tasks);
//! - and once the tasks end: none lost, none run twice, as the frameworks
//!   saw them.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cluster::{self, Api, Node, release_bin};
use crate::scale_bench::{
    ScaleArgs, loadavg, mib, spawn_logged, spawn_sim, start_load, wait_until,
};

pub fn run(args: &ScaleArgs, dir: &std::path::Path) -> Result<()> {
    let ports: Vec<u16> = (0..args.masters).map(|_| cluster::free_port()).collect();
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut masters: Vec<Option<Node>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let name: &'static str = ["master-0", "master-1", "master-2", "master-3", "master-4"]
            .get(i)
            .copied()
            .context("at most 5 masters")?;
        let node = spawn_logged(
            Command::new(release_bin("keel-master"))
                .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
                .args(["--masters", &list])
                .arg("--work-dir")
                .arg(dir.join(name)),
            dir,
            name,
        )?;
        masters.push(Some(node));
    }
    let apis: Vec<Api> = ports
        .iter()
        .map(|p| Api::with(*p, |b| b.timeout(Duration::from_secs(60))))
        .collect::<Result<_>>()?;
    let leader = |skip: Option<usize>| {
        (0..apis.len())
            .filter(|i| Some(*i) != skip)
            .find(|i| apis[*i].healthy())
    };
    if !wait_until(Duration::from_secs(60), || leader(None).is_some()) {
        bail!("no leader within 60 s; see {}", dir.display());
    }
    let started = Instant::now();
    let sim = spawn_sim(&list, dir, args, 0, args.agents, "sim")?;
    let all_active = |api: &Api| api.active_agents().len() >= args.agents;
    if !wait_until(Duration::from_secs(1800), || {
        leader(None).is_some_and(|l| all_active(&apis[l]))
    }) {
        bail!("agents did not all register within 30 min");
    }
    println!(
        "{} masters, {} agents registered from cold: {:.1} s; load {}",
        args.masters,
        args.agents,
        started.elapsed().as_secs_f64(),
        loadavg()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_client, progress, load) = start_load(&rt, &list, args)?;
    if !wait_until(Duration::from_secs(3600), || {
        progress.running.load(Ordering::Relaxed) as usize >= args.tasks || load.is_finished()
    }) || load.is_finished()
    {
        bail!("the tasks did not all run (see {})", dir.display());
    }
    let l = leader(None).context("no leader with the tasks running")?;
    println!(
        "{} tasks running; leader RSS {}; load {}",
        args.tasks,
        mib(cluster::rss_kib(masters[l].as_ref().map_or(0, Node::pid))),
        loadavg()
    );

    masters[l] = None; // SIGKILL
    let killed = Instant::now();
    let mut serving = None;
    let mut reregistered = None;
    let mut reconciled = None;
    while killed.elapsed() < Duration::from_secs(1800) && reconciled.is_none() {
        let Some(n) = leader(Some(l)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        serving.get_or_insert(killed.elapsed());
        if reregistered.is_none() && all_active(&apis[n]) {
            reregistered = Some(killed.elapsed());
        }
        if reregistered.is_some() && known_tasks(&apis[n]) >= args.tasks as f64 {
            reconciled = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()));
    println!(
        "leader killed with {} agents and {} tasks running: another master serving after {}, every agent re-registered after {}, every task known to it again after {}; load {}",
        args.agents,
        args.tasks,
        secs(serving),
        secs(reregistered),
        secs(reconciled),
        loadavg()
    );
    let report = rt.block_on(load)?.context("load generator")?;
    println!(
        "after the kill: {} launches for {} tasks, lost {}, run twice {}",
        report.launched(),
        args.tasks,
        report.lost().len(),
        report.duplicated().len()
    );
    if !sim.stop()? {
        bail!("keel-agent sim did not exit 0 on SIGTERM");
    }
    Ok(())
}

/// The tasks the master knows, in any state (`master/tasks_*`): once it is
/// back to the number launched, every task is reconciled (the run kills
/// the leader with every task running and none ended).
fn known_tasks(api: &Api) -> f64 {
    const STATES: [&str; 8] = [
        "staging",
        "starting",
        "running",
        "finished",
        "failed",
        "killed",
        "lost",
        "unreachable",
    ];
    api.client()
        .get_metrics()
        .map(|m| {
            m.metrics
                .into_iter()
                .filter(|x| {
                    x.name
                        .strip_prefix("master/tasks_")
                        .is_some_and(|s| STATES.contains(&s))
                })
                .filter_map(|x| x.value)
                .sum()
        })
        .unwrap_or(0.0)
}
