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
    /// The TPM. `None`: unknown (an agent from before TPM discovery, or
    /// JSON written by one); a machine without a TPM says so with
    /// `present: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmInfo>,
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

/// The machine's TPM as the agent read it. Everything but `present` is
/// optional: a TPM that does not answer still counts as present, with
/// `error` saying what went wrong.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmInfo {
    pub present: bool,
    /// The device node the agent talked to, e.g. `/dev/tpmrm0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `TPM_PT_FAMILY_INDICATOR`, e.g. `2.0` (`1.2` for an old TPM, which
    /// is reported but not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// `TPM_PT_LEVEL` of the specification (0 for every TPM 2.0 so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// `TPM_PT_REVISION` of the specification, e.g. `1.59`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `TPM_PT_MANUFACTURER`: the TCG vendor id, its four ASCII characters
    /// without trailing NULs or spaces (`IBM`, `INTC`, `IFX`, `STM`, `NTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// `TPM_PT_VENDOR_STRING_1..4` joined, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `TPM_PT_FIRMWARE_VERSION_1/2` as four 16-bit numbers `a.b.c.d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// The endorsement key made from the TCG default template: the node's
    /// hardware identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ek: Option<EndorsementKey>,
    /// What went wrong talking to a present TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TpmInfo {
    /// A machine without a TPM.
    pub fn absent() -> Self {
        TpmInfo::default()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndorsementKey {
    /// The template it was created from: `rsa2048` or `ecc_nist_p256`.
    pub algorithm: String,
    /// SHA-256 of the public key's DER `SubjectPublicKeyInfo` in lower-case
    /// hex: what `openssl pkey -pubin -outform DER | sha256sum` prints for
    /// the key, and the key of the TPM's EK certificate when it has one.
    pub sha256: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_without_tpm_reads_as_unknown_and_round_trips() {
        let old = serde_json::to_value(Inventory::default()).unwrap();
        assert!(old.get("tpm").is_none(), "{old}");
        let inv: Inventory = serde_json::from_value(old).unwrap();
        assert_eq!(inv.tpm, None);

        let absent = Inventory {
            tpm: Some(TpmInfo::absent()),
            ..Inventory::default()
        };
        let json = serde_json::to_value(&absent).unwrap();
        assert_eq!(json["tpm"], serde_json::json!({"present": false}));
        assert_eq!(serde_json::from_value::<Inventory>(json).unwrap(), absent);
    }
}
