//! Human-readable renderings of the typed API answers, and stdout.

use std::fmt::Write as _;
use std::io::Write as _;

use keel_api::inventory::TpmInfo;
use keel_api::keel::{AgentDetail, Agents, Cluster};
use keel_api::legacy::{LegacyMap, LegacyValue};
use keel_api::operator::{GetFrameworks, GetTasks};
use keel_api::resources::v1::Resource;
use serde::Serialize;

/// Writes `text` to stdout. A reader that went away (`| head`, `| grep -q`)
/// is an error [`is_broken_pipe`] recognizes, not a panic.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

pub fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    print(&format!("{text}\n"))?;
    Ok(())
}

/// Whether `e` is stdout's reader having gone away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

fn s(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

/// A legacy resource as a number, `-` when absent.
fn legacy_num(map: &LegacyMap, name: &str) -> String {
    match map.get(name) {
        Some(LegacyValue::Number(v)) => num(*v),
        Some(LegacyValue::Text(t)) => t.clone(),
        None => "-".into(),
    }
}

/// Renders rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn agents_table(body: &Agents) -> String {
    let rows: Vec<Vec<String>> = body
        .agents
        .iter()
        .map(|a| {
            let r = &a.resources;
            vec![
                a.id.clone(),
                a.hostname.clone(),
                format!("{}:{}", a.ip, a.port),
                a.state.to_string(),
                legacy_num(r, "cpus"),
                legacy_num(r, "mem"),
                legacy_num(r, "disk"),
                legacy_num(r, "gpus"),
            ]
        })
        .collect();
    table(
        &[
            "ID", "HOSTNAME", "ADDRESS", "STATE", "CPUS", "MEM(MB)", "DISK(MB)", "GPUS",
        ],
        &rows,
    )
}

fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The inventory's `tpm`: manufacturer, firmware and the endorsement key's
/// fingerprint; `none` for a machine without one, `unknown` when the agent
/// did not say (one from before TPM discovery).
fn tpm_line(tpm: Option<&TpmInfo>) -> String {
    let Some(tpm) = tpm else {
        return "unknown".into();
    };
    if !tpm.present {
        return "none".into();
    }
    let mut parts = Vec::new();
    if let Some(m) = &tpm.manufacturer {
        let vendor = tpm.vendor.as_deref().unwrap_or_default();
        parts.push(format!("{m} {vendor}").trim().to_string());
    }
    if let Some(f) = &tpm.family {
        parts.push(format!("TPM {f}"));
    }
    if let Some(f) = &tpm.firmware_version {
        parts.push(format!("firmware {f}"));
    }
    if let Some(ek) = &tpm.ek {
        parts.push(format!("EK {} sha256:{}", ek.algorithm, ek.sha256));
    }
    if let Some(e) = &tpm.error {
        parts.push(format!("error: {e}"));
    }
    if parts.is_empty() {
        "present".into()
    } else {
        parts.join(", ")
    }
}

pub fn agent_details(a: &AgentDetail) -> String {
    let (sum, inv) = (&a.summary, &a.inventory);
    let (cpu, mem) = (&inv.cpu, &inv.memory);
    let attributes = serde_json::to_string(&sum.attributes).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "Agent:      {}", sum.id);
    let _ = writeln!(out, "Hostname:   {}", sum.hostname);
    let _ = writeln!(out, "Address:    {}:{}", sum.ip, sum.port);
    let _ = writeln!(out, "State:      {}", sum.state);
    let _ = writeln!(out, "Version:    {}", sum.version);
    let _ = writeln!(out, "Resources:  {}", sum.resources_text);
    let _ = writeln!(out, "Attributes: {attributes}");
    let _ = writeln!(
        out,
        "CPU:        {} logical, {} cores, {} sockets, {} NUMA nodes, {} ({})",
        cpu.logical, cpu.cores, cpu.sockets, cpu.numa_nodes, cpu.model, cpu.online
    );
    let _ = writeln!(
        out,
        "Memory:     {} total, {} available, {} swap",
        bytes(mem.total_bytes),
        bytes(mem.available_bytes),
        bytes(mem.swap_total_bytes)
    );
    let _ = writeln!(out, "TPM:        {}", tpm_line(inv.tpm.as_ref()));
    let disks: Vec<Vec<String>> = inv
        .disks
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                bytes(d.size_bytes),
                d.transport.clone(),
                if d.rotational { "hdd" } else { "ssd" }.into(),
                s(d.model.as_deref()),
                s(d.serial.as_deref()),
                d.partitions.len().to_string(),
            ]
        })
        .collect();
    let _ = writeln!(out, "\nDisks:");
    out += &table(
        &[
            "NAME",
            "SIZE",
            "TRANSPORT",
            "MEDIA",
            "MODEL",
            "SERIAL",
            "PARTS",
        ],
        &disks,
    );
    let nics: Vec<Vec<String>> = inv
        .nics
        .iter()
        .map(|n| {
            let addrs: Vec<String> = n
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.address, a.prefix_len))
                .collect();
            vec![
                n.name.clone(),
                s(n.mac.as_deref()),
                n.mtu.to_string(),
                n.oper_state.clone(),
                s(n.driver.as_deref()),
                s(n.pci_address.as_deref()),
                n.speed_mbps.map_or("-".into(), |v| format!("{v}Mb/s")),
                addrs.join(","),
            ]
        })
        .collect();
    let _ = writeln!(out, "\nNICs:");
    out += &table(
        &[
            "NAME",
            "MAC",
            "MTU",
            "STATE",
            "DRIVER",
            "PCI",
            "SPEED",
            "ADDRESSES",
        ],
        &nics,
    );
    let accel: Vec<Vec<String>> = inv
        .accelerators
        .iter()
        .map(|p| {
            vec![
                p.address.clone(),
                p.kind.as_str().to_string(),
                s(p.vendor_name.as_deref()),
                format!("{:04x}:{:04x}", p.vendor_id, p.device_id),
                s(p.driver.as_deref()),
            ]
        })
        .collect();
    if !accel.is_empty() {
        let _ = writeln!(out, "\nAccelerators:");
        out += &table(&["PCI", "KIND", "VENDOR", "ID", "DRIVER"], &accel);
    }
    out
}

fn sum_scalar(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .map(Resource::scalar_value)
        .sum()
}

pub fn frameworks_table(body: &GetFrameworks) -> String {
    let mut rows = Vec::new();
    for (list, active) in [
        (&body.frameworks, true),
        (&body.completed_frameworks, false),
    ] {
        for f in list {
            let info = &f.framework_info;
            let roles = if info.roles.is_empty() {
                info.role.clone().unwrap_or_else(|| "*".into())
            } else {
                info.roles.join(",")
            };
            rows.push(vec![
                f.id().to_string(),
                info.name.clone(),
                roles,
                if !active {
                    "completed".into()
                } else if f.connected {
                    "connected".into()
                } else {
                    "disconnected".into()
                },
                num(sum_scalar(f.allocated(), "cpus")),
                num(sum_scalar(f.allocated(), "mem")),
            ]);
        }
    }
    table(&["ID", "NAME", "ROLES", "STATE", "CPUS", "MEM(MB)"], &rows)
}

pub fn tasks_table(body: &GetTasks) -> String {
    let rows: Vec<Vec<String>> = body
        .all()
        .map(|t| {
            vec![
                t.task_id.value.clone(),
                t.name.clone(),
                t.framework_id.value.clone(),
                t.agent_id.value.clone(),
                t.state.name().to_string(),
                num(sum_scalar(&t.resources, "cpus")),
                num(sum_scalar(&t.resources, "mem")),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "FRAMEWORK",
            "AGENT",
            "STATE",
            "CPUS",
            "MEM(MB)",
        ],
        &rows,
    )
}

pub fn masters_table(body: &Cluster) -> String {
    let rows: Vec<Vec<String>> = body
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.address.clone(),
                if m.leader { "leader" } else { "follower" }.into(),
                if m.voter { "voter" } else { "learner" }.into(),
                if m.id == body.me {
                    "*".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = format!("term {}", body.term);
    if let Some(log) = &body.log {
        out += &format!(
            ", log {} (applied {})",
            opt_num(log.last_index.map(|i| i as f64)),
            opt_num(log.applied_index.map(|i| i as f64))
        );
    }
    out.push('\n');
    if let Some(problem) = &body.problem {
        out += &format!("PROBLEM: {problem}\n");
    }
    out += &table(&["ID", "ADDRESS", "ROLE", "VOTE", "ASKED"], &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::inventory::{EndorsementKey, Inventory};
    use keel_api::keel::{AgentState, AgentSummary, LogPosition, Member};
    use serde_json::json;

    fn summary() -> AgentSummary {
        serde_json::from_value(json!({
            "id": "m-S0", "hostname": "node1", "ip": "127.0.0.1", "port": 5051,
            "state": "active", "version": "0.1.0", "registered_time": 1.0,
            "reregistered_time": null, "unreachable_time": null,
            "resources": {"cpus": 2.0, "mem": 23000.0, "disk": 1000.0, "gpus": 0.0},
            "resources_text": "cpus:2;mem:23000;disk:1000", "attributes": {}
        }))
        .unwrap()
    }

    #[test]
    fn agents_table_lists_each_agent() {
        let body = Agents {
            agents: vec![summary()],
        };
        let t = agents_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[1].contains("m-S0") && lines[1].contains("23000") && lines[1].contains("active")
        );
        assert_eq!(body.agents[0].state, AgentState::Active);
    }

    #[test]
    fn masters_table_shows_log_and_problem() {
        let member = |id, port, leader| Member {
            id,
            address: format!("127.0.0.1:{port}"),
            voter: true,
            leader,
        };
        let body = Cluster {
            leader: Some("127.0.0.1:5050".into()),
            term: 3,
            me: 7,
            members: vec![member(7, 5050, true), member(9, 5060, false)],
            log: Some(LogPosition {
                last_index: Some(42),
                applied_index: Some(41),
                snapshot_index: None,
            }),
            problem: Some("the --masters lists disagree".into()),
        };
        let t = masters_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "term 3, log 42 (applied 41)");
        assert_eq!(lines[1], "PROBLEM: the --masters lists disagree");
        assert!(lines[3].contains("leader") && lines[3].ends_with('*'));
        assert!(lines[4].contains("follower"));
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3u64 << 30), "3.0 GiB");
    }

    #[test]
    fn tpm_line_shows_identity_or_why_not() {
        let tpm = TpmInfo {
            present: true,
            device: Some("/dev/tpmrm0".into()),
            family: Some("2.0".into()),
            level: Some(0),
            revision: Some("1.64".into()),
            manufacturer: Some("IBM".into()),
            vendor: Some("SW   TPM".into()),
            firmware_version: Some("8217.4131.22.13878".into()),
            ek: Some(EndorsementKey {
                algorithm: "rsa2048".into(),
                sha256: "1f5f".into(),
            }),
            error: None,
        };
        assert_eq!(
            tpm_line(Some(&tpm)),
            "IBM SW   TPM, TPM 2.0, firmware 8217.4131.22.13878, EK rsa2048 sha256:1f5f"
        );
        assert_eq!(tpm_line(Some(&TpmInfo::absent())), "none");
        assert_eq!(tpm_line(None), "unknown");
        let broken = TpmInfo {
            present: true,
            error: Some("cannot open".into()),
            ..TpmInfo::default()
        };
        assert_eq!(tpm_line(Some(&broken)), "error: cannot open");
        let agent = AgentDetail {
            summary: AgentSummary {
                id: "a1".into(),
                ..summary()
            },
            inventory: Inventory {
                tpm: Some(tpm),
                ..Inventory::default()
            },
        };
        assert!(
            agent_details(&agent).contains("TPM:        IBM SW   TPM, TPM 2.0"),
            "{}",
            agent_details(&agent)
        );
    }

    #[test]
    fn broken_pipes_are_recognized() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&e.context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
