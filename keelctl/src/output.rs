//! Human-readable renderings of API answers.

use std::fmt::Write;

use serde_json::Value as Json;

pub fn print_json(v: &Json) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn num(v: &Json) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) => format!("{f}"),
        None => "-".into(),
    }
}

fn s(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "-".into(),
        other => other.to_string(),
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

pub fn agents_table(body: &Json) -> String {
    let rows: Vec<Vec<String>> = body["agents"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let r = &a["resources"];
            vec![
                s(&a["id"]),
                s(&a["hostname"]),
                format!("{}:{}", s(&a["ip"]), num(&a["port"])),
                s(&a["state"]),
                num(&r["cpus"]),
                num(&r["mem"]),
                num(&r["disk"]),
                num(&r["gpus"]),
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

fn bytes(v: &Json) -> String {
    let Some(b) = v.as_u64() else {
        return "-".into();
    };
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
fn tpm_line(tpm: &Json) -> String {
    if tpm.is_null() {
        return "unknown".into();
    }
    if tpm["present"].as_bool() != Some(true) {
        return "none".into();
    }
    let mut parts = Vec::new();
    if let Some(m) = tpm["manufacturer"].as_str() {
        let vendor = tpm["vendor"].as_str().unwrap_or_default();
        parts.push(format!("{m} {vendor}").trim().to_string());
    }
    if let Some(f) = tpm["family"].as_str() {
        parts.push(format!("TPM {f}"));
    }
    if let Some(f) = tpm["firmware_version"].as_str() {
        parts.push(format!("firmware {f}"));
    }
    let ek = &tpm["ek"];
    if let Some(sha) = ek["sha256"].as_str() {
        parts.push(format!("EK {} sha256:{sha}", s(&ek["algorithm"])));
    }
    if let Some(e) = tpm["error"].as_str() {
        parts.push(format!("error: {e}"));
    }
    if parts.is_empty() {
        "present".into()
    } else {
        parts.join(", ")
    }
}

pub fn agent_details(a: &Json) -> String {
    let inv = &a["inventory"];
    let cpu = &inv["cpu"];
    let mem = &inv["memory"];
    let mut out = String::new();
    let _ = writeln!(out, "Agent:      {}", s(&a["id"]));
    let _ = writeln!(out, "Hostname:   {}", s(&a["hostname"]));
    let _ = writeln!(out, "Address:    {}:{}", s(&a["ip"]), num(&a["port"]));
    let _ = writeln!(out, "State:      {}", s(&a["state"]));
    let _ = writeln!(out, "Version:    {}", s(&a["version"]));
    let _ = writeln!(out, "Resources:  {}", s(&a["resources_text"]));
    let _ = writeln!(out, "Attributes: {}", a["attributes"]);
    let _ = writeln!(
        out,
        "CPU:        {} logical, {} cores, {} sockets, {} NUMA nodes, {} ({})",
        num(&cpu["logical"]),
        num(&cpu["cores"]),
        num(&cpu["sockets"]),
        num(&cpu["numa_nodes"]),
        s(&cpu["model"]),
        s(&cpu["online"])
    );
    let _ = writeln!(
        out,
        "Memory:     {} total, {} available, {} swap",
        bytes(&mem["total_bytes"]),
        bytes(&mem["available_bytes"]),
        bytes(&mem["swap_total_bytes"])
    );
    let _ = writeln!(out, "TPM:        {}", tpm_line(&inv["tpm"]));
    let empty = Vec::new();
    let disks: Vec<Vec<String>> = inv["disks"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|d| {
            vec![
                s(&d["name"]),
                bytes(&d["size_bytes"]),
                s(&d["transport"]),
                if d["rotational"].as_bool() == Some(true) {
                    "hdd"
                } else {
                    "ssd"
                }
                .into(),
                s(&d["model"]),
                s(&d["serial"]),
                d["partitions"].as_array().map_or(0, Vec::len).to_string(),
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
    let nics: Vec<Vec<String>> = inv["nics"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|n| {
            let addrs: Vec<String> = n["addresses"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|a| format!("{}/{}", s(&a["address"]), num(&a["prefix_len"])))
                .collect();
            vec![
                s(&n["name"]),
                s(&n["mac"]),
                num(&n["mtu"]),
                s(&n["oper_state"]),
                s(&n["driver"]),
                s(&n["pci_address"]),
                n["speed_mbps"]
                    .as_u64()
                    .map_or("-".into(), |v| format!("{v}Mb/s")),
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
    let accel: Vec<Vec<String>> = inv["accelerators"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|p| {
            vec![
                s(&p["address"]),
                s(&p["kind"]),
                s(&p["vendor_name"]),
                format!(
                    "{:04x}:{:04x}",
                    p["vendor_id"].as_u64().unwrap_or(0),
                    p["device_id"].as_u64().unwrap_or(0)
                ),
                s(&p["driver"]),
            ]
        })
        .collect();
    if !accel.is_empty() {
        let _ = writeln!(out, "\nAccelerators:");
        out += &table(&["PCI", "KIND", "VENDOR", "ID", "DRIVER"], &accel);
    }
    out
}

fn sum_scalar(resources: &Json, name: &str) -> f64 {
    resources
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["scalar"]["value"].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}

pub fn frameworks_table(body: &Json) -> String {
    let empty = Vec::new();
    let mut rows = Vec::new();
    for (list, active) in [("frameworks", true), ("completed_frameworks", false)] {
        for f in body[list].as_array().unwrap_or(&empty) {
            let info = &f["framework_info"];
            let roles = info["roles"]
                .as_array()
                .map(|r| r.iter().map(s).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| info["role"].as_str().unwrap_or("*").to_string());
            rows.push(vec![
                s(&info["id"]["value"]),
                s(&info["name"]),
                roles,
                if !active {
                    "completed".into()
                } else if f["connected"].as_bool() == Some(true) {
                    "connected".into()
                } else {
                    "disconnected".into()
                },
                num(&serde_json::json!(sum_scalar(
                    &f["allocated_resources"],
                    "cpus"
                ))),
                num(&serde_json::json!(sum_scalar(
                    &f["allocated_resources"],
                    "mem"
                ))),
            ]);
        }
    }
    table(&["ID", "NAME", "ROLES", "STATE", "CPUS", "MEM(MB)"], &rows)
}

pub fn tasks_table(body: &Json) -> String {
    let empty = Vec::new();
    let mut rows = Vec::new();
    for list in ["tasks", "unreachable_tasks", "completed_tasks"] {
        for t in body[list].as_array().unwrap_or(&empty) {
            rows.push(vec![
                s(&t["task_id"]["value"]),
                s(&t["name"]),
                s(&t["framework_id"]["value"]),
                s(&t["agent_id"]["value"]),
                s(&t["state"]),
                num(&serde_json::json!(sum_scalar(&t["resources"], "cpus"))),
                num(&serde_json::json!(sum_scalar(&t["resources"], "mem"))),
            ]);
        }
    }
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

pub fn masters_table(body: &Json) -> String {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = body["members"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| {
            vec![
                num(&m["id"]),
                s(&m["address"]),
                if m["leader"].as_bool() == Some(true) {
                    "leader"
                } else {
                    "follower"
                }
                .into(),
                if m["voter"].as_bool() == Some(true) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
                if m["id"] == body["me"] {
                    "*".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = format!("term {}", num(&body["term"]));
    if let Some(log) = body["log"].as_object() {
        out += &format!(
            ", log {} (applied {})",
            num(&log["last_index"]),
            num(&log["applied_index"])
        );
    }
    out.push('\n');
    if let Some(problem) = body["problem"].as_str() {
        out += &format!("PROBLEM: {problem}\n");
    }
    out += &table(&["ID", "ADDRESS", "ROLE", "VOTE", "ASKED"], &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agents_table_lists_each_agent() {
        let body = json!({"agents": [{
            "id": "m-S0", "hostname": "node1", "ip": "127.0.0.1", "port": 5051,
            "state": "active",
            "resources": {"cpus": 2.0, "mem": 23000.0, "disk": 1000.0, "gpus": 0.0}
        }]});
        let t = agents_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[1].contains("m-S0") && lines[1].contains("23000") && lines[1].contains("active")
        );
    }

    #[test]
    fn masters_table_shows_log_and_problem() {
        let body = json!({
            "leader": "127.0.0.1:5050", "term": 3, "me": 7,
            "members": [
                {"id": 7, "address": "127.0.0.1:5050", "voter": true, "leader": true},
                {"id": 9, "address": "127.0.0.1:5060", "voter": true, "leader": false}
            ],
            "log": {"last_index": 42, "applied_index": 41, "snapshot_index": null},
            "problem": "the --masters lists disagree"
        });
        let t = masters_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "term 3, log 42 (applied 41)");
        assert_eq!(lines[1], "PROBLEM: the --masters lists disagree");
        assert!(lines[3].contains("leader") && lines[3].ends_with('*'));
        assert!(lines[4].contains("follower"));
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(bytes(&json!(512)), "512 B");
        assert_eq!(bytes(&json!(3u64 << 30)), "3.0 GiB");
    }

    #[test]
    fn tpm_line_shows_identity_or_why_not() {
        let tpm = json!({
            "present": true, "device": "/dev/tpmrm0", "family": "2.0", "level": 0,
            "revision": "1.64", "manufacturer": "IBM", "vendor": "SW   TPM",
            "firmware_version": "8217.4131.22.13878",
            "ek": {"algorithm": "rsa2048", "sha256": "1f5f"}
        });
        assert_eq!(
            tpm_line(&tpm),
            "IBM SW   TPM, TPM 2.0, firmware 8217.4131.22.13878, EK rsa2048 sha256:1f5f"
        );
        assert_eq!(tpm_line(&json!({"present": false})), "none");
        assert_eq!(tpm_line(&Json::Null), "unknown");
        assert_eq!(
            tpm_line(&json!({"present": true, "error": "cannot open"})),
            "error: cannot open"
        );
        let agent = json!({"id": "a1", "inventory": {"tpm": tpm}});
        assert!(
            agent_details(&agent).contains("TPM:        IBM SW   TPM, TPM 2.0"),
            "{}",
            agent_details(&agent)
        );
    }
}
