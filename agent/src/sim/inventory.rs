//! Synthetic machines for simulated agents, deterministic from the agent's
//! index: a shape (CPU count, memory, disks, NICs, GPUs), a rack and a zone
//! as attributes, and the resources the real agent would offer for that
//! inventory ([`crate::resources::agent_resources`], the Mesos defaults).
//!
//! | shape  | share | cpus | memory  | disks        | NICs      | GPUs |
//! |--------|-------|------|---------|--------------|-----------|------|
//! | small  | 40 %  | 8    | 32 GiB  | 1 x 1 TB     | 2 x 10G   | -    |
//! | medium | 30 %  | 32   | 128 GiB | 2 x 2 TB     | 2 x 25G   | -    |
//! | large  | 20 %  | 64   | 512 GiB | 4 x 4 TB     | 4 x 25G   | -    |
//! | gpu    | 10 %  | 48   | 384 GiB | 2 x 4 TB     | 2 x 100G  | 4/8  |
//!
//! 40 agents to a rack, racks spread over zones `a`, `b` and `c`.

use keel_api::attributes::Attributes;
use keel_api::inventory::{
    CpuInfo, Disk, Inventory, IpAddress, MemoryInfo, Nic, PciDevice, PciKind,
};
use keel_api::resources::Resources;

const GIB: u64 = 1 << 30;
const TB: u64 = 1_000_000_000_000;
const RACK: usize = 40;

/// One simulated machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub hostname: String,
    pub shape: &'static str,
    pub inventory: Inventory,
    pub attributes: Attributes,
    pub resources: Resources,
}

struct Shape {
    name: &'static str,
    cpus: u32,
    mem_gib: u64,
    disks: u32,
    disk_tb: u64,
    nics: u32,
    nic_mbps: u32,
    gpus: u32,
}

fn shape(index: usize) -> Shape {
    // splitmix64: neighbours get unrelated shapes.
    let mut z = (index as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let (name, cpus, mem_gib, disks, disk_tb, nics, nic_mbps, gpus) = match z % 10 {
        0..=3 => ("small", 8, 32, 1, 1, 2, 10_000, 0),
        4..=6 => ("medium", 32, 128, 2, 2, 2, 25_000, 0),
        7 | 8 => ("large", 64, 512, 4, 4, 4, 25_000, 0),
        _ => ("gpu", 48, 384, 2, 4, 2, 100_000, 4 << (z / 10 % 2)),
    };
    Shape {
        name,
        cpus,
        mem_gib,
        disks,
        disk_tb,
        nics,
        nic_mbps,
        gpus,
    }
}

/// The machine of simulated agent `index`.
pub fn machine(index: usize) -> Machine {
    let s = shape(index);
    let hostname = format!("sim-{index:05}");
    let disks = (0..s.disks)
        .map(|d| Disk {
            name: format!("nvme{d}n1"),
            size_bytes: s.disk_tb * TB,
            transport: "nvme".into(),
            model: Some("Simulated NVMe".into()),
            serial: Some(format!("SIM{index:05}D{d}")),
            ..Disk::default()
        })
        .collect();
    let nics = (0..s.nics)
        .map(|n| Nic {
            name: format!("eth{n}"),
            index: n + 2,
            mac: Some(format!(
                "02:00:{:02x}:{:02x}:{:02x}:{n:02x}",
                index >> 16 & 0xff,
                index >> 8 & 0xff,
                index & 0xff
            )),
            mtu: 9000,
            oper_state: "up".into(),
            addresses: vec![IpAddress {
                address: format!("10.{}.{}.{}", n, index / 250 % 250, index % 250 + 1),
                prefix_len: 16,
            }],
            driver: Some("sim".into()),
            speed_mbps: Some(s.nic_mbps),
            ..Nic::default()
        })
        .collect();
    let accelerators = (0..s.gpus)
        .map(|g| PciDevice {
            address: format!("0000:{:02x}:00.0", 0x17 + g),
            class: 0x030200,
            vendor_id: 0x10de,
            device_id: 0x2330,
            vendor_name: Some("NVIDIA Corporation".into()),
            driver: Some("nvidia".into()),
            numa_node: Some((g % 2) as i32),
            kind: PciKind::Gpu,
        })
        .collect();
    let inventory = Inventory {
        hostname: hostname.clone(),
        cpu: CpuInfo {
            logical: s.cpus,
            cores: s.cpus / 2,
            sockets: 1 + u32::from(s.cpus >= 32),
            numa_nodes: 1 + u32::from(s.cpus >= 32),
            model: "Simulated CPU".into(),
            vendor: "GenuineIntel".into(),
            online: format!("0-{}", s.cpus - 1),
        },
        memory: MemoryInfo {
            total_bytes: s.mem_gib * GIB,
            physical_bytes: Some(s.mem_gib * GIB),
            available_bytes: s.mem_gib * GIB,
            swap_total_bytes: 0,
            hugepages: Vec::new(),
        },
        disks,
        nics,
        accelerators,
        tpm: None,
    };
    let rack = index / RACK;
    let zone = ["a", "b", "c"][rack % 3];
    let attributes = Attributes::parse(&format!("rack:r{rack};zone:{zone};shape:{}", s.name))
        .unwrap_or_default();
    // The work dir's filesystem: the first disk.
    let resources =
        crate::resources::agent_resources(&inventory, Some(s.disk_tb * TB), &Resources::default());
    Machine {
        hostname,
        shape: s.name,
        inventory,
        attributes,
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_deterministic_and_varied() {
        assert_eq!(machine(7), machine(7));
        let shapes: std::collections::BTreeMap<&str, usize> =
            (0..1000).fold(Default::default(), |mut m, i| {
                *m.entry(machine(i).shape).or_default() += 1;
                m
            });
        assert_eq!(shapes.len(), 4, "{shapes:?}");
        assert!(shapes.values().all(|n| *n >= 50), "{shapes:?}");
        let gpu = (0..100).map(machine).find(|m| m.shape == "gpu").unwrap();
        assert!(gpu.inventory.gpu_count() >= 4);
        assert!(gpu.resources.has("gpus"));
        let m = machine(85);
        assert_eq!(m.hostname, "sim-00085");
        assert!(m.attributes.get("rack").is_some() && m.attributes.get("zone").is_some());
        assert!(m.resources.has("cpus") && m.resources.has("mem") && m.resources.has("disk"));
        assert_ne!(
            machine(1).inventory.nics[0].mac,
            machine(2).inventory.nics[0].mac
        );
    }
}
