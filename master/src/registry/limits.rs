//! Explicit bounds on what agents and operators tell the master, checked
//! before anything becomes a command (and again by the registry, so that
//! nothing outside them is ever committed). Generous for real machines,
//! far below what would make the master slow or large.

use keel_api::attributes::{AttributeValue, Attributes};
use keel_api::inventory::Inventory;
use keel_api::resources::{Resources, Value};

use super::{AgentInfo, RegistryError};

/// Resource entries (name x role) of one agent or one request.
pub const MAX_RESOURCES: usize = 1024;
/// Items of one set resource, ranges of one ranges resource.
pub const MAX_ITEMS: usize = 10_000;
pub const MAX_ATTRIBUTES: usize = 256;
/// Names (resources, attributes) and short texts (version).
pub const MAX_NAME: usize = 256;
/// An attribute's text value.
pub const MAX_TEXT: usize = 4096;
/// A host name (DNS allows 253 characters).
pub const MAX_HOSTNAME: usize = 255;
pub const MAX_NICS: usize = 4096;
pub const MAX_DISKS: usize = 4096;
pub const MAX_ACCELERATORS: usize = 1024;
/// The whole inventory, as JSON.
pub const MAX_INVENTORY_BYTES: usize = 1 << 20;
/// The highest port a `ports` range may name.
pub const MAX_PORT: u64 = 65_535;

fn bad(m: String) -> RegistryError {
    RegistryError::InvalidRequest(m)
}

/// Printable text of at most `max` bytes.
fn text(what: &str, s: &str, max: usize) -> Result<(), RegistryError> {
    if s.len() > max {
        return Err(bad(format!(
            "{what} is {} bytes long (at most {max})",
            s.len()
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(format!("{what} {s:?} contains control characters")));
    }
    Ok(())
}

/// Everything an agent says about itself when it registers.
pub fn agent_info(info: &AgentInfo) -> Result<(), RegistryError> {
    if info.hostname.trim().is_empty() {
        return Err(bad("agent hostname is empty".into()));
    }
    text("agent hostname", &info.hostname, MAX_HOSTNAME)?;
    if info.hostname.contains(char::is_whitespace) {
        return Err(bad(format!(
            "agent hostname {:?} contains whitespace",
            info.hostname
        )));
    }
    if info.ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad(format!(
            "agent ip {:?} is not an IP address",
            truncated(&info.ip)
        )));
    }
    if info.port == 0 {
        return Err(bad("agent port is 0".into()));
    }
    text("agent version", &info.version, MAX_NAME)?;
    resources("agent resources", &info.resources)?;
    attributes(&info.attributes)?;
    inventory(&info.inventory)
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Resources: each entry valid (finite, non-negative, bounded scalars;
/// ordered ranges; unique set items; valid names and roles), within the
/// count limits, ports within 0-65535.
pub fn resources(what: &str, rs: &Resources) -> Result<(), RegistryError> {
    if rs.0.len() > MAX_RESOURCES {
        return Err(bad(format!(
            "{what}: {} entries (at most {MAX_RESOURCES})",
            rs.0.len()
        )));
    }
    for r in rs.iter() {
        text(&format!("{what}: resource name"), &r.name, MAX_NAME)?;
        let items = match &r.value {
            Value::Scalar(_) => 0,
            Value::Ranges(ranges) => ranges.len(),
            Value::Set(items) => items.len(),
        };
        if items > MAX_ITEMS {
            return Err(bad(format!(
                "{what}: {} has {items} items (at most {MAX_ITEMS})",
                r.name
            )));
        }
        if let Value::Ranges(ranges) = &r.value
            && r.name == "ports"
            && ranges.iter().any(|x| x.end > MAX_PORT)
        {
            return Err(bad(format!("{what}: ports above {MAX_PORT}")));
        }
    }
    rs.clone()
        .checked()
        .map(|_| ())
        .map_err(|e| bad(format!("{what}: {e}")))
}

fn attributes(attrs: &Attributes) -> Result<(), RegistryError> {
    if attrs.0.len() > MAX_ATTRIBUTES {
        return Err(bad(format!(
            "agent attributes: {} (at most {MAX_ATTRIBUTES})",
            attrs.0.len()
        )));
    }
    for a in &attrs.0 {
        if a.name.is_empty() {
            return Err(bad("agent attribute with an empty name".into()));
        }
        text("agent attribute name", &a.name, MAX_NAME)?;
        match &a.value {
            AttributeValue::Scalar(v) if !v.is_finite() => {
                return Err(bad(format!("agent attribute {} is not finite", a.name)));
            }
            AttributeValue::Ranges(r)
                if r.len() > MAX_ITEMS || r.iter().any(|x| x.begin > x.end) =>
            {
                return Err(bad(format!("agent attribute {}: invalid ranges", a.name)));
            }
            AttributeValue::Text(t) => text(&format!("agent attribute {}", a.name), t, MAX_TEXT)?,
            _ => {}
        }
    }
    Ok(())
}

fn inventory(inv: &Inventory) -> Result<(), RegistryError> {
    for (what, n, max) in [
        ("NICs", inv.nics.len(), MAX_NICS),
        ("disks", inv.disks.len(), MAX_DISKS),
        ("accelerators", inv.accelerators.len(), MAX_ACCELERATORS),
    ] {
        if n > max {
            return Err(bad(format!("agent inventory: {n} {what} (at most {max})")));
        }
    }
    let size = serde_json::to_vec(inv)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_INVENTORY_BYTES {
        return Err(bad(format!(
            "agent inventory is {size} bytes as JSON (at most {MAX_INVENTORY_BYTES})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_api::resources::{Range, Resource};

    fn info() -> AgentInfo {
        AgentInfo {
            hostname: "node-1".into(),
            ip: "10.0.0.1".into(),
            port: 5051,
            resources: Resources::parse("cpus:4;mem:1024;ports:[31000-32000]").unwrap(),
            attributes: Attributes::default(),
            version: "0.1.0".into(),
            inventory: Inventory::default(),
        }
    }

    fn refused(f: impl FnOnce(&mut AgentInfo), needle: &str) {
        let mut i = info();
        f(&mut i);
        let err = agent_info(&i).unwrap_err().to_string();
        assert!(err.contains(needle), "{err} lacks {needle}");
    }

    #[test]
    fn what_the_fault_campaign_sent_is_refused() {
        assert_eq!(agent_info(&info()), Ok(()));
        let scalar = |name: &str, v: f64| Resource {
            name: name.into(),
            role: "*".into(),
            value: Value::Scalar(v),
        };
        refused(|i| i.resources.0.push(scalar("gpus", -5.0)), "negative");
        refused(
            |i| i.resources.0.push(scalar("gpus", f64::NAN)),
            "not finite",
        );
        refused(
            |i| i.resources.0.push(scalar("gpus", f64::INFINITY)),
            "not finite",
        );
        refused(|i| i.resources.0.push(scalar("gpus", 1e300)), "larger than");
        refused(|i| i.resources.0.push(scalar("", 1.0)), "empty");
        refused(
            |i| {
                i.resources.0.push(Resource {
                    role: "../x".into(),
                    ..scalar("x", 1.0)
                })
            },
            "role",
        );
        refused(
            |i| {
                i.resources.0[2].value = Value::Ranges(vec![Range::new(9, 3)]);
            },
            "begin greater than end",
        );
        refused(
            |i| i.resources.0[2].value = Value::Ranges(vec![Range::new(0, u64::MAX)]),
            "ports above",
        );
        refused(|i| i.hostname = "h".repeat(1 << 20), "bytes long");
        refused(|i| i.ip = "not-an-ip; rm -rf /".into(), "not an IP address");
        refused(
            |i| i.inventory.nics = vec![Default::default(); MAX_NICS + 1],
            "NICs",
        );
        refused(
            |i| {
                for n in 0..=MAX_RESOURCES {
                    i.resources.0.push(scalar(&format!("r{n}"), 1.0));
                }
            },
            "entries",
        );
    }
}
