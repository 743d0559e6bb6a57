//! The faults of a soak run and the watch over the cluster, stepped by the
//! main thread every 100 ms: which master leads (published for the bad
//! clients), masters and agents that exit by themselves (restarted), the
//! masters' RSS after their warm-up, a SIGKILL of the leader every
//! `--kill-every` (restarted 2 s later on its work dir; never while another
//! fault plays out), and the disk fill: the leader's tmpfs filled until
//! ENOSPC, a burst of writes so that a Raft snapshot is due, the hold, the
//! filler removed, and the wait for that master to apply the leader's log
//! again (restarted if it does not, the check having failed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::procs::{self, Procs};
use super::{
    BURST_WRITERS, CATCH_UP_WITHIN, Progress, RESTART_AFTER, SoakArgs, log, registry, show,
};
use crate::cluster::rss_kib;

/// One life of one master: its RSS after the warm-up and at the end.
#[derive(Debug, Clone)]
pub struct Life {
    pub master: usize,
    pub start: u32,
    pub pid: u32,
    pub started: Instant,
    pub warm: Option<u64>,
    pub end: Option<u64>,
    /// When it was killed or exited.
    pub ended: Option<Instant>,
}

/// One master's time as the leader, its RSS sampled every few seconds:
/// the leader holds the task table, the offers and every stream, so its
/// memory is the one that could grow with the load.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub master: usize,
    pub pid: u32,
    pub from: Instant,
    pub until: Option<Instant>,
    /// (time since `from`, RSS in KiB).
    pub samples: Vec<(Duration, u64)>,
}

impl Leadership {
    /// The RSS sampled first at or after `after` into the leadership.
    pub fn at(&self, after: Duration) -> Option<u64> {
        self.samples
            .iter()
            .find(|(t, _)| *t >= after)
            .map(|(_, kib)| *kib)
    }

    pub fn last(&self) -> Option<(Duration, u64)> {
        self.samples.last().copied()
    }

    pub fn peak(&self) -> Option<u64> {
        self.samples.iter().map(|(_, kib)| *kib).max()
    }
}

/// How often the leader's RSS is sampled.
const RSS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Kill {
    pub master: usize,
    pub at: Instant,
    /// Until another master led and served.
    pub new_leader_after: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct Fill {
    pub master: usize,
    pub bytes: u64,
    pub start: Option<Instant>,
    pub freed: Option<Instant>,
    /// The leader's last log index when the disk was freed, and how long
    /// the filled master took to apply it.
    pub target: Option<u64>,
    pub caught_up: Option<Duration>,
    /// What the filled master's `/api/keel/v1/masters` said was wrong.
    pub problems: Vec<String>,
    /// Leaders seen during the hold.
    pub leaders: Vec<usize>,
    /// The filled master's snapshot index before the fill and after it.
    pub snapshot_before: Option<u64>,
    pub snapshot_after: Option<u64>,
}

enum FillState {
    Waiting(Instant),
    Holding(Instant),
    CatchingUp(Instant),
    Done,
}

/// The faults and the watch over the cluster, stepped by the main thread.
pub struct Faults {
    t0: Instant,
    end: Instant,
    warmup: Duration,
    kill_every: Duration,
    next_kill: Option<Instant>,
    restarts: Vec<(usize, Instant)>,
    fill_state: FillState,
    fill_hold: Duration,
    pub kills: Vec<Kill>,
    pub fill: Option<Fill>,
    pub exits: Vec<String>,
    pub lives: Vec<Life>,
    pub leaderships: Vec<Leadership>,
    next_rss: Instant,
    leader: Option<usize>,
    leaderless_since: Option<Instant>,
    pub max_leaderless: Duration,
    next_progress: Instant,
    postponed: bool,
    rt: tokio::runtime::Handle,
    list: String,
    fill_burst: usize,
    pub burst: Option<tokio::task::JoinHandle<BTreeMap<String, Vec<registry::Write>>>>,
}

impl Faults {
    pub fn new(
        procs: &Procs,
        args: &SoakArgs,
        t0: Instant,
        run_for: Duration,
        rt: tokio::runtime::Handle,
    ) -> Faults {
        let fits = args.fill_at + args.fill_hold + Duration::from_secs(10) <= run_for;
        let fill_state = match procs::is_root() && fits {
            true => FillState::Waiting(t0 + args.fill_at),
            false => FillState::Done,
        };
        let mut f = Faults {
            t0,
            end: t0 + run_for,
            warmup: args.warmup,
            kill_every: args.kill_every,
            next_kill: (!args.kill_every.is_zero()).then(|| t0 + args.kill_every),
            restarts: Vec::new(),
            fill_state,
            fill_hold: args.fill_hold,
            kills: Vec::new(),
            fill: None,
            exits: Vec::new(),
            lives: Vec::new(),
            leaderships: Vec::new(),
            next_rss: t0,
            leader: None,
            leaderless_since: None,
            max_leaderless: Duration::ZERO,
            next_progress: t0 + Duration::from_secs(30),
            postponed: false,
            rt,
            list: procs.list.clone(),
            fill_burst: args.fill_burst,
            burst: None,
        };
        for i in 0..procs.masters.len() {
            f.born(procs, i);
        }
        f
    }

    /// Whether the disk fill is under way (held, or waiting for the
    /// filled master to catch up).
    pub fn filling(&self) -> bool {
        matches!(
            self.fill_state,
            FillState::Holding(_) | FillState::CatchingUp(_)
        )
    }

    /// Master `i`'s current life ended now.
    fn died(&mut self, i: usize) {
        let now = Instant::now();
        if let Some(l) = self
            .lives
            .iter_mut()
            .rev()
            .find(|l| l.master == i && l.ended.is_none())
        {
            l.ended = Some(now);
        }
    }

    fn born(&mut self, procs: &Procs, i: usize) {
        let m = &procs.masters[i];
        if let Some(pid) = m.pid() {
            self.lives.push(Life {
                master: i,
                start: m.starts,
                pid,
                started: m.started,
                warm: None,
                end: None,
                ended: None,
            });
        }
    }

    pub fn step(
        &mut self,
        procs: &mut Procs,
        shared: &AtomicUsize,
        progress: &Progress,
    ) -> Result<()> {
        let now = Instant::now();
        for (i, status) in procs.exited_masters() {
            self.died(i);
            let what = format!("m{i} exited by itself ({status})");
            log(self.t0, &what);
            self.exits.push(what);
            self.restarts.push((i, now + RESTART_AFTER));
        }
        for (i, status) in procs.restart_exited_agents()? {
            let what = format!("agent a{i} exited by itself ({status}); started again");
            log(self.t0, &what);
            self.exits.push(what);
        }
        let due: Vec<usize> = self
            .restarts
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| *i)
            .collect();
        self.restarts.retain(|(_, at)| *at > now);
        for i in due {
            procs.spawn_master(i)?;
            self.born(procs, i);
            log(self.t0, &format!("m{i} restarted on its work dir"));
        }

        self.watch_leader(procs, shared);
        if now >= self.next_rss {
            self.next_rss = now + RSS_EVERY;
            self.sample_leader(procs, now);
        }
        for life in &mut self.lives {
            let warm_at = life.started.max(self.t0) + self.warmup;
            if life.warm.is_none()
                && now >= warm_at
                && procs.masters[life.master].pid() == Some(life.pid)
            {
                life.warm = rss_kib(life.pid);
            }
        }
        self.maybe_kill(procs, now);
        self.step_fill(procs, now)?;
        if now >= self.next_progress {
            self.next_progress += Duration::from_secs(30);
            log(
                self.t0,
                &format!(
                    "leader {}; tasks launched {}, terminal {}; writes acknowledged {}, unanswered {}; reads {}",
                    self.leader.map_or("none".into(), |l| format!("m{l}")),
                    progress.launched.load(Ordering::Relaxed),
                    progress.terminal.load(Ordering::Relaxed),
                    progress.acked.load(Ordering::Relaxed),
                    progress.unanswered.load(Ordering::Relaxed),
                    progress.reads.load(Ordering::Relaxed),
                ),
            );
        }
        Ok(())
    }

    fn watch_leader(&mut self, procs: &Procs, shared: &AtomicUsize) {
        let now = Instant::now();
        let leader = procs.leader();
        shared.store(leader.unwrap_or(usize::MAX), Ordering::Relaxed);
        match leader {
            None => {
                let since = *self.leaderless_since.get_or_insert(now);
                self.max_leaderless = self.max_leaderless.max(now - since);
            }
            Some(l) => {
                self.leaderless_since = None;
                if self.leader != Some(l) {
                    log(self.t0, &format!("m{l} leads"));
                    self.lead_ended(now);
                    if let Some(pid) = procs.masters[l].pid() {
                        self.leaderships.push(Leadership {
                            master: l,
                            pid,
                            from: now,
                            until: None,
                            samples: Vec::new(),
                        });
                    }
                }
                for k in &mut self.kills {
                    if k.new_leader_after.is_none() && k.master != l {
                        k.new_leader_after = Some(now - k.at);
                    }
                }
                if let (FillState::Holding(_), Some(f)) = (&self.fill_state, &mut self.fill)
                    && f.leaders.last() != Some(&l)
                {
                    f.leaders.push(l);
                }
            }
        }
        self.leader = leader;
    }

    /// The current leadership, if any, ended (before a kill, or when
    /// another master leads).
    pub fn lead_ended(&mut self, now: Instant) {
        if let Some(l) = self.leaderships.last_mut()
            && l.until.is_none()
        {
            l.until = Some(now);
        }
    }

    /// The RSS of the current leader, while it is the process that took
    /// the lead.
    pub fn sample_leader(&mut self, procs: &Procs, now: Instant) {
        let Some(l) = self.leaderships.last_mut() else {
            return;
        };
        if l.until.is_some() || procs.masters[l.master].pid() != Some(l.pid) {
            return;
        }
        if let Some(kib) = rss_kib(l.pid) {
            l.samples.push((now - l.from, kib));
        }
    }

    fn maybe_kill(&mut self, procs: &mut Procs, now: Instant) {
        let Some(at) = self.next_kill else {
            return;
        };
        if now < at {
            return;
        }
        // Not in the last 10 s (the drain follows), nor while the disk
        // fill plays out: one fault at a time.
        if now + Duration::from_secs(10) > self.end {
            self.next_kill = None;
            return;
        }
        if self.filling() {
            if !self.postponed {
                log(self.t0, "leader kill postponed until the disk fill is over");
                self.postponed = true;
            }
            return;
        }
        // Nor while a master is down or just restarted: one fault at a time.
        let settled = self.restarts.is_empty()
            && procs
                .masters
                .iter()
                .all(|m| m.running() && m.started.elapsed() > Duration::from_secs(5));
        let Some(l) = self.leader.filter(|_| settled) else {
            return;
        };
        let pid = procs.masters[l].pid().unwrap_or(0);
        self.sample_leader(procs, now);
        self.lead_ended(now);
        procs.kill_master(l);
        self.died(l);
        log(self.t0, &format!("kill -9 leader m{l} (pid {pid})"));
        self.kills.push(Kill {
            master: l,
            at: now,
            new_leader_after: None,
        });
        self.restarts.push((l, now + RESTART_AFTER));
        self.postponed = false;
        self.next_kill = Some(at + self.kill_every);
    }

    fn step_fill(&mut self, procs: &mut Procs, now: Instant) -> Result<()> {
        match self.fill_state {
            FillState::Waiting(at) if now >= at && self.restarts.is_empty() => {
                let Some(l) = self.leader else {
                    return Ok(());
                };
                let snapshot_before = snapshot_index(procs, l);
                let started = Instant::now();
                let bytes = procs.fill(l)?;
                log(
                    self.t0,
                    &format!(
                        "filled leader m{l}'s tmpfs: {:.1} MiB written in {:.1} s until ENOSPC; holding {}",
                        bytes as f64 / (1 << 20) as f64,
                        started.elapsed().as_secs_f64(),
                        show(self.fill_hold)
                    ),
                );
                self.fill = Some(Fill {
                    master: l,
                    bytes,
                    start: Some(started),
                    leaders: vec![l],
                    snapshot_before,
                    ..Fill::default()
                });
                let until = started + self.fill_hold;
                if self.fill_burst > 0 {
                    log(
                        self.t0,
                        &format!(
                            "burst of {} registry writes from {BURST_WRITERS} writers (a Raft snapshot is due every 5000 entries)",
                            self.fill_burst
                        ),
                    );
                    self.burst = Some(self.rt.spawn(registry::burst(
                        self.list.clone(),
                        self.fill_burst,
                        BURST_WRITERS,
                        until,
                    )));
                }
                self.fill_state = FillState::Holding(until);
            }
            FillState::Holding(until) => {
                let Some(f) = &mut self.fill else {
                    return Ok(());
                };
                let m = &procs.masters[f.master];
                if let Some(p) = m.api.client().masters().ok().and_then(|c| c.problem)
                    && !f.problems.contains(&p)
                {
                    log(self.t0, &format!("m{} reports: {p}", f.master));
                    f.problems.push(p);
                }
                if now >= until {
                    f.snapshot_after = snapshot_index(procs, f.master);
                    procs.free(f.master)?;
                    f.freed = Some(now);
                    f.target = self
                        .leader
                        .and_then(|l| procs.masters[l].api.client().masters().ok())
                        .and_then(|c| c.log?.last_index);
                    log(
                        self.t0,
                        &format!(
                            "freed m{}'s disk; waiting for it to apply index {}",
                            f.master,
                            f.target.map_or("?".into(), |t| t.to_string())
                        ),
                    );
                    self.fill_state = FillState::CatchingUp(now);
                }
            }
            FillState::CatchingUp(since) => {
                let Some(f) = &mut self.fill else {
                    return Ok(());
                };
                let applied = procs.masters[f.master]
                    .api
                    .client()
                    .masters()
                    .ok()
                    .and_then(|c| c.log?.applied_index);
                if let (Some(a), Some(t)) = (applied, f.target)
                    && a >= t
                {
                    f.caught_up = Some(now - since);
                    log(self.t0, &format!("m{} applied index {t} again", f.master));
                    self.fill_state = FillState::Done;
                } else if now - since > CATCH_UP_WITHIN {
                    log(
                        self.t0,
                        &format!(
                            "m{} did not apply index {} within {} of the disk freed (applied: {applied:?}); \
                             restarting it so that the run goes on with three masters",
                            f.master,
                            f.target.map_or("?".into(), |t| t.to_string()),
                            show(CATCH_UP_WITHIN)
                        ),
                    );
                    let i = f.master;
                    procs.kill_master(i);
                    self.died(i);
                    self.restarts.push((i, now + RESTART_AFTER));
                    self.fill_state = FillState::Done;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Master `i`'s last snapshot, as it reports it.
fn snapshot_index(procs: &Procs, i: usize) -> Option<u64> {
    procs.masters[i]
        .api
        .client()
        .masters()
        .ok()
        .and_then(|c| c.log?.snapshot_index)
}
