//! `keelctl pki`: the cluster CA and its certificates, as files.
//!
//! `init` makes a directory with the CA (`ca.crt`, `ca.key`), one
//! certificate per master (`master-<host>-<port>.{crt,key}`) and an admin's
//! (`admin.{crt,key}`); `issue` adds one more with a role; `fingerprint`
//! prints what `keel.ca=` pins. Keys are written owner-only, and nothing
//! is ever overwritten.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use keel_pki::{Ca, Issued, Role};

/// Masters' and operators' certificates: a year.
const DEFAULT_VALIDITY: &str = "365days";

#[derive(Debug, Subcommand)]
pub enum PkiAction {
    /// Create the cluster CA and certificates for the masters and an admin.
    Init {
        /// Where to write (created; must not hold a CA yet).
        #[arg(long)]
        dir: PathBuf,
        /// The masters' `HOST:PORT` list, as given to keel-master --masters
        /// (or one address for a single master).
        #[arg(long, value_delimiter = ',', required = true)]
        masters: Vec<String>,
        /// The CA's name.
        #[arg(long, default_value = "keel cluster CA")]
        name: String,
        /// More names every master certificate is valid for (a DNS name in
        /// front of the masters, the address guests see: QEMU's 10.0.2.2).
        #[arg(long)]
        san: Vec<String>,
    },
    /// Issue a certificate with a role from the CA in DIR.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// master, agent, admin, operator or reader.
        #[arg(long)]
        role: Role,
        /// Who holds it: a principal, an agent's name, a master's address.
        #[arg(long)]
        name: String,
        /// Host names or addresses it serves (masters and agents).
        #[arg(long)]
        san: Vec<String>,
        #[arg(long, default_value = DEFAULT_VALIDITY, value_parser = humantime::parse_duration)]
        valid: Duration,
    },
    /// Print the CA's fingerprint (for `keel.ca=` on the kernel command line).
    Fingerprint {
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(action: PkiAction) -> Result<()> {
    match action {
        PkiAction::Init {
            dir,
            masters,
            name,
            san,
        } => init(&dir, &masters, &name, &san),
        PkiAction::Issue {
            dir,
            role,
            name,
            san,
            valid,
        } => {
            let ca = load(&dir)?;
            let issued = ca.issue(role, &name, &san, valid)?;
            let stem = file_stem(role, &name);
            write_pair(&dir, &stem, &issued)?;
            println!("{}", dir.join(format!("{stem}.crt")).display());
            Ok(())
        }
        PkiAction::Fingerprint { dir } => {
            println!("{}", load(&dir)?.fingerprint()?);
            Ok(())
        }
    }
}

fn init(dir: &Path, masters: &[String], name: &str, extra_sans: &[String]) -> Result<()> {
    anyhow::ensure!(
        !dir.join("ca.key").exists(),
        "{} already holds a CA: not overwritten",
        dir.display()
    );
    let hosts: Vec<(String, String)> = masters
        .iter()
        .map(|m| {
            let (host, _) = m
                .rsplit_once(':')
                .with_context(|| format!("master {m:?}: expected HOST:PORT"))?;
            Ok((m.clone(), host.trim_matches(['[', ']']).to_string()))
        })
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let ca = Ca::create(name)?;
    write(&dir.join("ca.crt"), ca.cert_pem(), 0o644)?;
    write(&dir.join("ca.key"), ca.key_pem(), 0o600)?;
    let year = humantime::parse_duration(DEFAULT_VALIDITY)?;
    for (addr, host) in &hosts {
        let mut sans = vec![host.clone()];
        sans.extend(extra_sans.iter().filter(|s| *s != host).cloned());
        let issued = ca.issue(Role::Master, addr, &sans, year)?;
        write_pair(dir, &file_stem(Role::Master, addr), &issued)?;
    }
    let admin = ca.issue(Role::Admin, "admin", &[], year)?;
    write_pair(dir, "admin", &admin)?;
    let d = dir.display();
    println!("cluster CA {} in {d}", ca.fingerprint()?);
    println!(
        "masters:  keel-master --tls-ca {d}/ca.crt --tls-cert {d}/master-HOST-PORT.crt --tls-key {d}/master-HOST-PORT.key"
    );
    println!(
        "keelctl:  KEEL_TLS_CA={d}/ca.crt KEEL_TLS_CERT={d}/admin.crt KEEL_TLS_KEY={d}/admin.key keelctl ..."
    );
    Ok(())
}

fn load(dir: &Path) -> Result<Ca> {
    Ca::load(&dir.join("ca.crt"), &dir.join("ca.key"))
        .with_context(|| format!("no usable CA in {}", dir.display()))
}

/// `master-10.0.0.1-5050`, `operator-alice`: safe as a file name.
fn file_stem(role: Role, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{role}-{}", clean.trim_matches('-'))
}

fn write_pair(dir: &Path, stem: &str, issued: &Issued) -> Result<()> {
    write(&dir.join(format!("{stem}.crt")), &issued.cert_pem, 0o644)?;
    write(&dir.join(format!("{stem}.key")), &issued.key_pem, 0o600)
}

/// Creates `path` (never overwrites) with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_issue_writes_usable_material() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        init(
            &dir,
            &["127.0.0.1:5050".into(), "[::1]:5051".into()],
            "t",
            &["10.0.2.2".into()],
        )
        .unwrap();
        for f in [
            "ca.crt",
            "ca.key",
            "master-127.0.0.1-5050.crt",
            "master-1--5051.key",
            "admin.key",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Never over an existing CA.
        assert!(init(&dir, &["127.0.0.1:5050".into()], "t", &[]).is_err());
        run(PkiAction::Issue {
            dir: dir.clone(),
            role: Role::Reader,
            name: "bob".into(),
            san: vec![],
            valid: Duration::from_secs(60),
        })
        .unwrap();
        let material = keel_pki::Material::load(
            &dir.join("ca.crt"),
            Some((&dir.join("reader-bob.crt"), &dir.join("reader-bob.key"))),
        )
        .unwrap();
        let id = material.identity().unwrap().unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Reader, "bob"));
        assert!(init(&tmp.path().join("x"), &["no-port".into()], "t", &[]).is_err());
    }
}
