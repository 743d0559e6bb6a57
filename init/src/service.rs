//! The command line of the service a node runs, from the boot
//! configuration: pure, shared by PID 1 in the initramfs and by
//! `keel-init exec` in the systemd image.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::cmdline::{BootConfig, Role};
use crate::workdisk::MOUNT_POINT;

/// Where the binaries live, in the initramfs and in the image.
pub const AGENT_BIN: &str = "/usr/bin/keel-agent";
pub const MASTER_BIN: &str = "/usr/bin/keel-master";

/// A program with its arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Service {
    /// The command as one line, for logs.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            if a.contains([' ', ';', '"']) {
                s.push_str(&format!(" {a:?}"));
            } else {
                s.push(' ');
                s.push_str(a);
            }
        }
        s
    }
}

/// The service for `config`, listening on `ip`, with the given host name.
pub fn service(config: &BootConfig, ip: IpAddr, hostname: &str) -> Service {
    let work_dir = format!("{MOUNT_POINT}/{}", config.role.as_str());
    let mut args = vec![
        "--ip".to_string(),
        ip.to_string(),
        "--port".to_string(),
        config.port().to_string(),
        "--work-dir".to_string(),
        work_dir,
        "--hostname".to_string(),
        hostname.to_string(),
    ];
    let program = match config.role {
        Role::Agent => {
            let masters: Vec<String> = config.masters.iter().map(|m| m.to_string()).collect();
            args.splice(0..0, ["--master".to_string(), masters.join(",")]);
            if let Some(r) = &config.resources {
                args.extend(["--resources".to_string(), r.clone()]);
            }
            if let Some(a) = &config.attributes {
                args.extend(["--attributes".to_string(), a.clone()]);
            }
            if let Some(fp) = &config.ca_fingerprint {
                args.extend(["--tls-ca-fingerprint".to_string(), fp.clone()]);
            }
            AGENT_BIN
        }
        Role::Master => MASTER_BIN,
    };
    // The console is a serial line: no colour codes in the service's logs.
    let mut env = vec![("NO_COLOR".to_string(), "1".to_string())];
    if let Some(log) = &config.log {
        env.push(("KEEL_LOG".to_string(), log.clone()));
    }
    // In the environment, not argv: `ps` shows argv to every user.
    if let (Role::Agent, Some(token)) = (config.role, &config.join_token) {
        env.push(("KEEL_JOIN_TOKEN".to_string(), token.clone()));
    }
    Service {
        program: PathBuf::from(program),
        args,
        env,
    }
}

/// The host name: `keel.hostname`, else the DHCP server's, else
/// `keel-<mac without colons>` of the NIC that got the lease.
pub fn hostname(config: &BootConfig, dhcp: Option<&str>, mac: Option<&str>) -> String {
    config
        .hostname
        .clone()
        .or_else(|| {
            dhcp.filter(|h| crate::cmdline::valid_hostname(h))
                .map(str::to_string)
        })
        .unwrap_or_else(|| match mac {
            Some(m) => format!("keel-{}", m.replace(':', "")),
            None => "keel".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    #[test]
    fn the_cluster_ca_goes_in_argv_and_the_token_in_the_environment() {
        let fp = format!("sha256:{}", "0".repeat(64));
        let c = parse(&format!(
            "keel.masters=m:5050 keel.ca={fp} keel.token=keel1.a.b"
        ))
        .config;
        let s = service(&c, "10.0.2.15".parse().unwrap(), "n");
        assert!(
            s.display().ends_with(&format!("--tls-ca-fingerprint {fp}")),
            "{}",
            s.display()
        );
        assert!(!s.display().contains("keel1.a.b"));
        assert!(
            s.env
                .contains(&("KEEL_JOIN_TOKEN".to_string(), "keel1.a.b".to_string()))
        );
        let master = parse("keel.role=master keel.token=keel1.a.b").config;
        let s = service(&master, "10.0.2.15".parse().unwrap(), "n");
        assert!(!s.env.iter().any(|(k, _)| k == "KEEL_JOIN_TOKEN"));
    }

    #[test]
    fn agent_command_line() {
        let c = parse(
            r#"keel.masters=10.0.2.2:5050,[fd00::2]:5050 keel.resources=cpus:2;mem:512 keel.attributes="rack:r 1" keel.log=debug"#,
        )
        .config;
        let s = service(&c, "10.0.2.15".parse().unwrap(), "keel-525400123456");
        assert_eq!(s.program, PathBuf::from(AGENT_BIN));
        assert_eq!(
            s.args,
            [
                "--master",
                "10.0.2.2:5050,[fd00::2]:5050",
                "--ip",
                "10.0.2.15",
                "--port",
                "5051",
                "--work-dir",
                "/var/lib/keel/agent",
                "--hostname",
                "keel-525400123456",
                "--resources",
                "cpus:2;mem:512",
                "--attributes",
                "rack:r 1"
            ]
        );
        assert_eq!(
            s.env,
            [
                ("NO_COLOR".to_string(), "1".to_string()),
                ("KEEL_LOG".to_string(), "debug".to_string())
            ]
        );
        assert!(
            s.display()
                .ends_with(r#"--resources "cpus:2;mem:512" --attributes "rack:r 1""#)
        );
    }

    #[test]
    fn master_command_line() {
        let c = parse("keel.role=master keel.port=6060").config;
        let s = service(&c, "192.168.1.5".parse().unwrap(), "m1");
        assert_eq!(s.program, PathBuf::from(MASTER_BIN));
        assert_eq!(
            s.args,
            [
                "--ip",
                "192.168.1.5",
                "--port",
                "6060",
                "--work-dir",
                "/var/lib/keel/master",
                "--hostname",
                "m1"
            ]
        );
    }

    #[test]
    fn host_names() {
        let mut c = parse("keel.masters=a:1").config;
        assert_eq!(
            hostname(&c, None, Some("52:54:00:12:34:56")),
            "keel-525400123456"
        );
        assert_eq!(
            hostname(&c, Some("node7"), Some("52:54:00:12:34:56")),
            "node7"
        );
        assert_eq!(hostname(&c, Some("bad_name"), None), "keel");
        c.hostname = Some("pinned".into());
        assert_eq!(hostname(&c, Some("node7"), None), "pinned");
    }
}
