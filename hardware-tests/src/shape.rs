//! A machine's shape: what the lab says it has. For a QEMU guest it is
//! also what the provisioner builds; for a real machine it is what the
//! operator expects the agent to find. Stored as JSON (`shapes/*.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("cannot read shape {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("shape {name}: {reason}")]
    Invalid { name: String, reason: String },
}

pub const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// Give the guest a TPM 2.0 (swtpm) on a tpm-crb device.
    #[serde(default)]
    pub tpm: bool,
}

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Virtio,
    Nvme,
    Scsi,
    Ata,
}

impl DiskKind {
    /// The `transport` the agent reports for it.
    pub fn transport(self) -> &'static str {
        match self {
            DiskKind::Virtio => "virtio",
            DiskKind::Nvme => "nvme",
            DiskKind::Scsi => "scsi",
            DiskKind::Ata => "ata",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    pub kind: DiskKind,
    pub size_mib: u64,
    /// Serial number; QEMU guests always get one, real machines may leave
    /// it out (the disk is then matched by kind and size).
    #[serde(default)]
    pub serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: String,
    /// QEMU device model (`virtio-net-pci`, `e1000`, `e1000e`, `rtl8139`,
    /// ...); unused for real machines.
    #[serde(default)]
    pub model: Option<String>,
    /// Kernel driver the agent must report; None when the bundle has no
    /// driver for it (then the NIC must be absent from the inventory). The
    /// default comes from `model`.
    #[serde(default)]
    pub driver: Option<String>,
}

impl NicSpec {
    /// The driver expected for this NIC: explicit, or the Linux driver of
    /// the QEMU model, which the bundle ships except for models it leaves
    /// out on purpose (rtl8139 exercises the missing-driver report).
    pub fn expected_driver(&self) -> Option<String> {
        if self.driver.is_some() {
            return self.driver.clone();
        }
        match self.model.as_deref()? {
            "virtio-net-pci" => Some("virtio_net".into()),
            "e1000" => Some("e1000".into()),
            "e1000e" => Some("e1000e".into()),
            "igb" => Some("igb".into()),
            _ => None,
        }
    }
}

impl Shape {
    pub fn load(path: &Path) -> Result<Self, ShapeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ShapeError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let shape: Shape = serde_json::from_str(&text).map_err(|e| ShapeError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        shape.validate()?;
        Ok(shape)
    }

    /// Catches shapes QEMU would reject or the checks could not tell apart.
    pub fn validate(&self) -> Result<(), ShapeError> {
        let bad = |reason: String| ShapeError::Invalid {
            name: self.name.clone(),
            reason,
        };
        if self.vcpus == 0 || self.memory_mib < 256 {
            return Err(bad("needs at least 1 vCPU and 256 MiB".into()));
        }
        let mut macs = std::collections::BTreeSet::new();
        for n in &self.nics {
            let ok = n.mac.len() == 17
                && n.mac.split(':').all(|b| {
                    b.len() == 2
                        && b.bytes()
                            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                });
            if !ok {
                return Err(bad(format!("NIC MAC {:?} is not aa:bb:cc:dd:ee:ff", n.mac)));
            }
            if !macs.insert(&n.mac) {
                return Err(bad(format!("NIC MAC {} appears twice", n.mac)));
            }
        }
        let mut serials = std::collections::BTreeSet::new();
        for d in &self.disks {
            if d.size_mib == 0 {
                return Err(bad("a disk of 0 MiB".into()));
            }
            if let Some(s) = &d.serial
                && !serials.insert(s)
            {
                return Err(bad(format!("disk serial {s} appears twice")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_shapes_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shapes");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            Shape::load(&entry.unwrap().path()).unwrap();
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn validation() {
        let mut s = Shape {
            name: "t".into(),
            vcpus: 1,
            memory_mib: 512,
            disks: vec![],
            nics: vec![NicSpec {
                mac: "52:54:00:AA:00:01".into(),
                model: Some("e1000".into()),
                driver: None,
            }],
            tpm: false,
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("is not aa:bb")
        );
        s.nics[0].mac = "52:54:00:aa:00:01".into();
        s.validate().unwrap();
        s.nics.push(s.nics[0].clone());
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "shape t: NIC MAC 52:54:00:aa:00:01 appears twice"
        );
    }

    #[test]
    fn drivers_from_models() {
        let nic = |model: &str| NicSpec {
            mac: "52:54:00:00:00:01".into(),
            model: Some(model.into()),
            driver: None,
        };
        assert_eq!(
            nic("virtio-net-pci").expected_driver().as_deref(),
            Some("virtio_net")
        );
        assert_eq!(nic("rtl8139").expected_driver(), None);
        let mut n = nic("rtl8139");
        n.driver = Some("8139too".into());
        assert_eq!(n.expected_driver().as_deref(), Some("8139too"));
    }
}
