//! `cargo xtask image`: Keel's immutable appliance image, built by mkosi 24
//! (bookworm-backports) from `mkosi.conf` and `image/`, plus what must not
//! be committed, generated under target/image/:
//!
//! - `pkgmngr/etc/apt/sources.list.d/mkosi.sources`: the image's apt
//!   sources (bookworm, -updates, -security), copied from this machine's apt
//!   configuration, so the mirror is never written into the project (and
//!   mkosi does not add the unreachable debian-debug archive);
//! - `bin-tree/usr/bin/keel-{init,agent,master}`: the release binaries,
//!   stripped, as an extra tree.
//!
//! `--install-tools` installs mkosi and its helpers from bookworm-backports,
//! adding that suite by copying this machine's `bookworm` apt source entry
//! under another suite name. `cargo xtask image-test` boots the result.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, root};

/// Options of `cargo xtask image`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageArgs {
    /// Install mkosi 24 and its helpers first (adds bookworm-backports).
    #[arg(long)]
    pub install_tools: bool,
    /// `keel.masters` baked into the image's kernel command line.
    #[arg(long, default_value = "10.0.2.2:5050")]
    pub masters: String,
}

pub fn image_dir() -> PathBuf {
    root().join("target/image")
}

/// One deb822 stanza of an apt sources file (the fields Keel needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub types: String,
    pub uris: String,
    pub suites: Vec<String>,
    pub components: String,
    pub signed_by: Option<String>,
}

impl Source {
    pub fn render(&self) -> String {
        let mut s = format!(
            "Types: {}\nURIs: {}\nSuites: {}\nComponents: {}\n",
            self.types,
            self.uris,
            self.suites.join(" "),
            self.components
        );
        if let Some(k) = &self.signed_by {
            s.push_str(&format!("Signed-By: {k}\n"));
        }
        s
    }
}

/// Parses deb822 `.sources` text (comments dropped) and one-line
/// `sources.list` text (`deb [opts] URI SUITE COMPONENTS...`).
pub fn parse_sources(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first() == Some(&"deb") {
            let rest: Vec<&str> = if w.get(1).is_some_and(|x| x.starts_with('[')) {
                let end = w.iter().position(|x| x.ends_with(']')).unwrap_or(1);
                w[end + 1..].to_vec()
            } else {
                w[1..].to_vec()
            };
            if rest.len() >= 3 {
                out.push(Source {
                    types: "deb".into(),
                    uris: rest[0].into(),
                    suites: vec![rest[1].into()],
                    components: rest[2..].join(" "),
                    signed_by: None,
                });
            }
        }
    }
    for stanza in lines.join("\n").split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        if let (Some(types), Some(uris), Some(suites)) =
            (field("Types"), field("URIs"), field("Suites"))
        {
            out.push(Source {
                types,
                uris,
                suites: suites.split_whitespace().map(str::to_string).collect(),
                components: field("Components").unwrap_or_else(|| "main".into()),
                signed_by: field("Signed-By"),
            });
        }
    }
    out
}

/// The host's sources for `suites` (binary packages only), each stanza cut
/// down to those suites.
pub fn select(sources: &[Source], suites: &[&str]) -> Vec<Source> {
    sources
        .iter()
        .filter(|s| s.types.split_whitespace().any(|t| t == "deb"))
        .filter_map(|s| {
            let keep: Vec<String> = s
                .suites
                .iter()
                .filter(|x| suites.contains(&x.as_str()))
                .cloned()
                .collect();
            (!keep.is_empty()).then(|| Source {
                types: "deb".into(),
                suites: keep,
                ..s.clone()
            })
        })
        .collect()
}

/// The host's `bookworm` entry under the suite name `bookworm-backports`.
pub fn backports(sources: &[Source]) -> Option<Source> {
    select(sources, &["bookworm"])
        .into_iter()
        .next()
        .map(|s| Source {
            suites: vec!["bookworm-backports".into()],
            ..s
        })
}

fn host_sources() -> Result<Vec<Source>> {
    let mut all = Vec::new();
    let list = Path::new("/etc/apt/sources.list");
    if let Ok(t) = fs::read_to_string(list) {
        all.extend(parse_sources(&t));
    }
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
        .collect();
    files.sort();
    for f in files {
        all.extend(parse_sources(
            &fs::read_to_string(&f).with_context(|| f.display().to_string())?,
        ));
    }
    Ok(all)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Adds bookworm-backports (from the host's own entry) and installs mkosi
/// 24 with the tools its disk images need, and OVMF for the boot test.
fn install_tools() -> Result<()> {
    let sources = host_sources()?;
    if select(&sources, &["bookworm-backports"]).is_empty() {
        let bp = backports(&sources)
            .context("no bookworm apt source to derive bookworm-backports from")?;
        let path = Path::new("/etc/apt/sources.list.d/keel-backports.sources");
        fs::write(path, bp.render()).with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    // mkosi 24.3 needs systemd >= 254, so this upgrades the host's systemd.
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
        ])
        .args(["mkosi", "systemd-boot", "systemd-boot-efi"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args([
            "python3-pefile",
            "python3-cryptography",
            "dosfstools",
            "mtools",
            "squashfs-tools",
            "erofs-utils",
            "e2fsprogs",
            "xz-utils",
            "zstd",
            "cpio",
            "debian-archive-keyring",
            "ovmf",
            "fdisk",
        ]))
}

fn mkosi_version() -> Option<String> {
    let out = Command::new("mkosi").arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn build(args: &ImageArgs) -> Result<()> {
    if args.install_tools {
        install_tools()?;
    }
    match mkosi_version() {
        Some(v) if v.starts_with("mkosi 24") => {}
        Some(v) => {
            bail!("{v} found; Keel's image needs mkosi 24 (cargo xtask image --install-tools)")
        }
        None => bail!("mkosi not found (cargo xtask image --install-tools)"),
    }
    cargo(&[
        "build",
        "--release",
        "--bins",
        "-p",
        "keel-init",
        "-p",
        "keel-agent",
        "-p",
        "keel-master",
        "-p",
        "keelctl",
    ])?;
    let dir = image_dir();
    let bin_tree = dir.join("bin-tree/usr/bin");
    fs::create_dir_all(&bin_tree)?;
    for b in ["keel-init", "keel-agent", "keel-master"] {
        run(Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(bin_tree.join(b))
            .arg(root().join("target/release").join(b)))?;
    }
    let apt = dir.join("pkgmngr/etc/apt/sources.list.d");
    fs::create_dir_all(&apt)?;
    let image_sources = select(
        &host_sources()?,
        &["bookworm", "bookworm-updates", "bookworm-security"],
    );
    if image_sources.is_empty() {
        bail!("no bookworm apt sources on this machine to give the image");
    }
    let text: Vec<String> = image_sources.iter().map(Source::render).collect();
    fs::write(apt.join("mkosi.sources"), text.join("\n"))?;
    let out = dir.join("out");
    fs::create_dir_all(&out)?;
    fs::create_dir_all(dir.join("cache"))?;
    run(Command::new("mkosi")
        .arg("-C")
        .arg(root())
        .arg("--output-dir")
        .arg(&out)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--package-manager-tree")
        .arg(dir.join("pkgmngr"))
        .arg("--extra-tree")
        .arg(dir.join("bin-tree"))
        .arg(format!(
            "--kernel-command-line=keel.masters={}",
            args.masters
        ))
        .args(["--force", "build"]))?;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    println!(
        "{} {:.0} MiB (UKI {:.1} MiB: kernel {:.1}, initrd {:.1})",
        out.join("keel.raw").display(),
        size(&out.join("keel.raw")),
        size(&out.join("keel.efi")),
        size(&out.join("keel.vmlinuz")),
        size(&out.join("keel.initrd"))
    );
    run(Command::new("sfdisk").arg("-l").arg(out.join("keel.raw")))
}

/// `cargo xtask image-test`: boots the image (hardware-tests/tests/image.rs).
pub fn test() -> Result<()> {
    crate::vm::require_vm_tools()?;
    if !image_dir().join("out/keel.raw").exists() {
        bail!("no image in target/image/out; run cargo xtask image first");
    }
    cargo(&[
        "test",
        "-p",
        "keel-hardware-tests",
        "--test",
        "image",
        "--",
        "--ignored",
        "--test-threads=1",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main contrib
";

    #[test]
    fn backports_copies_the_bookworm_entry() {
        let s = parse_sources(DEB822);
        assert_eq!(s.len(), 2);
        let bp = backports(&s).unwrap();
        assert_eq!(
            bp.render(),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
    }

    #[test]
    fn image_sources_keep_only_the_wanted_suites() {
        let mut s = parse_sources(DEB822);
        s.extend(parse_sources(
            "deb [arch=amd64] http://mirror.example/debian bookworm-backports main\n# deb http://x y z\n",
        ));
        let picked = select(&s, &["bookworm", "bookworm-security"]);
        assert_eq!(picked.len(), 2);
        assert_eq!(picked[0].suites, ["bookworm"]);
        assert_eq!(picked[1].types, "deb");
        assert_eq!(picked[1].components, "main contrib");
        assert_eq!(
            select(&s, &["bookworm-backports"])[0].uris,
            "http://mirror.example/debian"
        );
    }
}
