//! The hardware inventory an agent discovers at boot and reports to the master.
//!
//! Plain data only: discovery lives in `keel-agent` (`agent/src/discovery`),
//! the protobuf mapping in [`crate::convert`].

use serde::{Deserialize, Serialize};

/// Everything the agent found on its machine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub hostname: String,
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// GPUs and other accelerators found on the PCI bus.
    pub accelerators: Vec<PciDevice>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuInfo {
    /// Online logical CPUs (hardware threads).
    pub logical: u32,
    /// Distinct (socket, core) pairs among the online CPUs.
    pub cores: u32,
    pub sockets: u32,
    pub numa_nodes: u32,
    /// `model name` from /proc/cpuinfo (empty when the kernel gives none).
    pub model: String,
    /// `vendor_id` from /proc/cpuinfo.
    pub vendor: String,
    /// The online set in kernel cpulist syntax, e.g. `0-15`.
    pub online: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryInfo {
    /// `MemTotal`: RAM the kernel manages (installed RAM less what it
    /// reserved at boot). Mesos' `mem` default is computed from this.
    pub total_bytes: u64,
    /// Installed RAM as the memory-block sysfs sees it (online blocks x
    /// block size), when the kernel exposes it.
    #[serde(default)]
    pub physical_bytes: Option<u64>,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    /// One entry per huge page size the kernel supports.
    pub hugepages: Vec<HugePages>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HugePages {
    pub page_size_bytes: u64,
    pub total: u64,
    pub free: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel name, e.g. `nvme0n1`, `sda`, `vda`.
    pub name: String,
    pub size_bytes: u64,
    pub rotational: bool,
    pub removable: bool,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub vendor: Option<String>,
    /// `nvme`, `virtio`, `scsi`, `ata`, `usb`, `mmc` or `unknown`.
    pub transport: String,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub name: String,
    pub size_bytes: u64,
    pub start_sector: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    pub index: u32,
    /// `aa:bb:cc:dd:ee:ff`, absent for links without a hardware address.
    pub mac: Option<String>,
    pub mtu: u32,
    /// RFC 2863 operational state as the kernel names it: `up`, `down`, `unknown`, ...
    pub oper_state: String,
    /// rtnetlink link kind (`veth`, `bridge`, ...) for virtual links; `loopback` for lo.
    pub kind: Option<String>,
    pub addresses: Vec<IpAddress>,
    pub driver: Option<String>,
    pub pci_address: Option<String>,
    pub speed_mbps: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddress {
    /// Textual IPv4 or IPv6 address.
    pub address: String,
    pub prefix_len: u32,
}

/// What a PCI device is for, as far as Keel cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PciKind {
    /// A GPU that counts towards the `gpus` resource.
    #[default]
    Gpu,
    /// Display controllers that are not compute GPUs (BMC VGA, emulated VGA).
    Display,
    /// Processing accelerators and co-processors (PCI class 0x12, 0x0b40).
    Accelerator,
}

impl PciKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PciKind::Gpu => "gpu",
            PciKind::Display => "display",
            PciKind::Accelerator => "accelerator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gpu" => Some(PciKind::Gpu),
            "display" => Some(PciKind::Display),
            "accelerator" => Some(PciKind::Accelerator),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciDevice {
    /// Domain:bus:device.function, e.g. `0000:17:00.0`.
    pub address: String,
    /// The 24-bit class code, e.g. `0x030200`.
    pub class: u32,
    pub vendor_id: u16,
    pub device_id: u16,
    pub vendor_name: Option<String>,
    pub driver: Option<String>,
    pub numa_node: Option<i32>,
    pub kind: PciKind,
}

impl Inventory {
    /// Number of devices that count towards the `gpus` resource.
    pub fn gpu_count(&self) -> usize {
        self.accelerators
            .iter()
            .filter(|d| d.kind == PciKind::Gpu)
            .count()
    }
}
