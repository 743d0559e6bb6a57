//! QEMU commands: `cargo xtask vm` (boot one node of a shape against a
//! master on this machine), `vm-test` (the hardware tests and the guest
//! isolation test, as CI runs them), `vm-bench` (boot time against a bare
//! busybox initramfs) and `guest-bench` (task launch inside a guest, beside
//! crun). All build the PXE bundle first through `pxe::build`, then drive
//! the keel-hardware-tests crate or the agent's guest tests.

use anyhow::{Context, Result, bail};

use crate::pxe::{self, PxeArgs};
use crate::{cargo, root};

/// Host tools the VM tests need, with their Debian packages (.ci/run
/// installs them).
pub const VM_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("swtpm", "swtpm"),
    ("zstd", "zstd"),
    ("depmod", "kmod"),
    ("dpkg-deb", "dpkg"),
    ("strip", "binutils"),
    ("mke2fs", "e2fsprogs"),
    ("busybox", "busybox-static"),
];

/// Fails with the missing tools and their packages; the iPXE ROMs are
/// files, checked the same way.
pub fn require_vm_tools() -> Result<()> {
    crate::require_tools(VM_TOOLS)?;
    if !std::path::Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists() {
        bail!("missing the iPXE ROMs QEMU's NICs boot from (Debian package ipxe-qemu)");
    }
    Ok(())
}

/// Options of `cargo xtask vm`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmArgs {
    /// A shape name from hardware-tests/shapes, or a path to a shape file.
    #[arg(long, default_value = "pxe-two-nics")]
    pub shape: String,
    /// Boot through PXE (iPXE ROM, TFTP + HTTP from this machine).
    #[arg(long)]
    pub pxe: bool,
    /// Further kernel parameters, e.g. `keel.workdisk=serial:KEEL-WORK`.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Keep the guest and the master running until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
}

fn hwtest(args: &[&str]) -> Result<()> {
    let mut all = vec![
        "run",
        "--quiet",
        "-p",
        "keel-hardware-tests",
        "--bin",
        "keel-hwtest",
        "--",
    ];
    all.extend_from_slice(args);
    cargo(&all)
}

pub fn vm(args: &VmArgs) -> Result<()> {
    require_vm_tools()?;
    pxe::build(&PxeArgs::default())?;
    let shape = if args.shape.contains('/') || args.shape.ends_with(".json") {
        args.shape.clone()
    } else {
        root()
            .join("hardware-tests/shapes")
            .join(format!("{}.json", args.shape))
            .display()
            .to_string()
    };
    let mut a = vec![
        "boot",
        "--shape",
        shape.as_str(),
        "--append",
        args.append.as_str(),
    ];
    if args.pxe {
        a.push("--pxe");
    }
    if args.keep {
        a.push("--keep");
    }
    hwtest(&a)
}

/// The QEMU tests, one guest at a time: hardware-tests/tests/qemu.rs (the
/// appliance) and qemu_tpm.rs (its TPM admission), then
/// agent/tests/guest_isolation.rs (task isolation in a
/// guest, probe tasks fetched from this machine).
pub fn vm_test() -> Result<()> {
    require_vm_tools()?;
    // The release binaries and the kernel cache both tests build on.
    pxe::build(&PxeArgs::default())?;
    cargo(&[
        "test",
        "-p",
        "keel-hardware-tests",
        "--test",
        "qemu",
        "--test",
        "qemu_tpm",
        "--",
        "--ignored",
        "--test-threads=1",
    ])?;
    // The probe the guest fetches: the test finds it beside itself
    // (target/debug/examples).
    cargo(&["build", "-p", "keel-agent", "--example", "probe"])?;
    let started = std::time::Instant::now();
    cargo(&[
        "test",
        "-p",
        "keel-agent",
        "--test",
        "guest_isolation",
        "--",
        "--ignored",
        "--nocapture",
    ])?;
    eprintln!("guest isolation test: {:?}", started.elapsed());
    Ok(())
}

/// Builds agent/examples/guest_bench/ in release; returns its path (the
/// guest bench runs it in a guest, the host bench on this machine).
pub fn build_guest_bench() -> Result<std::path::PathBuf> {
    cargo(&[
        "build",
        "--release",
        "-p",
        "keel-agent",
        "--example",
        "guest_bench",
    ])?;
    Ok(root().join("target/release/examples/guest_bench"))
}

/// Task launch inside a guest, beside `crun run` (agent/tests/guest_bench.rs
/// drives agent/examples/guest_bench/, built in release, in the guest).
pub fn guest_bench(runs: usize, warmup: usize) -> Result<()> {
    require_vm_tools()?;
    pxe::build(&PxeArgs::default())?;
    let bench = build_guest_bench()?;
    let args = [
        "test",
        "-p",
        "keel-agent",
        "--test",
        "guest_bench",
        "--",
        "--ignored",
        "--nocapture",
    ];
    eprintln!("+ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(args)
        .env("KEEL_GUEST_BENCH_BIN", &bench)
        .env("GUEST_BENCH_RUNS", runs.to_string())
        .env("GUEST_BENCH_WARMUP", warmup.to_string())
        .current_dir(root())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the guest bench failed with {status}");
    }
    Ok(())
}

pub fn vm_bench(runs: usize) -> Result<()> {
    require_vm_tools()?;
    pxe::build(&PxeArgs::default())?;
    hwtest(&["bench", "--runs", &runs.to_string()])
}
