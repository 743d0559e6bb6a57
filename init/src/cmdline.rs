//! The kernel command line as Keel reads it: a pure parser from the text of
//! `/proc/cmdline` to a [`BootConfig`], plus what was wrong with it.
//!
//! | parameter | meaning | default |
//! |---|---|---|
//! | `keel.role=agent\|master` | which binary to run | `agent` |
//! | `keel.masters=H:P[,H:P...]` | masters the agent registers with | required for agents |
//! | `keel.resources=...` | `--resources` of the agent (Mesos syntax) | discovered |
//! | `keel.attributes=...` | `--attributes` of the agent | none |
//! | `keel.hostname=NAME` | host name | DHCP option 12, else `keel-<mac>` |
//! | `keel.port=N` | port the agent (5051) or master (5050) listens on | per role |
//! | `keel.workdisk=auto\|none\|NAME\|serial:S` | disk holding the work dirs | `auto` |
//! | `keel.modules=a,b` | extra modules to load at boot | none |
//! | `keel.log=FILTER` | `KEEL_LOG` of init and the service | `info` |
//! | `BOOTIF=01-aa-bb-cc-dd-ee-ff`, `keel.iface=MAC` | NIC to run DHCP on | every NIC |
//! | `keel.ca=sha256:<hex>` | the cluster CA's fingerprint: TLS to the masters, the CA fetched from them and checked | plaintext |
//! | `keel.token=TOKEN` | a join token (masters with `--agent-admission token`) | none |
//!
//! Values may be double-quoted (`keel.attributes="rack:r 1"`), as the kernel
//! allows; everything after a lone `--` belongs to init's argv and is ignored.
//! A bad value never stops the boot: [`parse`] returns the defaults for it
//! and a [`CmdlineError`] that names it, and init logs that and retries.

use std::fmt;

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Agent,
    Master,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Master => "master",
        }
    }

    /// The port the role listens on unless `keel.port` says otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Role::Agent => 5051,
            Role::Master => 5050,
        }
    }
}

/// Which disk holds the work dirs (`/var/lib/keel`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkDisk {
    /// Mount a file system labelled `KEEL-DATA` if one exists; never format.
    #[default]
    Auto,
    /// Keep the work dirs in RAM.
    None,
    /// This kernel block device name (`vdb`, `nvme0n1`); formatted when blank.
    Device(String),
    /// The disk whose serial number is this; formatted when blank.
    Serial(String),
}

/// A `HOST:PORT` master address, already checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MasterAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for MasterAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Keel's settings from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct BootConfig {
    pub role: Role,
    pub masters: Vec<MasterAddr>,
    pub resources: Option<String>,
    pub attributes: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub work_disk: WorkDisk,
    pub extra_modules: Vec<String>,
    pub log: Option<String>,
    /// The NIC to configure, by MAC (lower case, colon separated).
    pub boot_mac: Option<String>,
    /// `keel.ca`: `sha256:<64 hex digits>`, lower case.
    pub ca_fingerprint: Option<String>,
    /// `keel.token`: a secret, never printed.
    #[serde(skip)]
    pub join_token: Option<String>,
}

impl BootConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.role.default_port())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("keel.role={0:?} is not agent or master")]
    Role(String),
    #[error("keel.masters is missing; an agent needs keel.masters=HOST:PORT[,HOST:PORT...]")]
    NoMasters,
    #[error("keel.masters={value:?} is malformed: entry {entry:?} {reason}")]
    Masters {
        value: String,
        entry: String,
        reason: &'static str,
    },
    #[error("keel.port={0:?} is not a port number (1-65535)")]
    Port(String),
    #[error("keel.hostname={0:?} is not a valid host name")]
    Hostname(String),
    #[error("keel.workdisk={0:?} is empty")]
    WorkDisk(String),
    #[error("{param}={value:?} is not a MAC address")]
    Mac { param: &'static str, value: String },
    #[error("keel.ca={0:?} is not a fingerprint: expected sha256:<64 hex digits>")]
    Ca(String),
}

/// A parsed command line: the configuration, with defaults where a value was
/// bad, and the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub config: BootConfig,
    pub errors: Vec<CmdlineError>,
}

impl Parsed {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Splits a command line into `(key, value)` pairs the way the kernel does:
/// on unquoted white space, with double quotes removed. A bare word has no
/// value. Stops at `--`.
pub fn tokenize(cmdline: &str) -> Vec<(String, Option<String>)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
        .into_iter()
        .take_while(|w| w != "--")
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

/// Parses Keel's parameters out of a kernel command line. The last
/// occurrence of a parameter wins, as for the kernel's own.
pub fn parse(cmdline: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut masters_seen = false;
    for (key, value) in tokenize(cmdline) {
        let value = value.unwrap_or_default();
        let c = &mut p.config;
        match key.as_str() {
            "keel.role" => match value.as_str() {
                "agent" => c.role = Role::Agent,
                "master" => c.role = Role::Master,
                _ => p.errors.push(CmdlineError::Role(value)),
            },
            "keel.masters" => {
                masters_seen = true;
                match parse_masters(&value) {
                    Ok(m) => c.masters = m,
                    Err(e) => {
                        c.masters.clear();
                        p.errors.push(e);
                    }
                }
            }
            "keel.resources" => c.resources = Some(value).filter(|v| !v.is_empty()),
            "keel.attributes" => c.attributes = Some(value).filter(|v| !v.is_empty()),
            "keel.hostname" => {
                if valid_hostname(&value) {
                    c.hostname = Some(value);
                } else {
                    p.errors.push(CmdlineError::Hostname(value));
                }
            }
            "keel.port" => match value.parse::<u16>() {
                Ok(port) if port != 0 => c.port = Some(port),
                _ => p.errors.push(CmdlineError::Port(value)),
            },
            "keel.workdisk" => match value.as_str() {
                "" => p.errors.push(CmdlineError::WorkDisk(value)),
                "auto" => c.work_disk = WorkDisk::Auto,
                "none" => c.work_disk = WorkDisk::None,
                v => {
                    c.work_disk = match v.strip_prefix("serial:") {
                        Some("") => {
                            p.errors.push(CmdlineError::WorkDisk(value.clone()));
                            WorkDisk::Auto
                        }
                        Some(serial) => WorkDisk::Serial(serial.to_string()),
                        None => WorkDisk::Device(v.trim_start_matches("/dev/").to_string()),
                    }
                }
            },
            "keel.modules" => c.extra_modules.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string),
            ),
            "keel.log" => c.log = Some(value).filter(|v| !v.is_empty()),
            "keel.ca" => match parse_fingerprint(&value) {
                Some(fp) => c.ca_fingerprint = Some(fp),
                None => p.errors.push(CmdlineError::Ca(value)),
            },
            "keel.token" => c.join_token = Some(value).filter(|v| !v.is_empty()),
            "keel.iface" => match parse_mac(&value) {
                Some(mac) => c.boot_mac = Some(mac),
                None => p.errors.push(CmdlineError::Mac {
                    param: "keel.iface",
                    value,
                }),
            },
            // pxelinux/iPXE convention: `01-` is the ARP type of Ethernet.
            "BOOTIF" => match value.strip_prefix("01-").and_then(parse_mac) {
                Some(mac) => c.boot_mac = Some(mac),
                None => p.errors.push(CmdlineError::Mac {
                    param: "BOOTIF",
                    value,
                }),
            },
            _ => {}
        }
    }
    if p.config.role == Role::Agent
        && !masters_seen
        && !p
            .errors
            .iter()
            .any(|e| matches!(e, CmdlineError::Masters { .. }))
    {
        p.errors.push(CmdlineError::NoMasters);
    }
    p
}

/// `HOST:PORT[,HOST:PORT...]`; an IPv6 host is bracketed (`[fd00::1]:5050`).
pub fn parse_masters(value: &str) -> Result<Vec<MasterAddr>, CmdlineError> {
    let bad = |entry: &str, reason| CmdlineError::Masters {
        value: value.to_string(),
        entry: entry.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(bad(entry, "is empty"));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(entry, "has no closing ']'"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad(entry, "has an invalid IPv6 address"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad(entry, "has no port (want HOST:PORT)"))?;
            (host, port)
        } else {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| bad(entry, "has no port (want HOST:PORT)"))?;
            if host.contains(':') {
                return Err(bad(entry, "is an IPv6 address without brackets"));
            }
            if host.is_empty() {
                return Err(bad(entry, "has no host"));
            }
            if !valid_hostname(host) {
                return Err(bad(entry, "has an invalid host name"));
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(entry, "has an invalid port (want 1-65535)"))?;
        out.push(MasterAddr {
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// RFC 1123 host names (dotted labels of letters, digits and hyphens), which
/// also covers dotted-quad IPv4 addresses.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `sha256:<64 hex digits>` in lower case.
fn parse_fingerprint(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let hex = v.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case, to lower case with
/// colons.
pub fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16) -> MasterAddr {
        MasterAddr {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn trust_parameters() {
        let fp = format!("sha256:{}", "AB".repeat(32));
        let p = parse(&format!(
            "keel.masters=m:5050 keel.ca={fp} keel.token=keel1.x.y"
        ));
        assert!(p.is_ok(), "{:?}", p.errors);
        assert_eq!(p.config.ca_fingerprint, Some(fp.to_ascii_lowercase()));
        assert_eq!(p.config.join_token.as_deref(), Some("keel1.x.y"));
        // The token never reaches what init writes out.
        let json = serde_json::to_string(&p.config).unwrap();
        assert!(!json.contains("keel1.x.y"), "{json}");
        for bad in ["sha256:abc", "md5:00", ""] {
            let p = parse(&format!("keel.masters=m:5050 keel.ca={bad}"));
            assert_eq!(p.errors, vec![CmdlineError::Ca(bad.to_string())]);
            assert_eq!(p.config.ca_fingerprint, None);
        }
    }

    #[test]
    fn a_typical_pxe_line() {
        let p = parse(
            "BOOT_IMAGE=vmlinuz initrd=initramfs.img console=ttyS0 quiet keel.role=agent \
             keel.masters=10.0.2.2:5050,master-b.lab:5050 BOOTIF=01-52-54-00-AB-CD-01",
        );
        assert!(p.is_ok(), "{:?}", p.errors);
        assert_eq!(p.config.role, Role::Agent);
        assert_eq!(
            p.config.masters,
            vec![addr("10.0.2.2", 5050), addr("master-b.lab", 5050)]
        );
        assert_eq!(p.config.boot_mac.as_deref(), Some("52:54:00:ab:cd:01"));
        assert_eq!(p.config.port(), 5051);
        assert_eq!(p.config.work_disk, WorkDisk::Auto);
    }

    #[test]
    fn quotes_keep_spaces_and_are_removed() {
        let t = tokenize(
            r#"a keel.attributes="rack:r 1;zone:a" "keel.hostname=n1" b=  -- keel.role=master"#,
        );
        assert_eq!(
            t,
            vec![
                ("a".to_string(), None),
                (
                    "keel.attributes".to_string(),
                    Some("rack:r 1;zone:a".to_string())
                ),
                ("keel.hostname".to_string(), Some("n1".to_string())),
                ("b".to_string(), Some(String::new())),
            ]
        );
        let p = parse(r#"keel.masters=m:1 keel.attributes="rack:r 1" -- keel.role=master"#);
        assert_eq!(p.config.role, Role::Agent, "after -- is init's argv");
        assert_eq!(p.config.attributes.as_deref(), Some("rack:r 1"));
    }

    #[test]
    fn master_role_needs_no_masters_and_takes_a_port() {
        let p = parse("keel.role=master keel.port=6060 keel.workdisk=/dev/nvme0n1");
        assert!(p.is_ok(), "{:?}", p.errors);
        assert_eq!(p.config.role, Role::Master);
        assert_eq!(p.config.port(), 6060);
        assert_eq!(p.config.work_disk, WorkDisk::Device("nvme0n1".into()));
    }

    #[test]
    fn an_agent_without_masters_is_an_error() {
        let p = parse("console=ttyS0 keel.role=agent");
        assert_eq!(p.errors, vec![CmdlineError::NoMasters]);
    }

    #[test]
    fn malformed_masters_name_the_entry() {
        for (value, entry, reason) in [
            ("10.0.2.2", "10.0.2.2", "has no port (want HOST:PORT)"),
            ("10.0.2.2:5050,", "", "is empty"),
            (":5050", ":5050", "has no host"),
            ("m:0", "m:0", "has an invalid port (want 1-65535)"),
            ("m:70000", "m:70000", "has an invalid port (want 1-65535)"),
            ("m:http", "m:http", "has an invalid port (want 1-65535)"),
            ("bad_host:1", "bad_host:1", "has an invalid host name"),
            (
                "fd00::1:5050",
                "fd00::1:5050",
                "is an IPv6 address without brackets",
            ),
            ("[fd00::1:5050", "[fd00::1:5050", "has no closing ']'"),
            ("[nope]:5050", "[nope]:5050", "has an invalid IPv6 address"),
        ] {
            let p = parse(&format!("keel.masters={value}"));
            assert_eq!(
                p.errors,
                vec![CmdlineError::Masters {
                    value: value.into(),
                    entry: entry.into(),
                    reason
                }],
                "{value}"
            );
            assert!(p.config.masters.is_empty());
        }
        let e = parse("keel.masters=10.0.2.2").errors.remove(0);
        assert_eq!(
            e.to_string(),
            "keel.masters=\"10.0.2.2\" is malformed: entry \"10.0.2.2\" has no port (want HOST:PORT)"
        );
    }

    #[test]
    fn ipv6_masters_are_bracketed() {
        let m = parse_masters("[fd00::2]:5050").unwrap();
        assert_eq!(m, vec![addr("fd00::2", 5050)]);
        assert_eq!(m[0].to_string(), "[fd00::2]:5050");
    }

    #[test]
    fn the_last_occurrence_wins_and_bad_values_fall_back() {
        let p =
            parse("keel.role=master keel.role=agent keel.masters=a:1 keel.port=x keel.role=boss");
        assert_eq!(p.config.role, Role::Agent);
        assert_eq!(p.config.port, None);
        assert_eq!(
            p.errors,
            vec![
                CmdlineError::Port("x".into()),
                CmdlineError::Role("boss".into())
            ]
        );
    }

    #[test]
    fn work_disk_forms() {
        let wd = |v: &str| parse(&format!("keel.masters=a:1 keel.workdisk={v}"));
        assert_eq!(wd("none").config.work_disk, WorkDisk::None);
        assert_eq!(wd("auto").config.work_disk, WorkDisk::Auto);
        assert_eq!(wd("vdb").config.work_disk, WorkDisk::Device("vdb".into()));
        assert_eq!(
            wd("serial:KEEL-WORK").config.work_disk,
            WorkDisk::Serial("KEEL-WORK".into())
        );
        assert_eq!(
            wd("serial:").errors,
            vec![CmdlineError::WorkDisk("serial:".into())]
        );
    }

    #[test]
    fn macs_modules_and_hostnames() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:01").as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert_eq!(parse_mac("52:54:00:ab:cd"), None);
        assert_eq!(parse_mac("52:54:00:ab:cd:0g"), None);
        let p = parse(
            "keel.masters=a:1 keel.iface=zz keel.modules=igb,,ixgbe keel.modules=ice keel.hostname=-x",
        );
        assert_eq!(p.config.extra_modules, vec!["igb", "ixgbe", "ice"]);
        assert_eq!(
            p.errors,
            vec![
                CmdlineError::Mac {
                    param: "keel.iface",
                    value: "zz".into()
                },
                CmdlineError::Hostname("-x".into())
            ]
        );
        assert!(valid_hostname("node-1.rack-2.example"));
        assert!(!valid_hostname("a..b"));
    }
}
