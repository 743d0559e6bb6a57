//! The agents table (search, sort, server-side paging) and one agent's
//! page: its hardware inventory, resources, attributes and tasks.

use std::cmp::Ordering;

use keel_api::inventory::Inventory;

use super::html::{bytes, esc, link, num, table, time, url};
use super::query::{AgentSort, AgentsQuery, UiError};
use super::tasks::task_rows;
use crate::engine::Snapshot;
use crate::registry::{AgentRecord, DrainState};

/// The row of one agent in the agents table.
pub fn agent_row(s: &Snapshot, a: &AgentRecord) -> (String, Vec<String>) {
    let used = s.used(|t| t.agent_id == a.id);
    let total = a.total_resources();
    let tasks = s.live.iter().filter(|t| t.agent_id == a.id).count();
    (
        format!("agent-{}", a.id),
        vec![
            link(&format!("/ui/agents/{}", url(&a.id)), &a.id),
            esc(&a.info.hostname),
            format!(
                "<span class=\"state state-{0}\">{0}</span>",
                a.state.as_str()
            ),
            format!(
                "{} / {}",
                num(used.scalar("cpus")),
                num(total.scalar("cpus"))
            ),
            format!("{} / {}", num(used.scalar("mem")), num(total.scalar("mem"))),
            tasks.to_string(),
        ],
    )
}

fn compare(q: &AgentsQuery, a: &AgentRecord, b: &AgentRecord) -> Ordering {
    let scalar = |r: &AgentRecord, name: &str| r.total_resources().scalar(name);
    let by = match q.sort {
        AgentSort::Hostname => a.info.hostname.cmp(&b.info.hostname),
        AgentSort::Id => a.id.cmp(&b.id),
        AgentSort::State => a.state.as_str().cmp(b.state.as_str()),
        AgentSort::Cpus => scalar(a, "cpus").total_cmp(&scalar(b, "cpus")),
        AgentSort::Mem => scalar(a, "mem").total_cmp(&scalar(b, "mem")),
    };
    let by = by.then_with(|| a.id.cmp(&b.id));
    if q.descending { by.reverse() } else { by }
}

/// The agents that match `q`, in its order.
pub fn matching<'a>(s: &'a Snapshot, q: &AgentsQuery) -> Vec<&'a AgentRecord> {
    let needle = q.search.to_lowercase();
    let mut agents: Vec<&AgentRecord> = s
        .registry
        .agents()
        .filter(|a| {
            needle.is_empty()
                || a.id.to_lowercase().contains(&needle)
                || a.info.hostname.to_lowercase().contains(&needle)
        })
        .collect();
    agents.sort_by(|a, b| compare(q, a, b));
    agents
}

/// The query string of `q` with another page.
fn href(q: &AgentsQuery, page: usize) -> String {
    let sort = match q.sort {
        AgentSort::Hostname => "hostname",
        AgentSort::Id => "id",
        AgentSort::State => "state",
        AgentSort::Cpus => "cpus",
        AgentSort::Mem => "mem",
    };
    let order = if q.descending { "desc" } else { "asc" };
    format!(
        "/ui/agents?q={}&sort={sort}&order={order}&page={page}&per_page={}",
        url(&q.search),
        q.paging.per_page
    )
}

pub fn agents(s: &Snapshot, q: &AgentsQuery) -> String {
    let all = matching(s, q);
    let pages = q.paging.pages(all.len());
    let rows: Vec<_> = q
        .paging
        .slice(&all)
        .iter()
        .map(|a| agent_row(s, a))
        .collect();
    let mut out = format!(
        "<h1>Agents</h1><form class=\"filters\" method=\"get\" action=\"/ui/agents\">\
         <input name=\"q\" id=\"agent-search\" placeholder=\"id or hostname\" value=\"{}\">\
         <select name=\"sort\">",
        esc(&q.search)
    );
    for (value, label, sort) in [
        ("hostname", "hostname", AgentSort::Hostname),
        ("id", "id", AgentSort::Id),
        ("state", "state", AgentSort::State),
        ("cpus", "cpus", AgentSort::Cpus),
        ("mem", "mem", AgentSort::Mem),
    ] {
        let selected = if q.sort == sort { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{value}\"{selected}>{label}</option>"
        ));
    }
    let desc = if q.descending { " selected" } else { "" };
    out.push_str(&format!(
        "</select><select name=\"order\"><option value=\"asc\">ascending</option>\
         <option value=\"desc\"{desc}>descending</option></select>\
         <button type=\"submit\">Show</button></form>\
         <p id=\"agents-count\">{} agents · page {} of {pages}</p>",
        all.len(),
        q.paging.page
    ));
    out.push_str(&table(
        "agents",
        &[
            "ID",
            "Hostname",
            "State",
            "CPUs used / total",
            "Mem used / total (MB)",
            "Tasks",
        ],
        &rows,
    ));
    out.push_str("<p class=\"pager\">");
    if q.paging.page > 1 {
        out.push_str(&link(&href(q, q.paging.page - 1), "« previous"));
    }
    if q.paging.page < pages {
        out.push_str(&link(&href(q, q.paging.page + 1), "next »"));
    }
    out.push_str("</p>");
    out
}

fn definition_list(items: &[(&str, String)]) -> String {
    let mut out = String::from("<dl>");
    for (k, v) in items {
        out.push_str(&format!("<dt>{}</dt><dd>{v}</dd>", esc(k)));
    }
    out.push_str("</dl>");
    out
}

fn inventory(inv: &Inventory) -> String {
    let c = &inv.cpu;
    let m = &inv.memory;
    let mut out = String::from("<section id=\"inventory\"><h2>Hardware</h2>");
    out.push_str(&definition_list(&[
        ("CPU", esc(&format!("{} {}", c.vendor, c.model))),
        (
            "Topology",
            format!(
                "{} logical, {} cores, {} sockets, {} NUMA nodes",
                c.logical, c.cores, c.sockets, c.numa_nodes
            ),
        ),
        (
            "Memory",
            format!(
                "{} total, {} available, {} swap",
                bytes(m.total_bytes),
                bytes(m.available_bytes),
                bytes(m.swap_total_bytes)
            ),
        ),
    ]));
    let disks: Vec<_> = inv
        .disks
        .iter()
        .map(|d| {
            let model = d.model.as_deref().unwrap_or("");
            (
                format!("disk-{}", d.name),
                vec![
                    esc(&d.name),
                    bytes(d.size_bytes),
                    esc(model),
                    esc(&d.transport),
                    if d.rotational {
                        "rotational"
                    } else {
                        "solid state"
                    }
                    .into(),
                ],
            )
        })
        .collect();
    out.push_str("<h3>Disks</h3>");
    out.push_str(&table(
        "disks",
        &["Name", "Size", "Model", "Transport", "Kind"],
        &disks,
    ));
    let nics: Vec<_> = inv
        .nics
        .iter()
        .map(|n| {
            let addrs: Vec<String> = n
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.address, a.prefix_len))
                .collect();
            let speed = n
                .speed_mbps
                .map(|s| format!("{s} Mb/s"))
                .unwrap_or_default();
            (
                format!("nic-{}", n.name),
                vec![
                    esc(&n.name),
                    esc(n.mac.as_deref().unwrap_or("")),
                    esc(&speed),
                    esc(&n.oper_state),
                    esc(&addrs.join(", ")),
                ],
            )
        })
        .collect();
    out.push_str("<h3>Network interfaces</h3>");
    out.push_str(&table(
        "nics",
        &["Name", "MAC", "Speed", "State", "Addresses"],
        &nics,
    ));
    let accelerators: Vec<_> = inv
        .accelerators
        .iter()
        .map(|p| {
            (
                format!("pci-{}", p.address),
                vec![
                    esc(&p.address),
                    esc(p.vendor_name.as_deref().unwrap_or("")),
                    format!("{:04x}:{:04x}", p.vendor_id, p.device_id),
                    esc(p.driver.as_deref().unwrap_or("")),
                ],
            )
        })
        .collect();
    out.push_str("<h3>Accelerators</h3>");
    out.push_str(&table(
        "accelerators",
        &["Address", "Vendor", "ID", "Driver"],
        &accelerators,
    ));
    out.push_str("<h3>TPM</h3>");
    let tpm = match &inv.tpm {
        None => "none reported".to_string(),
        Some(t) if !t.present => "not present".to_string(),
        Some(t) => {
            let ek =
                t.ek.as_ref()
                    .map(|e| e.algorithm.as_str())
                    .unwrap_or("no endorsement key read");
            esc(&format!(
                "{} {} (family {}), endorsement key: {ek}",
                t.manufacturer.as_deref().unwrap_or("unknown maker"),
                t.firmware_version.as_deref().unwrap_or(""),
                t.family.as_deref().unwrap_or("?"),
            ))
        }
    };
    out.push_str(&format!("<p id=\"tpm\">{tpm}</p></section>"));
    out
}

/// The agent's drain, deactivation and maintenance window, in words.
fn maintenance(s: &Snapshot, a: &AgentRecord) -> String {
    let m = s.registry.maintenance();
    let mut parts = Vec::new();
    if let Some(d) = m.drains.get(&a.id) {
        parts.push(match d.state {
            DrainState::Draining => "draining",
            DrainState::Drained => "drained",
        });
    } else if m.deactivated.contains(&a.id) {
        parts.push("deactivated");
    }
    if m.window_of(&a.info).is_some() {
        parts.push("scheduled for maintenance");
    }
    if parts.is_empty() {
        parts.push("none");
    }
    format!("<span id=\"agent-maintenance\">{}</span>", parts.join(", "))
}

pub fn agent(s: &Snapshot, id: &str) -> Result<String, UiError> {
    let a = s
        .registry
        .agent(id)
        .ok_or_else(|| UiError::NotFound(format!("agent {id}")))?;
    let used = s.used(|t| t.agent_id == a.id);
    let mut out = format!("<h1>Agent {}</h1>", esc(&a.info.hostname));
    out.push_str(&definition_list(&[
        ("ID", esc(&a.id)),
        (
            "State",
            format!("<span id=\"agent-state\">{}</span>", a.state.as_str()),
        ),
        ("Address", esc(&format!("{}:{}", a.info.ip, a.info.port))),
        ("Version", esc(&a.info.version)),
        ("Registered", time(a.registered_time)),
        ("Resources", esc(&a.total_resources().to_string())),
        ("Used", esc(&used.to_string())),
        ("Attributes", esc(&a.info.attributes.to_string())),
        ("Maintenance", maintenance(s, a)),
    ]));
    out.push_str(&inventory(&a.info.inventory));
    let tasks: Vec<_> = s.live.iter().filter(|t| t.agent_id == a.id).collect();
    out.push_str("<section><h2>Running tasks</h2>");
    out.push_str(&task_rows("agent-tasks", &tasks));
    out.push_str("</section>");
    Ok(out)
}
