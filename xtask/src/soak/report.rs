//! The soak's checks and its summary. A check fails the run:
//!
//! - **writes lost**: the final `GET_WEIGHTS` must show the last
//!   acknowledged write or a later unanswered one;
//! - **reads went back**: no read below an earlier read or below a write
//!   acknowledged before it began;
//! - **tasks lost**: a task whose ACCEPT was answered 202 that never
//!   reached a terminal state, or got TASK_LOST / DROPPED / GONE /
//!   UNKNOWN from reconciliation or from losing its agent (a launch the
//!   master refused at once, for an offer that was no longer valid or an
//!   agent it could not reach, is counted apart: the task never existed);
//! - **tasks duplicated**: a task seen RUNNING on two agents, or on another
//!   agent than it was launched on, or RUNNING though never launched or
//!   launched with a refused ACCEPT;
//! - **bad requests answered wrongly**: a malformed request not answered
//!   4xx, an oversized one neither 413 nor closed (307 from a follower and
//!   503 without a leader are tolerated), or either not answered in time
//!   (a malformed request closed without an answer, or sent to a master
//!   that is down, is counted, not failed);
//! - **processes that exited by themselves** (masters or agents);
//! - **the disk fill**: writes during the hold answered 200 or 503 (or
//!   refused unapplied), never another error or a timeout; reads never
//!   stopped for more than 5 s; the filled master applies the leader's log
//!   again within 30 s of the disk freed.
//!
//! Figures (ACCEPT -> TASK_RUNNING, failover times, RSS, counts) are
//! printed, with a block ready for BENCHMARKS.md.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::abuse::{Ending, Tally, wrong};
use super::registry::{self, Outcome};
use super::tasks::{history, tasks};
use super::{Run, SoakArgs, show};
use crate::cluster::percentile;

/// Reads may stop for at most this long while the disk is full.
const READ_GAP: Duration = Duration::from_secs(5);

pub struct Verdict {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
    /// The figures of the BENCHMARKS.md table row.
    pub row: Vec<String>,
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn at(run: &Run, t: Instant) -> String {
    format!("{:.1} s", t.saturating_duration_since(run.t0).as_secs_f64())
}

fn tally_line(what: &str, t: &Tally, good: &str, oversized: bool) -> (String, usize) {
    let leader_ok = t.count(|e, f| {
        !f && match e {
            Ending::Status(s) if oversized => *s == 413,
            Ending::Status(s) => (400..500).contains(s),
            Ending::Closed => oversized,
            _ => false,
        }
    });
    let follower_ok = t.count(|e, f| {
        f && match e {
            Ending::Status(s) => (400..500).contains(s) || *s == 307,
            Ending::Closed => oversized,
            _ => false,
        }
    });
    let closed = t.count(|e, _| *e == Ending::Closed);
    let not_leading = t.count(|e, f| !f && matches!(e, Ending::Status(307 | 503)));
    let refused = t.count(|e, _| *e == Ending::Refused);
    let bad = t.count(|e, _| wrong(e, oversized));
    let mut by_status: Vec<String> = Vec::new();
    for ((e, f), n) in &t.endings {
        by_status.push(format!(
            "{} {}{n}",
            match e {
                Ending::Status(s) => s.to_string(),
                other => format!("{other:?}").to_lowercase(),
            },
            if *f { "(follower) " } else { "" }
        ));
    }
    let line = format!(
        "{what}: {} sent; {good} from the leader {leader_ok}, from a follower (incl. 307) {follower_ok}; \
         closed without an answer {closed}; leader had just changed (307/503) {not_leading}; \
         master down {refused}; wrong {bad} [{}]",
        t.sent(),
        by_status.join(", ")
    );
    (line, bad)
}

pub fn evaluate(run: &Run, args: &SoakArgs) -> Verdict {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut row = Vec::new();

    lines.push(format!(
        "keel soak: 3 masters ({}), 2 agents, release build, loopback; {} of load, \
         leader kill every {}, disk fill {}",
        if run.tmpfs {
            format!("each on a {} MiB tmpfs", args.tmpfs_mib)
        } else {
            "work dirs on disk".into()
        },
        show(run.loaded_for),
        if args.kill_every.is_zero() {
            "never".into()
        } else {
            show(args.kill_every)
        },
        match &run.fill_skipped {
            Some(_) => "skipped".to_string(),
            None => format!("at {} for {}", show(args.fill_at), show(args.fill_hold)),
        }
    ));
    row.push(format!(
        "{}, kill every {}, fill at {}",
        show(run.loaded_for),
        show(args.kill_every),
        if run.fill_skipped.is_some() {
            "-".into()
        } else {
            show(args.fill_at)
        }
    ));

    // Leader kills.
    let mut failovers: Vec<f64> = run
        .kills
        .iter()
        .filter_map(|k| k.new_leader_after.map(ms))
        .collect();
    failovers.sort_by(f64::total_cmp);
    lines.push(format!(
        "leader kills: {}{}; longest without a serving leader {:.1} s",
        run.kills.len(),
        if failovers.is_empty() {
            String::new()
        } else {
            format!(
                ", new leader serving after min {:.0} ms, p50 {:.0} ms, max {:.0} ms",
                failovers[0],
                percentile(&failovers, 0.5),
                failovers[failovers.len() - 1]
            )
        },
        run.max_leaderless.as_secs_f64()
    ));
    row.push(run.kills.len().to_string());

    // The disk fill.
    fill(run, &mut lines, &mut failures, &mut row);

    // The registry.
    let last = run.final_read.as_ref().ok().map(|(r, _)| r);
    let v = registry::check(&run.writes, &run.reads.ok, last);
    lines.push(format!(
        "registry: {} writes acknowledged, {} unanswered, {} refused; final weight {}, last acknowledged {}: lost {}; {} reads ({} failed), went back {}",
        v.acked,
        v.unknown,
        v.not_done,
        v.final_value.map_or("?".into(), |x| x.to_string()),
        v.last_acked.map_or("-".into(), |x| x.to_string()),
        usize::from(v.lost.is_some()),
        run.reads.ok.len(),
        run.reads.failed.len(),
        v.went_back.len()
    ));
    if let Err(e) = &run.final_read {
        failures.push(format!("no final read of the weights: {e}"));
    }
    if !run.burst.is_empty() {
        let all = run.final_read.as_ref().ok().map(|(_, all)| all);
        let mut lost = Vec::new();
        let (mut acked, mut unknown, mut not_done) = (0, 0, 0);
        for (role, writes) in &run.burst {
            for w in writes {
                match w.outcome {
                    Outcome::Acked => acked += 1,
                    Outcome::Unknown(_) => unknown += 1,
                    Outcome::NotDone(_) => not_done += 1,
                }
            }
            let seen = all.and_then(|a| a.get(role).copied());
            if let Some(l) = registry::final_lost(writes, seen) {
                lost.push(format!("{role}: {l}"));
            }
        }
        lines.push(format!(
            "registry burst during the fill: {} roles, {acked} writes acknowledged, {unknown} unanswered, {not_done} refused: lost {}",
            run.burst.len(),
            lost.len()
        ));
        if !lost.is_empty() {
            failures.push(format!(
                "acknowledged burst writes lost: {}",
                lost.join("; ")
            ));
        }
    }
    if let Some(lost) = &v.lost {
        failures.push(format!("acknowledged registry write lost: {lost}"));
    }
    if !v.went_back.is_empty() {
        failures.push(format!(
            "reads went back ({}): {}",
            v.went_back.len(),
            v.went_back
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    row.push(format!("{} / {}", v.acked, usize::from(v.lost.is_some())));

    // Tasks.
    let t = tasks(run);
    lines.push(format!(
        "tasks: {} launched (ACCEPT 202; also {} unanswered, {} refused ACCEPTs), {} finished, {} failed, \
         {} refused at launch (offer no longer valid); lost {}, duplicated {}; reported lost then seen again {}; \
         {} subscriptions; failed calls {:?}; drained: {}{}",
        t.confirmed,
        t.unconfirmed,
        t.refused,
        t.finished,
        t.failed,
        t.dropped_at_launch,
        t.lost.len(),
        t.duplicated.len(),
        t.came_back,
        run.framework.subscriptions.len(),
        run.framework.call_errors,
        run.framework.drained,
        run.framework
            .drain_took
            .map(|d| format!(" in {:.1} s", d.as_secs_f64()))
            .unwrap_or_default()
    ));
    if !t.lost.is_empty() {
        failures.push(format!("{} tasks lost", t.lost.len()));
        for l in t.lost.iter().take(20) {
            lines.push(format!("  lost: {l}"));
        }
    }
    if !t.no_running.is_empty() {
        lines.push(format!(
            "  finished without a TASK_RUNNING seen: {} (not a failed check; the first: {})",
            t.no_running.len(),
            t.no_running
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !t.duplicated.is_empty() {
        failures.push(format!("{} tasks duplicated", t.duplicated.len()));
        for d in t.duplicated.iter().take(20) {
            lines.push(format!("  duplicated: {d}"));
        }
    }
    row.push(format!(
        "{} / {} / {}",
        t.confirmed,
        t.lost.len(),
        t.duplicated.len()
    ));
    if t.latencies.is_empty() {
        lines.push("ACCEPT -> TASK_RUNNING: no samples".into());
        row.push("-".into());
    } else {
        let l = &t.latencies;
        lines.push(format!(
            "ACCEPT -> TASK_RUNNING: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} tasks",
            percentile(l, 0.5),
            percentile(l, 0.99),
            l[l.len() - 1],
            l.len()
        ));
        row.push(format!(
            "{:.1} / {:.1} / {:.0} ms",
            percentile(l, 0.5),
            percentile(l, 0.99),
            l[l.len() - 1]
        ));
    }

    // Bad requests.
    let (line, bad) = tally_line("malformed", &run.abuse.malformed, "4xx", false);
    lines.push(line);
    if bad > 0 {
        failures.push(format!(
            "{bad} malformed requests answered wrongly: {}",
            run.abuse.malformed.wrong.join("; ")
        ));
    }
    let (line, bad_big) = tally_line(
        "oversized (20 MiB)",
        &run.abuse.oversized,
        "413 or closed",
        true,
    );
    lines.push(line);
    if bad_big > 0 {
        failures.push(format!(
            "{bad_big} oversized requests answered wrongly: {}",
            run.abuse.oversized.wrong.join("; ")
        ));
    }
    let s = &run.abuse.slowloris;
    // A connection closed within a second of its master's death went with
    // it; the others the master closed while alive (a timeout).
    let by_death = |(m, _, closed): &&(usize, Instant, Instant)| {
        run.lives.iter().any(|l| {
            l.master == *m
                && l.ended.is_some_and(|e| {
                    closed.saturating_duration_since(e) < Duration::from_secs(1)
                        && e.saturating_duration_since(*closed) < Duration::from_secs(1)
                })
        })
    };
    let died = s.closed_by_master.iter().filter(by_death).count();
    let mut ages: Vec<f64> = s
        .closed_by_master
        .iter()
        .filter(|c| !by_death(c))
        .map(|(_, opened, closed)| closed.duration_since(*opened).as_secs_f64())
        .collect();
    ages.sort_by(f64::total_cmp);
    lines.push(format!(
        "slowloris: {} opened, {} refused; closed when their master was killed {died}, closed by a live master {}{}{}; \
         closed by the soak to make room {}, open at the end {}",
        s.opened,
        s.refused,
        ages.len(),
        if ages.is_empty() {
            String::new()
        } else {
            format!(
                " (when min {:.1} s, p50 {:.1} s, max {:.1} s old)",
                ages[0],
                percentile(&ages, 0.5),
                ages[ages.len() - 1]
            )
        },
        if s.answers.is_empty() {
            String::new()
        } else {
            format!(" answering {:?}", s.answers.iter().collect::<BTreeSet<_>>())
        },
        s.evicted,
        s.open_at_end
    ));
    row.push(format!(
        "{} / {} / {}",
        run.abuse.malformed.sent(),
        run.abuse.oversized.sent(),
        s.opened
    ));

    super::memory::report(run, args, &mut lines, &mut failures, &mut row);

    // Processes.
    if run.exits.is_empty() {
        lines.push(format!(
            "processes: none exited by itself; {}",
            if run.unclean_stop.is_empty() {
                "all stopped cleanly on SIGTERM".to_string()
            } else {
                format!("at the end: {}", run.unclean_stop.join(", "))
            }
        ));
    } else {
        lines.push(format!("processes: {}", run.exits.join("; ")));
        failures.push(format!(
            "processes exited by themselves: {}",
            run.exits.join("; ")
        ));
    }

    lines.push(if failures.is_empty() {
        "result: PASS".into()
    } else {
        format!("result: FAIL ({})", failures.len())
    });
    row.push(if failures.is_empty() {
        "pass".into()
    } else {
        "FAIL".into()
    });
    Verdict {
        lines,
        failures,
        row,
    }
}

fn fill(run: &Run, lines: &mut Vec<String>, failures: &mut Vec<String>, row: &mut Vec<String>) {
    let Some(f) = &run.fill else {
        row.push("-".into());
        if let Some(why) = &run.fill_skipped {
            lines.push(format!("disk fill: {why}"));
        } else {
            lines.push("disk fill: did not happen (no leader at the time?)".into());
            failures.push("the disk fill did not happen".into());
        }
        return;
    };
    let (Some(start), Some(freed)) = (f.start, f.freed) else {
        row.push("-".into());
        lines.push(format!("disk fill: m{} filled but never freed", f.master));
        failures.push("the disk fill did not finish".into());
        return;
    };
    let during = |t: Instant| t >= start && t <= freed;
    let writes: Vec<&registry::Write> = run
        .writes
        .iter()
        .chain(run.burst.values().flatten())
        .filter(|w| during(w.invoked))
        .collect();
    let acked = writes
        .iter()
        .filter(|w| w.outcome == Outcome::Acked)
        .count();
    let refused_503 = writes
        .iter()
        .filter(|w| matches!(&w.outcome, Outcome::Unknown(e) if e.contains("503")))
        .count();
    let not_done = writes
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::NotDone(_)))
        .count();
    let other: Vec<String> = writes
        .iter()
        .filter_map(|w| match &w.outcome {
            Outcome::Unknown(e) if !e.contains("503") => {
                Some(format!("write {} at {}: {e}", w.value, at(run, w.invoked)))
            }
            _ => None,
        })
        .collect();
    let reads_ok: Vec<Instant> = run
        .reads
        .ok
        .iter()
        .filter(|r| during(r.completed))
        .map(|r| r.completed)
        .collect();
    let reads_failed = run.reads.failed.iter().filter(|(t, _)| during(*t)).count();
    let mut gap = Duration::ZERO;
    let mut prev = start;
    for t in reads_ok.iter().copied().chain([freed]) {
        gap = gap.max(t.saturating_duration_since(prev));
        prev = t;
    }
    lines.push(format!(
        "disk fill: m{} (the leader) filled with {:.1} MiB at {} until ENOSPC, freed at {}; during it: \
         writes {} acknowledged, {} answered 503, {} refused unapplied, {} otherwise; reads {} ok, {} failed, \
         longest without a read {:.1} s; leaders {}; its snapshot index {} before, {} at the end of the hold; {}; it said: {}",
        f.master,
        f.bytes as f64 / (1 << 20) as f64,
        at(run, start),
        at(run, freed),
        acked,
        refused_503,
        not_done,
        other.len(),
        reads_ok.len(),
        reads_failed,
        gap.as_secs_f64(),
        f.leaders
            .iter()
            .map(|l| format!("m{l}"))
            .collect::<Vec<_>>()
            .join(" -> "),
        f.snapshot_before.map_or("none".into(), |i| i.to_string()),
        f.snapshot_after.map_or("none (or no answer)".into(), |i| i.to_string()),
        match f.caught_up {
            Some(d) => format!("after freeing, m{} applied the leader's log in {:.1} s", f.master, d.as_secs_f64()),
            None => format!(
                "after freeing, m{} did NOT apply the leader's log (index {}) within {} (then restarted)",
                f.master,
                f.target.map_or("?".into(), |t| t.to_string()),
                show(super::CATCH_UP_WITHIN)
            ),
        },
        if f.problems.is_empty() {
            "no problem reported".to_string()
        } else {
            f.problems.join(" | ")
        }
    ));
    if !other.is_empty() {
        failures.push(format!(
            "{} writes during the disk fill ended otherwise than 200 or 503: {}",
            other.len(),
            other.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if gap > READ_GAP {
        failures.push(format!(
            "reads stopped for {:.1} s during the disk fill",
            gap.as_secs_f64()
        ));
    }
    if f.caught_up.is_none() {
        failures.push(format!(
            "the filled master m{} did not catch up within {} of the disk freed",
            f.master,
            show(super::CATCH_UP_WITHIN)
        ));
    }
    row.push(format!(
        "{} acked / {} 503 / {} other",
        acked,
        refused_503,
        other.len()
    ));
}

/// Writes every task's and every write's history beside the logs
/// (`tasks.txt`, `writes.txt`), for a post-mortem.
pub fn dump(run: &Run, dir: &Path) {
    let mut tasks = String::new();
    for (id, t) in &run.framework.tasks {
        tasks.push_str(&format!(
            "{id}\tACCEPT at {} on {}: {:?}\t{}\n",
            at(run, t.accepted),
            t.agent,
            t.accept,
            history(run, t)
        ));
    }
    for (id, state) in &run.framework.strangers {
        tasks.push_str(&format!("{id}\tnever launched\t{state:?}\n"));
    }
    let _ = std::fs::write(dir.join("tasks.txt"), tasks);
    let mut writes = String::new();
    let burst = run
        .burst
        .iter()
        .flat_map(|(role, w)| w.iter().map(move |w| (role.as_str(), w)));
    for (role, w) in run.writes.iter().map(|w| (registry::ROLE, w)).chain(burst) {
        writes.push_str(&format!(
            "{role}\t{}\t{} -> {}\t{:?}\n",
            w.value,
            at(run, w.invoked),
            at(run, w.completed),
            w.outcome
        ));
    }
    let _ = std::fs::write(dir.join("writes.txt"), writes);
}

/// Prints the summary, the failures and a block for BENCHMARKS.md.
pub fn print(v: &Verdict, run: &Run, args: &SoakArgs, dir: &Path) {
    println!();
    for l in &v.lines {
        println!("{l}");
    }
    for f in &v.failures {
        println!("FAILED: {f}");
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let fill_arg = if run.fill_skipped.is_some() {
        String::new()
    } else {
        format!(" --fill-at {}", show(args.fill_at))
    };
    println!();
    println!("---- for BENCHMARKS.md (section Soak) ----");
    println!("| {date} UTC | {} |", v.row.join(" | "));
    println!();
    println!(
        "Command: `cargo xtask soak --minutes {} --kill-every {}{fill_arg}`",
        args.minutes,
        show(args.kill_every)
    );
    println!();
    println!("```");
    for l in &v.lines {
        println!("{l}");
    }
    println!("```");
    println!("---- end ----");
    if !v.failures.is_empty() {
        println!("logs: {}", dir.display());
    }
}
