//! Hardware discovery: what the agent reports to the master at boot.
//!
//! Every reader takes the root of a procfs/sysfs tree (`/` in production, a
//! captured fixture directory in tests) and never touches anything outside it:
//!
//! | source | reader | values |
//! |---|---|---|
//! | `proc/sys/kernel/hostname` | [`discover`] | hostname |
//! | `sys/devices/system/{cpu,node}`, `proc/cpuinfo` | [`cpu`] | CPU counts, topology, model |
//! | `proc/meminfo`, `sys/kernel/mm/hugepages` | [`memory`] | memory, swap, huge pages |
//! | `sys/block` | [`disk`] | disks and partitions |
//! | `sys/bus/pci/devices` | [`pci`] | GPUs, display devices, accelerators |
//! | netlink `RTM_GETLINK`/`RTM_GETADDR`, `sys/class/net` | [`nic`], [`netlink`] | network interfaces |
//! | `sys/class/tpm`, then the TPM itself (tss-esapi) | [`tpm`] | TPM 2.0 identity and endorsement key |
//!
//! A fixture is such a tree, made by [`capture()`], plus the recorded netlink
//! dumps in `netlink/` (format in [`netlink`]). A fixture records no TPM
//! device: one its sysfs lists reads as present with an error.

use std::io;
use std::path::{Path, PathBuf};

use keel_api::inventory::Inventory;

pub mod capture;
pub mod cpu;
pub mod disk;
pub mod memory;
pub mod netlink;
pub mod nic;
pub mod pci;
mod sysfs;
pub mod tpm;

pub use capture::{capture, capture_tree};

/// Knobs for discovery.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    /// Also report virtual block devices: `loop*`, `ram*`, `zram*`, `dm-*`,
    /// `md*`, `nbd*` and `sr*` (see [`disk::is_virtual`]).
    pub include_virtual_disks: bool,
}

/// Everything that can go wrong while discovering or capturing a machine.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("netlink {what} dump failed: {reason}")]
    Netlink { what: &'static str, reason: String },
}

impl DiscoveryError {
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        DiscoveryError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, reason: impl Into<String>) -> Self {
        DiscoveryError::Parse {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        DiscoveryError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Live discovery: reads `<root>/proc` and `<root>/sys` (root is `/` in
/// production) and lists NICs over rtnetlink in the caller's network namespace.
pub async fn discover(root: &Path, opts: &DiscoveryOptions) -> Result<Inventory, DiscoveryError> {
    let (links, addrs) = netlink::dump_live().await?;
    let nics = nic::from_messages(&links, &addrs);
    let tpm = tpm::read_live(root, tpm::LIVE_TIMEOUT).await;
    assemble(root, opts, nics, tpm)
}

/// Discovery from a captured fixture directory: the procfs/sysfs files under
/// `dir` plus the netlink dumps in `dir/netlink/{links,addrs}.bin`.
pub fn discover_fixture(dir: &Path, opts: &DiscoveryOptions) -> Result<Inventory, DiscoveryError> {
    let links = netlink::read_links(&dir.join(netlink::LINKS_FILE))?;
    let addrs = netlink::read_addrs(&dir.join(netlink::ADDRS_FILE))?;
    let nics = nic::from_messages(&links, &addrs);
    let tpm = Some(tpm::read(dir, &Unrecorded)?);
    assemble(dir, opts, nics, tpm)
}

/// A fixture's TPM: sysfs is recorded, the device is not.
struct Unrecorded;

impl tpm::TpmConnector for Unrecorded {
    fn connect(&self, tcti: &str) -> Result<Box<dyn tpm::TpmSession>, tpm::TpmError> {
        Err(tpm::TpmError::Open {
            tcti: tcti.to_string(),
            reason: "a fixture records no tpm device".into(),
        })
    }
}

/// Runs the file readers under `root` and merges in the NICs (enriched from
/// `root/sys/class/net`).
fn assemble(
    root: &Path,
    opts: &DiscoveryOptions,
    mut nics: Vec<keel_api::inventory::Nic>,
    tpm: Option<keel_api::inventory::TpmInfo>,
) -> Result<Inventory, DiscoveryError> {
    for n in &mut nics {
        nic::enrich(root, n);
    }
    Ok(Inventory {
        hostname: hostname(root)?,
        cpu: cpu::read(root)?,
        memory: memory::read(root)?,
        disks: disk::read(root, opts)?,
        nics,
        accelerators: pci::read(root)?,
        tpm,
    })
}

/// Relative path of the host name file (the UTS namespace's node name).
pub(crate) const HOSTNAME_FILE: &str = "proc/sys/kernel/hostname";

/// The host name from `proc/sys/kernel/hostname`.
fn hostname(root: &Path) -> Result<String, DiscoveryError> {
    Ok(sysfs::read_string(&root.join(HOSTNAME_FILE))?
        .trim()
        .to_string())
}
