//! Keel's automation, run as `cargo xtask <command>`:
//!
//! - `test`: everything CI checks (the paths `ARCHITECTURE.md` names, fmt,
//!   clippy, build, the whole test suite);
//! - `dev`: builds and runs a local cluster (one master, one agent);
//! - `bench`: prints registration latency and memory figures;
//! - `soak`: replicated masters under mixed load, leader kills, a full
//!   disk and bad clients for N minutes, then checks (no acknowledged write
//!   or task lost);
//! - `host-bench`: task launch through an agent beside `crun run`, on this
//!   machine (the guest bench's comparison without emulation);
//! - `pxe`, `vm`, `vm-test`, `vm-bench`, `guest-bench`, `image`,
//!   `image-test`: the appliance (PXE bundle, mkosi image) and its QEMU
//!   guests.

mod archcheck;
mod bench;
mod cluster;
mod dev;
mod events_bench;
mod exec_bench;
mod executor_bench;
mod ha_bench;
mod host_bench;
mod image;
mod launch_bench;
mod metrics_bench;
mod pxe;
mod scale_bench;
mod scale_failover;
mod scale_phases;
mod soak;
mod trust_bench;
mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// ARCHITECTURE.md's paths, fmt --check, clippy -D warnings, build all
    /// binaries, run every test.
    Test {
        /// Skip fmt and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Skip the QEMU hardware tests (cargo xtask vm-test runs them alone).
        #[arg(long)]
        no_vm: bool,
    },
    /// Build (release) and run a local cluster: master on 127.0.0.1:5050, one agent.
    Dev {
        #[arg(long, default_value_t = 5050)]
        port: u16,
        #[arg(long, default_value_t = 5051)]
        agent_port: u16,
        /// Start from empty work dirs (target/keel-dev).
        #[arg(long)]
        fresh: bool,
        /// No TLS, no authentication, open agent admission.
        #[arg(long)]
        plaintext: bool,
    },
    /// What trust costs: plaintext and open against TLS with
    /// authentication and ACLs, side by side (launches, registry writes,
    /// agent admission).
    BenchTrust {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 300)]
        launches: usize,
        #[arg(long, default_value_t = 2000)]
        writes: usize,
    },
    /// Replicated masters: leader failover, agent re-registration, and
    /// registry write latency beside a 3-node etcd.
    BenchHa {
        #[arg(long, default_value_t = 10)]
        kills: usize,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 1000)]
        writes: usize,
    },
    /// Scale: `keel-agent sim` agents and keel-loadgen frameworks against
    /// one master: registration from cold, RSS with the tasks running,
    /// `/master/state`, placements per second (BENCHMARKS.md, Scale).
    BenchScale(scale_bench::ScaleArgs),
    /// `/metrics` and `/metrics/snapshot` latency on a master with
    /// `keel-agent sim` agents (BENCHMARKS.md, Metrics).
    BenchMetrics(metrics_bench::MetricsArgs),
    /// Operator event-stream subscribers: ACCEPT -> TASK_RUNNING without
    /// subscribers, with one stalled, and with N reading, in one run.
    BenchEvents(events_bench::EventsArgs),
    /// Custom executors: ACCEPT -> TASK_RUNNING of a task in a new and in a
    /// running custom executor beside a command task, in one run.
    BenchExecutors(executor_bench::ExecutorBenchArgs),
    /// The custom executor `bench-executors` launches (run by the agent).
    #[command(hide = true)]
    ExecutorBenchExecutor,
    /// The round trip of `exec true` into a running task, through the
    /// master and on the agent's port (BENCHMARKS.md, Exec).
    BenchExec(exec_bench::ExecArgs),
    /// Soak: 3 masters and 2 agents under mixed load with leader kills, the
    /// leader's disk filled once and bad clients; checks that no
    /// acknowledged write or task is lost (see BENCHMARKS.md, Soak).
    Soak(soak::SoakArgs),
    /// Measure agent start -> registered latency and idle memory.
    Bench {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// ACCEPT -> TASK_RUNNING samples (0 skips that part).
        #[arg(long, default_value_t = 1000)]
        launches: usize,
    },
    /// Build the PXE bundle: target/pxe/{vmlinuz,initramfs.img,boot.ipxe}.
    Pxe(pxe::PxeArgs),
    /// Boot a QEMU guest of a shape from the PXE bundle against a master on
    /// this machine, and check its inventory.
    Vm(vm::VmArgs),
    /// The QEMU hardware tests (part of `test`).
    VmTest,
    /// Boot time under TCG: the bundle against a bare busybox initramfs.
    VmBench {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Inside a QEMU guest: launching `true` through a Keel agent beside
    /// `crun run` of the same work, and launch -> TASK_RUNNING.
    GuestBench {
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// Launches on each side before the timed ones.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// On this machine (root, Debian crun): launching `true` through a
    /// Keel agent (`--isolation auto`) beside `crun run` of the same work,
    /// and launch -> TASK_RUNNING; the guest bench without emulation.
    HostBench(host_bench::HostBenchArgs),
    /// Build the immutable mkosi image: target/image/out/keel.raw.
    Image(image::ImageArgs),
    /// Boot the image in QEMU: a master guest and an agent guest.
    ImageTest,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// For benches that run a load generator in this process: built for
/// debugging, it and not the master was the bottleneck (87 % of a core,
/// the master at 30 %). In a debug build, runs the same command again
/// built for release and returns its outcome; `None` in a release build.
pub fn rerun_released() -> Option<Result<()>> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    argv.splice(
        0..0,
        ["run", "--quiet", "--release", "-p", "xtask", "--"].map(String::from),
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    Some(cargo(&argv))
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("+ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed with {status}", args.join(" "));
    }
    Ok(())
}

fn require_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .map(|(tool, pkg)| format!("{tool} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing tools the tests compare against: {}; install them or run .ci/run",
            missing.join(", ")
        );
    }
    Ok(())
}

/// C libraries the build links, as pkg-config modules with their Debian
/// packages (.ci/run installs them): tss-esapi's tpm2-tss.
const BUILD_LIBS: &[(&str, &str)] = &[
    ("tss2-esys", "libtss2-dev"),
    ("tss2-tctildr", "libtss2-dev"),
];

fn require_libs(libs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<String> = libs
        .iter()
        .filter(|(module, _)| {
            Command::new("pkg-config")
                .args(["--exists", module])
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        })
        .map(|(module, pkg)| format!("{module} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing libraries the build links: {}; install them or run .ci/run",
            missing.join(", ")
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Test { no_lint, no_vm } => {
            if !no_vm {
                vm::require_vm_tools()?;
            }
            require_tools(&[
                ("ip", "iproute2"),
                ("lsblk", "util-linux"),
                ("nproc", "coreutils"),
                ("pkg-config", "pkg-config"),
                ("chromium", "chromium"),
                ("chromedriver", "chromium-driver"),
            ])?;
            require_libs(BUILD_LIBS)?;
            archcheck::run(&root())?;
            if !no_lint {
                cargo(&["fmt", "--all", "--check"])?;
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])?;
            }
            cargo(&["build", "--workspace", "--bins"])?;
            cargo(&["test", "--workspace"])?;
            if no_vm {
                return Ok(());
            }
            vm::vm_test()
        }
        Cmd::Dev {
            port,
            agent_port,
            fresh,
            plaintext,
        } => dev::dev(port, agent_port, fresh, plaintext),
        Cmd::Bench { runs, launches } => bench::run(runs, launches),
        Cmd::BenchTrust {
            rounds,
            launches,
            writes,
        } => trust_bench::run(rounds, launches, writes),
        Cmd::BenchHa {
            kills,
            agents,
            writes,
        } => ha_bench::run(kills, agents, writes),
        Cmd::BenchScale(args) => scale_bench::run(&args),
        Cmd::BenchMetrics(args) => metrics_bench::run(&args),
        Cmd::BenchEvents(args) => events_bench::run(&args),
        Cmd::BenchExecutors(args) => executor_bench::run(&args),
        Cmd::ExecutorBenchExecutor => executor_bench::executor_main(),
        Cmd::BenchExec(args) => exec_bench::run(&args),
        Cmd::Soak(args) => soak::run(&args),
        Cmd::Pxe(args) => pxe::run(&args),
        Cmd::Vm(args) => vm::vm(&args),
        Cmd::VmTest => vm::vm_test(),
        Cmd::VmBench { runs } => vm::vm_bench(runs),
        Cmd::GuestBench { runs, warmup } => vm::guest_bench(runs, warmup),
        Cmd::HostBench(args) => host_bench::run(&args),
        Cmd::Image(args) => image::build(&args),
        Cmd::ImageTest => image::test(),
    }
}
