//! The soak's memory figures: each master's RSS over its life (after the
//! warm-up -> at the end), and the one the check is made on, the leader's
//! over each leadership. The leader holds the task table, the offers and
//! every stream; a leak under load shows there. A new leader grows while
//! it rebuilds its state and fills its bounded histories (the last 1,000
//! completed tasks), so each leadership is compared from
//! `--leader-warmup` into it to its end; one that lasted at least
//! `MEASURED` past that point and grew more than `GROWTH` fails the run.
//! Its RSS at each minute is printed too, to show where it levels off.

use std::time::Duration;

use super::report::{at, mib};
use super::{Run, SoakArgs, show};

/// The growth allowed from the warm-up to the end of a leadership.
const GROWTH: f64 = 0.20;
/// How long after its warm-up a leadership must last to be checked.
const MEASURED: Duration = Duration::from_secs(100);

pub fn report(
    run: &Run,
    args: &SoakArgs,
    lines: &mut Vec<String>,
    failures: &mut Vec<String>,
    row: &mut Vec<String>,
) {
    let mut lives = Vec::new();
    for life in &run.lives {
        let (Some(warm), Some(end)) = (life.warm, life.end) else {
            continue;
        };
        let mut tags = Vec::new();
        if life.start == 1 {
            tags.push("whole run".to_string());
        } else {
            tags.push(format!("started at {}", at(run, life.started)));
        }
        if run.leader_at_end == Some(life.master) {
            tags.push("leader".into());
        }
        lives.push(format!(
            "m{} ({}) {} -> {}",
            life.master,
            tags.join(", "),
            mib(warm),
            mib(end)
        ));
    }
    lines.push(format!(
        "master RSS, each process (after the {} warm-up -> end): {}",
        show(args.warmup),
        if lives.is_empty() {
            "no master lived past its warm-up to the end".into()
        } else {
            lives.join("; ")
        }
    ));

    let mut leads = Vec::new();
    let mut worst: Option<f64> = None;
    for l in &run.leaderships {
        let Some((last_at, last)) = l.last() else {
            continue;
        };
        let minutes: Vec<String> = (1..)
            .map(|m| Duration::from_secs(60 * m))
            .take_while(|t| *t <= last_at)
            .filter_map(|t| Some(format!("{} {:.1}", show(t), l.at(t)? as f64 / 1024.0)))
            .collect();
        let Some(warm) = l.at(args.leader_warmup) else {
            leads.push(format!(
                "m{} from {} for {:.0} s (shorter than the warm-up): [{}] MiB",
                l.master,
                at(run, l.from),
                last_at.as_secs_f64(),
                minutes.join(", ")
            ));
            continue;
        };
        let growth = last as f64 / warm as f64 - 1.0;
        let checked = last_at >= args.leader_warmup + MEASURED;
        leads.push(format!(
            "m{} from {} for {:.0} s: {} -> {} ({:+.0} %{}), peak {}; by minute [{}] MiB",
            l.master,
            at(run, l.from),
            last_at.as_secs_f64(),
            mib(warm),
            mib(last),
            growth * 100.0,
            if checked { "" } else { ", too short to check" },
            mib(l.peak().unwrap_or(last)),
            minutes.join(", ")
        ));
        if checked {
            worst = Some(worst.map_or(growth, |w: f64| w.max(growth)));
            if growth > GROWTH {
                failures.push(format!(
                    "leader m{}'s RSS grew {:.0} % over its leadership from {} ({} -> {})",
                    l.master,
                    growth * 100.0,
                    at(run, l.from),
                    mib(warm),
                    mib(last)
                ));
            }
        }
    }
    lines.push(format!(
        "leader RSS, each leadership ({} into it -> its end): {}",
        show(args.leader_warmup),
        if leads.is_empty() {
            "no leadership lasted past its warm-up".into()
        } else {
            leads.join("; ")
        }
    ));
    row.push(match worst {
        Some(w) => format!("{:+.0} % (worst leadership)", w * 100.0),
        None => "-".into(),
    });
}
