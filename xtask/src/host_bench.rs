//! `cargo xtask host-bench`: the guest bench's comparison on this machine,
//! without emulation: launching a static `true` through a `keel-master`
//! and `keel-agent` (`--isolation auto`) on loopback, interleaved with
//! `crun run` of an OCI bundle doing the same work, timed on one clock by
//! agent/examples/guest_bench/ in its `--host` mode. Needs root, the
//! Debian packages `crun` and `busybox-static`, and `unshare` (util-linux);
//! its work dirs are under target/keel-host-bench (on disk, so fsyncs
//! count). Not part of CI.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, require_tools, root};

/// Options of `cargo xtask host-bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct HostBenchArgs {
    /// Timed launches on each side.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Launches on each side before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Run the agent under `strace` with these options, e.g.
    /// `-f -c -o target/keel-host-bench/strace.txt` (times then include
    /// strace's overhead).
    #[arg(long, allow_hyphen_values = true)]
    pub strace: Option<String>,
}

/// A static busybox for the bundle's `true` (a dynamic one would not run
/// in crun's rootfs).
fn static_busybox() -> Result<String> {
    let out = Command::new("sh")
        .args(["-c", "command -v busybox"])
        .output()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ldd = Command::new("ldd").arg(&path).output()?;
    if ldd.status.success() && !String::from_utf8_lossy(&ldd.stdout).contains("not a dynamic") {
        bail!("{path} is not static (Debian package busybox-static)");
    }
    Ok(path)
}

pub fn run(args: &HostBenchArgs) -> Result<()> {
    require_tools(&[
        ("crun", "crun"),
        ("busybox", "busybox-static"),
        ("unshare", "util-linux"),
    ])?;
    if args.strace.is_some() {
        require_tools(&[("strace", "strace")])?;
    }
    let uid = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!("the host bench runs an agent with namespaces and cgroups: run it as root");
    }
    let busybox = static_busybox()?;
    cargo(&[
        "build",
        "--release",
        "-p",
        "keel-master",
        "-p",
        "keel-agent",
        "--bins",
    ])?;
    let bench = crate::vm::build_guest_bench()?;
    let dir = root().join("target/keel-host-bench");
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(&bench);
    cmd.arg("--host")
        .arg(&dir)
        .arg(args.runs.to_string())
        .arg(args.warmup.to_string())
        .env("KEEL_BENCH_BUSYBOX", &busybox);
    if let Some(opts) = &args.strace {
        cmd.env("KEEL_BENCH_STRACE", opts);
    }
    eprintln!("+ {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", bench.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        bail!(
            "the host bench failed with {}: {}\n(logs: {})",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            dir.display()
        );
    }
    let row = stdout.lines().find_map(|l| l.strip_prefix("table_row="));
    println!("{}", row.unwrap_or("(no table row in the bench's output)"));
    Ok(())
}
