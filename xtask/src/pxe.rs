//! `cargo xtask pxe`: builds the release binaries and the PXE bundle
//! (`target/pxe/{vmlinuz,initramfs.img,boot.ipxe}`) through
//! `keel_initramfs::build`, the same code the hardware tests use.

use std::path::PathBuf;

use anyhow::{Context, Result};
use keel_initramfs::ipxe::BootDefaults;
use keel_initramfs::{BuildConfig, Report};

use crate::{cargo, root};

/// Options of `cargo xtask pxe`.
#[derive(Debug, Clone, clap::Args)]
pub struct PxeArgs {
    /// Default `keel.masters` written into boot.ipxe.
    #[arg(long, default_value = "10.0.2.2:5050")]
    pub masters: String,
    /// Default `keel.role` written into boot.ipxe.
    #[arg(long, default_value = "agent")]
    pub role: String,
    /// Default serial console written into boot.ipxe.
    #[arg(long, default_value = "ttyS0")]
    pub console: String,
    /// Further kernel parameters written into boot.ipxe.
    #[arg(long, default_value = "quiet")]
    pub extra: String,
    /// Kernel package to use instead of what linux-image-amd64 depends on.
    #[arg(long)]
    pub kernel_package: Option<String>,
    /// zstd level of the initramfs.
    #[arg(long, default_value_t = 19)]
    pub zstd_level: u32,
}

impl Default for PxeArgs {
    fn default() -> Self {
        PxeArgs {
            masters: "10.0.2.2:5050".into(),
            role: "agent".into(),
            console: "ttyS0".into(),
            extra: "quiet".into(),
            kernel_package: None,
            zstd_level: 19,
        }
    }
}

pub fn out_dir() -> PathBuf {
    root().join("target/pxe")
}

/// Builds the release binaries, then the bundle.
pub fn build(args: &PxeArgs) -> Result<Report> {
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
    let release = root().join("target/release");
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let cfg = BuildConfig {
        conf: root().join("initramfs/bundle.conf"),
        cache: root().join("target/keel-cache"),
        out: out_dir(),
        init: release.join("keel-init"),
        agent: release.join("keel-agent"),
        master: release.join("keel-master"),
        kernel_package: args.kernel_package.clone(),
        boot: BootDefaults {
            role: args.role.clone(),
            masters: args.masters.clone(),
            console: args.console.clone(),
            extra: args.extra.clone(),
        },
        zstd_level: args.zstd_level,
        mtime,
    };
    eprintln!("+ building the PXE bundle into {}", cfg.out.display());
    keel_initramfs::build(&cfg).context("cannot build the PXE bundle")
}

pub fn run(args: &PxeArgs) -> Result<()> {
    let r = build(args)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "kernel      {} {} ({})",
        r.kernel.package, r.kernel.version, r.kernel.release
    );
    println!(
        "{:<11} {:>6.1} MiB",
        r.vmlinuz.display(),
        mib(r.vmlinuz_bytes)
    );
    println!(
        "{:<11} {:>6.1} MiB zstd ({:.1} MiB cpio: binaries {:.1}, libraries {:.1}, {} modules {:.1})",
        r.initramfs.display(),
        mib(r.initramfs_bytes),
        mib(r.uncompressed_bytes),
        mib(r.binary_bytes),
        mib(r.library_bytes),
        r.module_count,
        mib(r.module_bytes)
    );
    println!("{}", r.boot_script.display());
    Ok(())
}
