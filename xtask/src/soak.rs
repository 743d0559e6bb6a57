//! `cargo xtask soak`: the hardening soak. Three release masters
//! (`--masters`, each work dir on its own tmpfs when root) and two agents on
//! loopback, under mixed load for `--minutes`:
//!
//! - a framework launching small tasks as fast as offers allow
//!   (`soak/framework.rs`), an operator writer and reader of one role's
//!   weight (`soak/registry.rs`), all through keel-client;
//! - every second a malformed request, an oversized one and a new
//!   slowloris connection, on raw sockets (`soak/abuse.rs`);
//! - a SIGKILL of the leader every `--kill-every` (restarted on its work
//!   dir 2 s later), and once, at `--fill-at`, the leader's disk filled
//!   until ENOSPC, held, and freed; during the hold a burst of
//!   `--fill-burst` writes makes the masters take a Raft snapshot (their
//!   log segments are preallocated: appends alone never meet the full
//!   disk).
//!
//! Then the load stops, the tasks drain, and `soak/report.rs` checks and
//! prints: acknowledged writes lost, reads that went back, tasks lost or
//! duplicated, bad requests answered wrongly, masters that exited by
//! themselves, the filled master back in step; figures for BENCHMARKS.md.
//! Any failed check makes the command fail. `soak/procs.rs` owns every
//! process and mount and cleans up on any exit path; the logs are kept when
//! the run fails, or always with `KEEL_BENCH_KEEP=1`.

mod abuse;
mod faults;
mod framework;
mod memory;
mod procs;
mod registry;
mod report;
mod tasks;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use crate::cluster::{self, rss_kib};
use faults::{Faults, Fill, Kill, Leadership, Life};
use procs::Procs;

/// Restarting a killed leader waits this long.
const RESTART_AFTER: Duration = Duration::from_secs(2);
/// The filled master must be back in step this soon after the disk is
/// freed; past that it is restarted (the check has failed) so that the
/// rest of the run still has three masters.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);
/// Concurrent writers of the burst during the disk fill.
const BURST_WRITERS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long the load runs, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// SIGKILL the leader this often (e.g. 5m, 90s; 0: never).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub kill_every: Duration,
    /// When to fill the leader's disk (root only; past the run: never).
    #[arg(long, default_value = "12m", value_parser = parse_duration)]
    pub fill_at: Duration,
    /// How long the disk stays full.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub fill_hold: Duration,
    /// Registry writes in a burst while the disk is full, past the masters'
    /// snapshot interval (5000 entries) so that one is taken (0: none).
    #[arg(long, default_value_t = 6000)]
    pub fill_burst: usize,
    /// The masters' RSS at the start is taken after this warm-up.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The leader's RSS is checked from this long into each leadership:
    /// by then it has rebuilt its state and filled its bounded histories
    /// (the last 1,000 completed tasks take about 2.5 minutes at the
    /// soak's launch rate).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub leader_warmup: Duration,
    /// Cap on the framework's live tasks.
    #[arg(long, default_value_t = 12)]
    pub max_tasks: usize,
    /// Registry writes (UPDATE_WEIGHTS) a second; reads are 2x as many.
    #[arg(long, default_value_t = 4)]
    pub writes_per_sec: u32,
    /// Open slowloris connections at most.
    #[arg(long, default_value_t = 50)]
    pub slowloris: usize,
    /// Size of each master's tmpfs.
    #[arg(long, default_value_t = 256)]
    pub tmpfs_mib: u64,
    /// After the load, how long tasks get to finish.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain: Duration,
}

/// `90s`, `5m`, `1m30s`, `500ms`, `1h`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("{text:?}: a number needs a unit (ms, s, m, h)"))?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before the unit"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total += Duration::from_secs_f64(seconds);
        rest = next;
    }
    Ok(total)
}

/// A short duration as the soak prints it: `1m30s`, `20s`, `1.5s`.
pub fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 {
        let m = (s / 60.0).floor();
        let r = s - m * 60.0;
        if r < 0.05 {
            format!("{m:.0}m")
        } else {
            format!("{m:.0}m{r:.0}s")
        }
    } else if s.fract() < 0.05 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Counters the load tasks bump, for the progress lines.
#[derive(Default)]
pub struct Progress {
    pub launched: AtomicU64,
    pub terminal: AtomicU64,
    pub acked: AtomicU64,
    pub unanswered: AtomicU64,
    pub reads: AtomicU64,
}

impl Progress {
    fn add_write(&self, outcome: &registry::Outcome) {
        let counter = match outcome {
            registry::Outcome::Acked => &self.acked,
            _ => &self.unanswered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A small xorshift generator (task lengths); no need for a crate.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

static EVENTS: OnceLock<Mutex<File>> = OnceLock::new();

/// Prints one event of the run, with the time since the load started, and
/// appends it to `events.log` beside the processes' logs.
pub fn log(t0: Instant, what: &str) {
    let line = format!("[{:7.1}s] {what}", t0.elapsed().as_secs_f64());
    eprintln!("{line}");
    if let Some(Ok(mut f)) = EVENTS.get().map(|f| f.lock()) {
        let _ = writeln!(f, "{line}");
    }
}

/// Everything a run recorded, for `report.rs`.
/// A load loop's pace: ticks every `every` (a late tick delays the next)
/// until `stop` turns true.
pub struct Pace {
    tick: tokio::time::Interval,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Pace {
    pub fn new(every: Duration, stop: tokio::sync::watch::Receiver<bool>) -> Pace {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pace { tick, stop }
    }

    /// Waits for the next tick; `false` once the run is stopping.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = self.stop.changed() => return false,
        }
        !*self.stop.borrow()
    }
}

pub struct Run {
    pub t0: Instant,
    pub loaded_for: Duration,
    pub kills: Vec<Kill>,
    pub exits: Vec<String>,
    pub max_leaderless: Duration,
    pub fill: Option<Fill>,
    pub fill_skipped: Option<String>,
    pub framework: framework::Report,
    pub writes: Vec<registry::Write>,
    pub reads: registry::Reads,
    pub final_read: Result<(registry::Read, BTreeMap<String, u64>), String>,
    /// The burst's writes during the disk fill, by role.
    pub burst: BTreeMap<String, Vec<registry::Write>>,
    pub abuse: abuse::Report,
    pub lives: Vec<Life>,
    pub leaderships: Vec<Leadership>,
    pub leader_at_end: Option<usize>,
    pub unclean_stop: Vec<String>,
    pub tmpfs: bool,
}

pub fn run(args: &SoakArgs) -> Result<()> {
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    if run_for < Duration::from_secs(30) {
        bail!("--minutes must be at least 0.5");
    }
    if args.max_tasks == 0 || args.writes_per_sec == 0 {
        bail!("--max-tasks and --writes-per-sec must be at least 1");
    }
    cluster::build_release()?;
    let root = procs::is_root();
    let fill_skipped = if !root {
        Some("not root: no tmpfs for the masters, so the disk fill is skipped".to_string())
    } else if args.fill_at + args.fill_hold + Duration::from_secs(10) > run_for {
        Some(format!(
            "--fill-at {} plus --fill-hold {} does not end 10 s before the run's {}: no disk fill",
            show(args.fill_at),
            show(args.fill_hold),
            show(run_for)
        ))
    } else {
        None
    };
    if let Some(why) = &fill_skipped {
        eprintln!("soak: {why}");
    }
    if root {
        procs::unmount_stale();
    }
    let dir = std::env::temp_dir().join(format!("keel-soak-{}", std::process::id()));
    let mut procs = Procs::create(dir, root.then_some(args.tmpfs_mib))?;
    if let Ok(f) = File::create(procs.dir.join("events.log")) {
        let _ = EVENTS.set(Mutex::new(f));
    }
    eprintln!(
        "soak: masters {} (logs in {})",
        procs.list,
        procs.dir.display()
    );
    let mut run = soak(&mut procs, args, run_for)?;
    run.fill_skipped = fill_skipped;
    run.tmpfs = root;
    report::dump(&run, &procs.dir);
    let verdict = report::evaluate(&run, args);
    report::print(&verdict, &run, args, &procs.dir);
    let keep = !verdict.failures.is_empty() || std::env::var_os("KEEL_BENCH_KEEP").is_some();
    procs.keep(keep);
    if !verdict.failures.is_empty() {
        bail!(
            "soak checks failed: {}; logs are kept in {}",
            verdict.failures.join("; "),
            procs.dir.display()
        );
    }
    Ok(())
}

fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The cluster up, the load on, the faults, the drain; what was seen.
fn soak(procs: &mut Procs, args: &SoakArgs, run_for: Duration) -> Result<Run> {
    for i in 0..procs.masters.len() {
        procs.spawn_master(i)?;
    }
    if !wait_for(Duration::from_secs(60), || procs.leader().is_some()) {
        bail!("no master led within 60 s");
    }
    procs.spawn_agent()?;
    procs.spawn_agent()?;
    let two_agents = |procs: &Procs| {
        procs.leader().is_some_and(|l| {
            procs.masters[l]
                .api
                .active_agents()
                .iter()
                .filter(|a| a.hostname.starts_with("soak-a"))
                .count()
                == 2
        })
    };
    if !wait_for(Duration::from_secs(60), || two_agents(procs)) {
        bail!("the two agents did not register within 60 s");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            interrupted.store(true, Ordering::SeqCst);
        });
    }
    let t0 = Instant::now();
    log(t0, "load starts");
    let progress = Arc::new(Progress::default());
    let leader = Arc::new(AtomicUsize::new(procs.leader().unwrap_or(usize::MAX)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let fw = rt.spawn(framework::run(
        framework::Config {
            list: procs.list.clone(),
            max_tasks: args.max_tasks,
            drain: args.drain,
            progress: progress.clone(),
            t0,
        },
        stop_rx.clone(),
    ));
    let writer = rt.spawn(registry::writer(
        procs.list.clone(),
        args.writes_per_sec,
        stop_rx.clone(),
        progress.clone(),
    ));
    let reader = rt.spawn(registry::reader(
        procs.list.clone(),
        args.writes_per_sec * 2,
        stop_rx.clone(),
        progress.clone(),
    ));
    let ports: Vec<u16> = procs.masters.iter().map(|m| m.port).collect();
    let abuser = rt.spawn(abuse::run(
        ports,
        leader.clone(),
        args.slowloris,
        stop_rx.clone(),
    ));

    let mut faults = Faults::new(procs, args, t0, run_for, rt.handle().clone());
    let end = t0 + run_for;
    while Instant::now() < end {
        if interrupted.load(Ordering::SeqCst) {
            let _ = stop_tx.send(true);
            bail!("interrupted");
        }
        faults.step(procs, &leader, &progress)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    log(t0, "load stops; draining");
    let loaded_for = t0.elapsed();
    let _ = stop_tx.send(true);
    // The watch goes on while the tasks drain and the filled master
    // catches up.
    while !fw.is_finished() || faults.filling() {
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        faults.step(procs, &leader, &progress)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let abuse = rt.block_on(abuser).context("abuse task")?;
    let writes = rt.block_on(writer).context("writer task")?;
    let reads = rt.block_on(reader).context("reader task")?;
    let framework = rt.block_on(fw).context("framework task")?;
    log(t0, "drained");
    let final_read = rt.block_on(registry::final_read(
        procs.list.clone(),
        Duration::from_secs(30),
    ));
    let leader_at_end = procs.leader();
    let now = Instant::now();
    faults.sample_leader(procs, now);
    faults.lead_ended(now);
    for life in &mut faults.lives {
        let alive = procs.masters[life.master].pid() == Some(life.pid);
        life.end = alive.then(|| rss_kib(life.pid)).flatten();
    }
    let burst = match faults.burst.take() {
        Some(h) => rt.block_on(h).context("burst task")?,
        None => BTreeMap::new(),
    };
    let exits = faults.exits.clone();
    let unclean_stop = procs.stop_all();
    Ok(Run {
        t0,
        loaded_for,
        kills: faults.kills,
        exits,
        max_leaderless: faults.max_leaderless,
        fill: faults.fill,
        fill_skipped: None,
        framework,
        writes,
        reads,
        final_read,
        burst,
        abuse,
        lives: faults.lives,
        leaderships: faults.leaderships,
        leader_at_end,
        unclean_stop,
        tmpfs: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("3d").is_err());
        assert_eq!(show(Duration::from_secs(90)), "1m30s");
        assert_eq!(show(Duration::from_secs(300)), "5m");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
    }
}
