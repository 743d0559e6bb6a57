//! The overview page and the frameworks page, rendered from one
//! [`Snapshot`] the caller may see.

use std::collections::BTreeMap;

use keel_api::keel::Cluster;
use keel_api::resources::Resources;

use super::html::{bar, esc, link, num, table, url};
use crate::engine::Snapshot;
use crate::registry::AgentState;

/// What a counter block shows: a label and its count, with the element
/// id the page's script and tests find it by.
fn counters(id: &str, counts: &BTreeMap<String, usize>) -> String {
    let mut out = format!("<ul class=\"counters\" id=\"{}\">", esc(id));
    for (name, n) in counts {
        out.push_str(&format!(
            "<li><span class=\"count\" id=\"{id}-{k}\">{n}</span> {name}</li>",
            id = esc(id),
            k = esc(&name.to_lowercase()),
            name = esc(name),
        ));
    }
    out.push_str("</ul>");
    out
}

/// Agents by state (every state listed, zero or not).
pub fn agents_by_state(s: &Snapshot) -> BTreeMap<String, usize> {
    let mut by: BTreeMap<String, usize> = [
        AgentState::Active,
        AgentState::Disconnected,
        AgentState::Unreachable,
    ]
    .iter()
    .map(|st| (st.as_str().to_string(), 0))
    .collect();
    for a in s.registry.agents() {
        *by.entry(a.state.as_str().to_string()).or_default() += 1;
    }
    by
}

/// Tasks (live and completed) by state, only the states that occur.
pub fn tasks_by_state(s: &Snapshot) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for t in s.live.iter().chain(s.completed.iter()) {
        *by.entry(t.state.name().to_string()).or_default() += 1;
    }
    by
}

/// What the active agents offer in all.
fn total(s: &Snapshot) -> Resources {
    let mut total = Resources::default();
    for a in s
        .registry
        .agents()
        .filter(|a| a.state == AgentState::Active)
    {
        total.add(&a.total_resources());
    }
    total
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn overview(s: &Snapshot, cluster: &Cluster) -> String {
    let mut out = String::from("<h1>Overview</h1><section><h2>Masters</h2>");
    let leader = cluster.leader.as_deref().unwrap_or("none known");
    out.push_str(&format!(
        "<p>Leader: <strong id=\"leader\">{}</strong> · term {}",
        esc(leader),
        cluster.term
    ));
    if let Some(log) = &cluster.log {
        out.push_str(&format!(
            " · log index {} · applied {}",
            opt(log.last_index),
            opt(log.applied_index)
        ));
    }
    out.push_str("</p>");
    if let Some(problem) = &cluster.problem {
        out.push_str(&format!("<p class=\"problem\">{}</p>", esc(problem)));
    }
    out.push_str("</section><section><h2>Agents</h2>");
    out.push_str(&counters("agents", &agents_by_state(s)));
    out.push_str("</section><section><h2>Tasks</h2>");
    let tasks = tasks_by_state(s);
    match tasks.is_empty() {
        true => out.push_str("<p id=\"tasks\">no tasks yet</p>"),
        false => out.push_str(&counters("tasks", &tasks)),
    }
    out.push_str("</section><section><h2>Resources</h2>");
    let (total, used, offered) = (total(s), s.used(|_| true), s.offered(|_, _| true));
    for name in ["cpus", "mem", "disk", "gpus"] {
        out.push_str(&bar(
            name,
            used.scalar(name),
            offered.scalar(name),
            total.scalar(name),
        ));
    }
    out.push_str("</section>");
    out
}

pub fn frameworks(s: &Snapshot) -> String {
    let rows: Vec<(String, Vec<String>)> = s
        .frameworks
        .iter()
        .map(|f| {
            let of = |t: &&crate::core::TaskView| t.framework_id == f.id;
            let running = s.live.iter().filter(of).count();
            let done = s.completed.iter().filter(of).count();
            let used = s.used(|t| t.framework_id == f.id);
            let offered = s.offered(|fw, _| fw == f.id);
            let roles = match f.info.roles.is_empty() {
                true => f.info.role.clone().unwrap_or_else(|| "*".into()),
                false => f.info.roles.join(", "),
            };
            let tasks = format!("/ui/tasks?framework={}", url(&f.id));
            (
                format!("framework-{}", f.id),
                vec![
                    esc(&f.id),
                    esc(&f.info.name),
                    esc(&f.info.user),
                    esc(&roles),
                    if f.connected { "yes" } else { "no" }.into(),
                    link(&tasks, &format!("{running} live, {done} done")),
                    format!(
                        "{} cpus, {} mem",
                        num(used.scalar("cpus")),
                        num(used.scalar("mem"))
                    ),
                    format!(
                        "{} cpus, {} mem",
                        num(offered.scalar("cpus")),
                        num(offered.scalar("mem"))
                    ),
                ],
            )
        })
        .collect();
    let head = [
        "ID",
        "Name",
        "User",
        "Roles",
        "Connected",
        "Tasks",
        "Allocated",
        "Offered",
    ];
    format!(
        "<h1>Frameworks</h1><p>{} frameworks</p>{}",
        rows.len(),
        table("frameworks", &head, &rows)
    )
}
