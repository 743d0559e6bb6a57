//! `keel-hwtest`: boot a QEMU guest of a shape against a master on this
//! machine, or check a real machine's inventory against a shape.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use keel_hardware_tests::api::{MasterApi, has_any_mac};
use keel_hardware_tests::check::{compare, tpm_summary};
use keel_hardware_tests::lab::{Lab, bundle_dir, workspace_root};
use keel_hardware_tests::qemu::Guest;
use keel_hardware_tests::shape::Shape;

#[derive(Debug, Parser)]
#[command(name = "keel-hwtest")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Boot a QEMU guest of SHAPE with a keel-master on this machine, wait
    /// for it to register, and check its inventory against the shape.
    Boot {
        #[arg(long)]
        shape: PathBuf,
        /// Boot by PXE through iPXE instead of QEMU's -kernel/-initrd.
        #[arg(long)]
        pxe: bool,
        /// Further kernel parameters (e.g. `keel.workdisk=serial:KEEL-WORK`).
        #[arg(long, default_value = "")]
        append: String,
        /// Where the guest's disks, console log and the master's data go.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the guest and the master running until Ctrl-C.
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value = "180s", value_parser = humantime_secs)]
        timeout: Duration,
    },
    /// Boot time under TCG: the bundle (kernel start -> agent registered)
    /// against a bare busybox initramfs (kernel start -> userspace), side by
    /// side, RUNS times each.
    Bench {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a real machine: find the agent with address or host name NODE
    /// at MASTER and compare its inventory with SHAPE.
    Check {
        #[arg(long)]
        master: String,
        #[arg(long)]
        node: String,
        #[arg(long)]
        shape: PathBuf,
    },
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("{s:?}: {e} (want e.g. 180s)"))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Boot {
            shape,
            pxe,
            append,
            dir,
            keep,
            timeout,
        } => boot(shape, pxe, &append, dir, keep, timeout),
        Cmd::Bench { runs, dir } => bench(runs, dir),
        Cmd::Check {
            master,
            node,
            shape,
        } => check(&master, &node, &shape),
    }
}

fn boot(
    shape: PathBuf,
    pxe: bool,
    append: &str,
    dir: Option<PathBuf>,
    keep: bool,
    timeout: Duration,
) -> Result<()> {
    let shape = Shape::load(&shape)?;
    let dir = dir.unwrap_or_else(|| workspace_root().join("target/keel-vm"));
    let mut lab = Lab::start(&dir, &bundle_dir())?;
    println!(
        "keel-master on 127.0.0.1:{} (log {})",
        lab.master.port,
        lab.master.log.display()
    );
    let spec = if pxe {
        lab.pxe_guest(shape.clone(), append)?
    } else {
        let append = lab.append(&format!("quiet {append}"));
        lab.kernel_guest(shape.clone(), append)
    };
    let guest = Guest::start(spec)?;
    println!(
        "guest {} booting ({}), console {}",
        shape.name,
        if pxe { "PXE" } else { "kernel+initramfs" },
        guest.spec.console_log().display()
    );
    let macs: Vec<String> = shape.nics.iter().map(|n| n.mac.clone()).collect();
    let (agent, inv, seen) = lab
        .rt
        .block_on(
            lab.api
                .wait_for_agent("the guest's MACs", timeout, |_, inv| {
                    has_any_mac(inv, &macs)
                }),
        )
        .with_context(|| format!("console: {}", guest.spec.console_log().display()))?;
    println!(
        "agent {} ({}) registered {:.1}s after QEMU started",
        agent.id,
        agent.hostname,
        seen.duration_since(guest.started()).as_secs_f64()
    );
    println!("tpm: {}", tpm_summary(&inv));
    let mismatches = compare(&shape, &inv);
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    if mismatches.is_empty() {
        println!("inventory matches shape {}", shape.name);
    }
    if keep {
        println!("running; Ctrl-C stops the guest and the master");
        lab.rt.block_on(tokio::signal::ctrl_c())?;
    }
    drop(guest);
    if !mismatches.is_empty() {
        bail!("{} mismatches", mismatches.len());
    }
    Ok(())
}

fn bench(runs: usize, dir: Option<PathBuf>) -> Result<()> {
    use keel_hardware_tests::bench::{floor_initramfs, median, run_once};
    let dir = dir.unwrap_or_else(|| workspace_root().join("target/keel-vm-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    let lab = Lab::start(&dir, &bundle_dir())?;
    let floor = floor_initramfs(&dir, 19)?;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let initramfs = lab.bundle.join(keel_initramfs::INITRAMFS);
    println!(
        "initramfs: keel {:.1} MiB, busybox floor {:.1} MiB (zstd -19); kernel {:.1} MiB",
        size(&initramfs) as f64 / 1048576.0,
        size(&floor) as f64 / 1048576.0,
        size(&lab.bundle.join(keel_initramfs::VMLINUZ)) as f64 / 1048576.0
    );
    println!(
        "| run | floor: kernel -> userspace | keel: kernel -> init | keel: kernel -> registered | ratio | floor / keel from QEMU start |"
    );
    println!("|---|---|---|---|---|---|");
    let mut all = Vec::new();
    for i in 1..=runs {
        let r = run_once(&lab, &floor)?;
        println!(
            "| {i} | {:.2} s | {:.2} s | {:.2} s | {:.2} | {:.2} s / {:.2} s |",
            r.floor,
            r.keel_init,
            r.keel,
            r.ratio(),
            r.floor_wall,
            r.keel_wall
        );
        all.push(r);
    }
    let m = |f: fn(&keel_hardware_tests::bench::Run) -> f64| {
        median(&all.iter().map(f).collect::<Vec<_>>())
    };
    println!(
        "median: floor {:.2} s, keel registered {:.2} s, ratio {:.2} (from QEMU start: {:.2} s vs {:.2} s)",
        m(|r| r.floor),
        m(|r| r.keel),
        m(|r| r.ratio()),
        m(|r| r.floor_wall),
        m(|r| r.keel_wall)
    );
    Ok(())
}

fn check(master: &str, node: &str, shape: &std::path::Path) -> Result<()> {
    let shape = Shape::load(shape)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let api = MasterApi::new(master)?;
    let agents = rt.block_on(api.agents())?;
    let agent = agents
        .iter()
        .find(|a| a.ip == node || a.hostname == node)
        .with_context(|| format!("no agent with address or host name {node} at {master}"))?;
    let inv = rt.block_on(api.inventory(&agent.id))?;
    let mismatches = compare(&shape, &inv);
    println!(
        "agent {} ({}, {}), state {}",
        agent.id, agent.hostname, agent.ip, agent.state
    );
    println!("tpm: {}", tpm_summary(&inv));
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    if !mismatches.is_empty() {
        bail!(
            "{} mismatches against shape {}",
            mismatches.len(),
            shape.name
        );
    }
    println!("inventory matches shape {}", shape.name);
    Ok(())
}
