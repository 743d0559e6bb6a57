//! Protobuf <-> domain conversions for the agent<->master protocol.
//!
//! Encoding is total; decoding checks what protobuf cannot (a value kind that
//! is present, a PCI id that fits in 16 bits, a known PCI kind).

use crate::attributes::{Attribute, AttributeValue, Attributes};
use crate::inventory::{
    CpuInfo, Disk, EndorsementKey, HugePages, Inventory, IpAddress, MemoryInfo, Nic, Partition,
    PciDevice, PciKind, TpmInfo,
};
use crate::mesos;
use crate::pb;
use crate::resources::{Range, Resource, Resources, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConvertError {
    #[error("task status of {task_id}: unknown state {state:?}")]
    TaskState { task_id: String, state: String },
    #[error("task status of {task_id}: uuid must be 16 bytes, got {len}")]
    Uuid { task_id: String, len: usize },
    #[error("{what} has no value")]
    MissingValue { what: String },
    #[error("attribute {name} has a set value, which attributes cannot hold")]
    SetAttribute { name: String },
    #[error("resource {name} has a text value, which resources cannot hold")]
    TextResource { name: String },
    #[error("pci device {address}: {field} {value:#x} does not fit in 16 bits")]
    PciIdRange {
        address: String,
        field: &'static str,
        value: u32,
    },
    #[error("pci device {address}: unknown kind {kind:?}")]
    PciKind { address: String, kind: String },
}

fn ranges_to_pb(ranges: &[Range]) -> pb::Ranges {
    pb::Ranges {
        range: ranges
            .iter()
            .map(|r| pb::Range {
                begin: r.begin,
                end: r.end,
            })
            .collect(),
    }
}

fn ranges_from_pb(ranges: &pb::Ranges) -> Vec<Range> {
    ranges
        .range
        .iter()
        .map(|r| Range {
            begin: r.begin,
            end: r.end,
        })
        .collect()
}

pub fn resource_to_pb(r: &Resource) -> pb::Resource {
    let kind = match &r.value {
        Value::Scalar(v) => pb::value::Kind::Scalar(*v),
        Value::Ranges(ranges) => pb::value::Kind::Ranges(ranges_to_pb(ranges)),
        Value::Set(items) => pb::value::Kind::Set(pb::Set {
            item: items.clone(),
        }),
    };
    pb::Resource {
        name: r.name.clone(),
        role: r.role.clone(),
        value: Some(pb::Value { kind: Some(kind) }),
    }
}

pub fn resource_from_pb(r: &pb::Resource) -> Result<Resource, ConvertError> {
    let missing = || ConvertError::MissingValue {
        what: format!("resource {}", r.name),
    };
    let value = match r
        .value
        .as_ref()
        .and_then(|v| v.kind.as_ref())
        .ok_or_else(missing)?
    {
        pb::value::Kind::Scalar(v) => Value::Scalar(*v),
        pb::value::Kind::Ranges(ranges) => Value::Ranges(ranges_from_pb(ranges)),
        pb::value::Kind::Set(set) => Value::Set(set.item.clone()),
        pb::value::Kind::Text(_) => {
            return Err(ConvertError::TextResource {
                name: r.name.clone(),
            });
        }
    };
    let role = if r.role.is_empty() {
        "*".to_string()
    } else {
        r.role.clone()
    };
    Ok(Resource {
        name: r.name.clone(),
        role,
        value,
    })
}

pub fn resources_to_pb(rs: &Resources) -> Vec<pb::Resource> {
    rs.0.iter().map(resource_to_pb).collect()
}

pub fn resources_from_pb(rs: &[pb::Resource]) -> Result<Resources, ConvertError> {
    Ok(Resources(
        rs.iter().map(resource_from_pb).collect::<Result<_, _>>()?,
    ))
}

pub fn attribute_to_pb(a: &Attribute) -> pb::Attribute {
    let kind = match &a.value {
        AttributeValue::Scalar(v) => pb::value::Kind::Scalar(*v),
        AttributeValue::Ranges(ranges) => pb::value::Kind::Ranges(ranges_to_pb(ranges)),
        AttributeValue::Text(t) => pb::value::Kind::Text(t.clone()),
    };
    pb::Attribute {
        name: a.name.clone(),
        value: Some(pb::Value { kind: Some(kind) }),
    }
}

pub fn attribute_from_pb(a: &pb::Attribute) -> Result<Attribute, ConvertError> {
    let missing = || ConvertError::MissingValue {
        what: format!("attribute {}", a.name),
    };
    let value = match a
        .value
        .as_ref()
        .and_then(|v| v.kind.as_ref())
        .ok_or_else(missing)?
    {
        pb::value::Kind::Scalar(v) => AttributeValue::Scalar(*v),
        pb::value::Kind::Ranges(ranges) => AttributeValue::Ranges(ranges_from_pb(ranges)),
        pb::value::Kind::Text(t) => AttributeValue::Text(t.clone()),
        pb::value::Kind::Set(_) => {
            return Err(ConvertError::SetAttribute {
                name: a.name.clone(),
            });
        }
    };
    Ok(Attribute {
        name: a.name.clone(),
        value,
    })
}

pub fn attributes_to_pb(attrs: &Attributes) -> Vec<pb::Attribute> {
    attrs.0.iter().map(attribute_to_pb).collect()
}

pub fn attributes_from_pb(attrs: &[pb::Attribute]) -> Result<Attributes, ConvertError> {
    Ok(Attributes(
        attrs
            .iter()
            .map(attribute_from_pb)
            .collect::<Result<_, _>>()?,
    ))
}

pub fn inventory_to_pb(inv: &Inventory) -> pb::Inventory {
    let c = &inv.cpu;
    let m = &inv.memory;
    pb::Inventory {
        hostname: inv.hostname.clone(),
        cpu: Some(pb::Cpu {
            logical: c.logical,
            cores: c.cores,
            sockets: c.sockets,
            numa_nodes: c.numa_nodes,
            model: c.model.clone(),
            vendor: c.vendor.clone(),
            online: c.online.clone(),
        }),
        memory: Some(pb::Memory {
            total_bytes: m.total_bytes,
            physical_bytes: m.physical_bytes,
            available_bytes: m.available_bytes,
            swap_total_bytes: m.swap_total_bytes,
            hugepages: m
                .hugepages
                .iter()
                .map(|h| pb::HugePages {
                    page_size_bytes: h.page_size_bytes,
                    total: h.total,
                    free: h.free,
                })
                .collect(),
        }),
        disks: inv.disks.iter().map(disk_to_pb).collect(),
        nics: inv.nics.iter().map(nic_to_pb).collect(),
        accelerators: inv.accelerators.iter().map(pci_to_pb).collect(),
        tpm: inv.tpm.as_ref().map(tpm_to_pb),
    }
}

fn tpm_to_pb(t: &TpmInfo) -> pb::Tpm {
    pb::Tpm {
        present: t.present,
        device: t.device.clone(),
        family: t.family.clone(),
        level: t.level,
        revision: t.revision.clone(),
        manufacturer: t.manufacturer.clone(),
        vendor: t.vendor.clone(),
        firmware_version: t.firmware_version.clone(),
        ek: t.ek.as_ref().map(|k| pb::EndorsementKey {
            algorithm: k.algorithm.clone(),
            sha256: k.sha256.clone(),
        }),
        error: t.error.clone(),
    }
}

fn tpm_from_pb(t: &pb::Tpm) -> TpmInfo {
    TpmInfo {
        present: t.present,
        device: t.device.clone(),
        family: t.family.clone(),
        level: t.level,
        revision: t.revision.clone(),
        manufacturer: t.manufacturer.clone(),
        vendor: t.vendor.clone(),
        firmware_version: t.firmware_version.clone(),
        ek: t.ek.as_ref().map(|k| EndorsementKey {
            algorithm: k.algorithm.clone(),
            sha256: k.sha256.clone(),
        }),
        error: t.error.clone(),
    }
}

fn disk_to_pb(d: &Disk) -> pb::Disk {
    pb::Disk {
        name: d.name.clone(),
        size_bytes: d.size_bytes,
        rotational: d.rotational,
        removable: d.removable,
        model: d.model.clone(),
        serial: d.serial.clone(),
        wwn: d.wwn.clone(),
        vendor: d.vendor.clone(),
        transport: d.transport.clone(),
        partitions: d
            .partitions
            .iter()
            .map(|p| pb::Partition {
                name: p.name.clone(),
                size_bytes: p.size_bytes,
                start_sector: p.start_sector,
            })
            .collect(),
    }
}

fn nic_to_pb(n: &Nic) -> pb::Nic {
    pb::Nic {
        name: n.name.clone(),
        index: n.index,
        mac: n.mac.clone(),
        mtu: n.mtu,
        oper_state: n.oper_state.clone(),
        kind: n.kind.clone(),
        addresses: n
            .addresses
            .iter()
            .map(|a| pb::IpAddress {
                address: a.address.clone(),
                prefix_len: a.prefix_len,
            })
            .collect(),
        driver: n.driver.clone(),
        pci_address: n.pci_address.clone(),
        speed_mbps: n.speed_mbps,
    }
}

fn pci_to_pb(p: &PciDevice) -> pb::PciDevice {
    pb::PciDevice {
        address: p.address.clone(),
        class: p.class,
        vendor_id: u32::from(p.vendor_id),
        device_id: u32::from(p.device_id),
        vendor_name: p.vendor_name.clone(),
        driver: p.driver.clone(),
        numa_node: p.numa_node,
        kind: p.kind.as_str().to_string(),
    }
}

pub fn inventory_from_pb(inv: &pb::Inventory) -> Result<Inventory, ConvertError> {
    let cpu = inv.cpu.as_ref().map(|c| CpuInfo {
        logical: c.logical,
        cores: c.cores,
        sockets: c.sockets,
        numa_nodes: c.numa_nodes,
        model: c.model.clone(),
        vendor: c.vendor.clone(),
        online: c.online.clone(),
    });
    let memory = inv.memory.as_ref().map(|m| MemoryInfo {
        total_bytes: m.total_bytes,
        physical_bytes: m.physical_bytes,
        available_bytes: m.available_bytes,
        swap_total_bytes: m.swap_total_bytes,
        hugepages: m
            .hugepages
            .iter()
            .map(|h| HugePages {
                page_size_bytes: h.page_size_bytes,
                total: h.total,
                free: h.free,
            })
            .collect(),
    });
    Ok(Inventory {
        hostname: inv.hostname.clone(),
        cpu: cpu.unwrap_or_default(),
        memory: memory.unwrap_or_default(),
        disks: inv.disks.iter().map(disk_from_pb).collect(),
        nics: inv.nics.iter().map(nic_from_pb).collect(),
        accelerators: inv
            .accelerators
            .iter()
            .map(pci_from_pb)
            .collect::<Result<_, _>>()?,
        tpm: inv.tpm.as_ref().map(tpm_from_pb),
    })
}

fn disk_from_pb(d: &pb::Disk) -> Disk {
    Disk {
        name: d.name.clone(),
        size_bytes: d.size_bytes,
        rotational: d.rotational,
        removable: d.removable,
        model: d.model.clone(),
        serial: d.serial.clone(),
        wwn: d.wwn.clone(),
        vendor: d.vendor.clone(),
        transport: d.transport.clone(),
        partitions: d
            .partitions
            .iter()
            .map(|p| Partition {
                name: p.name.clone(),
                size_bytes: p.size_bytes,
                start_sector: p.start_sector,
            })
            .collect(),
    }
}

fn nic_from_pb(n: &pb::Nic) -> Nic {
    Nic {
        name: n.name.clone(),
        index: n.index,
        mac: n.mac.clone(),
        mtu: n.mtu,
        oper_state: n.oper_state.clone(),
        kind: n.kind.clone(),
        addresses: n
            .addresses
            .iter()
            .map(|a| IpAddress {
                address: a.address.clone(),
                prefix_len: a.prefix_len,
            })
            .collect(),
        driver: n.driver.clone(),
        pci_address: n.pci_address.clone(),
        speed_mbps: n.speed_mbps,
    }
}

fn pci_from_pb(p: &pb::PciDevice) -> Result<PciDevice, ConvertError> {
    let id = |field: &'static str, value: u32| {
        u16::try_from(value).map_err(|_| ConvertError::PciIdRange {
            address: p.address.clone(),
            field,
            value,
        })
    };
    Ok(PciDevice {
        address: p.address.clone(),
        class: p.class,
        vendor_id: id("vendor_id", p.vendor_id)?,
        device_id: id("device_id", p.device_id)?,
        vendor_name: p.vendor_name.clone(),
        driver: p.driver.clone(),
        numa_node: p.numa_node,
        kind: PciKind::parse(&p.kind).ok_or_else(|| ConvertError::PciKind {
            address: p.address.clone(),
            kind: p.kind.clone(),
        })?,
    })
}

/// Agent status update -> the Mesos `TaskStatus` a framework receives.
/// `agent_id` is always set, as clients copy it into their acknowledgement.
pub fn task_status_to_mesos(
    st: &pb::TaskStatus,
    agent_id: &str,
) -> Result<mesos::TaskStatus, ConvertError> {
    let state = mesos::TaskState::from_name(&st.state).ok_or_else(|| ConvertError::TaskState {
        task_id: st.task_id.clone(),
        state: st.state.clone(),
    })?;
    if !st.uuid.is_empty() && st.uuid.len() != 16 {
        return Err(ConvertError::Uuid {
            task_id: st.task_id.clone(),
            len: st.uuid.len(),
        });
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(mesos::TaskStatus {
        task_id: mesos::Id::new(&st.task_id),
        state,
        message: some(&st.message),
        source: some(&st.source),
        reason: some(&st.reason),
        data: (!st.data.is_empty()).then(|| mesos::base64_encode(&st.data)),
        agent_id: Some(mesos::Id::new(agent_id)),
        executor_id: some(&st.executor_id).map(mesos::Id::new),
        timestamp: (st.timestamp > 0.0).then_some(st.timestamp),
        uuid: (!st.uuid.is_empty()).then(|| mesos::base64_encode(&st.uuid)),
        healthy: st.healthy,
        unreachable_time: None,
        container_status: st
            .container_status
            .as_ref()
            .map(|c| Box::new(container_status_to_mesos(c))),
    })
}

/// The agent's container status -> Mesos' `ContainerStatus`.
pub fn container_status_to_mesos(c: &pb::ContainerStatus) -> mesos::ContainerStatus {
    let parent = (!c.parent_id.is_empty()).then(|| Box::new(mesos::ContainerId::new(&c.parent_id)));
    let ips: Vec<mesos::IpAddress> = c
        .ip_addresses
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .map(mesos::IpAddress::of)
        .collect();
    mesos::ContainerStatus {
        container_id: (!c.container_id.is_empty()).then(|| mesos::ContainerId {
            value: c.container_id.clone(),
            parent,
        }),
        executor_pid: c.executor_pid,
        network_infos: if ips.is_empty() {
            Vec::new()
        } else {
            vec![mesos::NetworkInfo {
                ip_addresses: ips,
                ..Default::default()
            }]
        },
    }
}

/// The inverse of [`container_status_to_mesos`].
pub fn container_status_from_mesos(c: &mesos::ContainerStatus) -> pb::ContainerStatus {
    let id = c.container_id.as_ref();
    pb::ContainerStatus {
        container_id: id.map(|i| i.value.clone()).unwrap_or_default(),
        parent_id: id
            .and_then(|i| i.parent.as_ref())
            .map(|p| p.value.clone())
            .unwrap_or_default(),
        executor_pid: c.executor_pid,
        ip_addresses: c
            .network_infos
            .iter()
            .flat_map(|n| &n.ip_addresses)
            .filter_map(|a| a.ip_address.clone())
            .collect(),
    }
}

/// The inverse of [`task_status_to_mesos`] (agent id dropped: the stream
/// says which agent it is).
pub fn task_status_from_mesos(st: &mesos::TaskStatus) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: st.task_id.value.clone(),
        state: st.state.name().to_string(),
        message: st.message.clone().unwrap_or_default(),
        source: st.source.clone().unwrap_or_default(),
        reason: st.reason.clone().unwrap_or_default(),
        executor_id: st
            .executor_id
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default(),
        timestamp: st.timestamp.unwrap_or_default(),
        uuid: st
            .uuid
            .as_deref()
            .and_then(mesos::base64_decode)
            .unwrap_or_default(),
        healthy: st.healthy,
        data: st
            .data
            .as_deref()
            .and_then(mesos::base64_decode)
            .unwrap_or_default(),
        container_status: st
            .container_status
            .as_deref()
            .map(container_status_from_mesos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_inventory() -> Inventory {
        Inventory {
            hostname: "node-1".into(),
            cpu: CpuInfo {
                logical: 16,
                cores: 8,
                sockets: 1,
                numa_nodes: 1,
                model: "AMD EPYC 9454".into(),
                vendor: "AuthenticAMD".into(),
                online: "0-15".into(),
            },
            memory: MemoryInfo {
                total_bytes: 64 << 30,
                physical_bytes: Some(64 << 30),
                available_bytes: 60 << 30,
                swap_total_bytes: 0,
                hugepages: vec![HugePages {
                    page_size_bytes: 2 << 20,
                    total: 16,
                    free: 16,
                }],
            },
            disks: vec![Disk {
                name: "nvme0n1".into(),
                size_bytes: 1 << 40,
                rotational: false,
                removable: false,
                model: Some("Samsung SSD".into()),
                serial: Some("S5XX".into()),
                wwn: Some("eui.0025".into()),
                vendor: None,
                transport: "nvme".into(),
                partitions: vec![Partition {
                    name: "nvme0n1p1".into(),
                    size_bytes: 512 << 20,
                    start_sector: 2048,
                }],
            }],
            nics: vec![Nic {
                name: "eth0".into(),
                index: 2,
                mac: Some("52:54:00:12:34:56".into()),
                mtu: 1500,
                oper_state: "up".into(),
                kind: None,
                addresses: vec![IpAddress {
                    address: "10.0.2.15".into(),
                    prefix_len: 24,
                }],
                driver: Some("virtio_net".into()),
                pci_address: Some("0000:00:03.0".into()),
                speed_mbps: Some(10000),
            }],
            accelerators: vec![PciDevice {
                address: "0000:17:00.0".into(),
                class: 0x030200,
                vendor_id: 0x10de,
                device_id: 0x2330,
                vendor_name: Some("NVIDIA".into()),
                driver: Some("nvidia".into()),
                numa_node: Some(0),
                kind: PciKind::Gpu,
            }],
            tpm: Some(TpmInfo {
                present: true,
                device: Some("/dev/tpmrm0".into()),
                family: Some("2.0".into()),
                level: Some(0),
                revision: Some("1.59".into()),
                manufacturer: Some("INTC".into()),
                vendor: Some("Intel".into()),
                firmware_version: Some("600.18.0.0".into()),
                ek: Some(EndorsementKey {
                    algorithm: "rsa2048".into(),
                    sha256: "ab".repeat(32),
                }),
                error: None,
            }),
        }
    }

    #[test]
    fn inventory_round_trips() {
        let inv = sample_inventory();
        assert_eq!(inventory_from_pb(&inventory_to_pb(&inv)).unwrap(), inv);
    }

    #[test]
    fn tpm_unknown_absent_and_failed_round_trip() {
        for tpm in [
            None,
            Some(TpmInfo::absent()),
            Some(TpmInfo {
                present: true,
                device: Some("/dev/tpm0".into()),
                error: Some("endorsement key: tpm error".into()),
                ..TpmInfo::default()
            }),
        ] {
            let inv = Inventory {
                tpm,
                ..sample_inventory()
            };
            assert_eq!(inventory_from_pb(&inventory_to_pb(&inv)).unwrap(), inv);
        }
    }

    #[test]
    fn resources_round_trip_and_default_role() {
        let rs = Resources(vec![
            Resource {
                name: "cpus".into(),
                role: "*".into(),
                value: Value::Scalar(4.0),
            },
            Resource {
                name: "ports".into(),
                role: "eng".into(),
                value: Value::Ranges(vec![Range {
                    begin: 31000,
                    end: 32000,
                }]),
            },
            Resource {
                name: "zones".into(),
                role: "*".into(),
                value: Value::Set(vec!["a".into(), "b".into()]),
            },
        ]);
        assert_eq!(resources_from_pb(&resources_to_pb(&rs)).unwrap(), rs);
        let mut unroled = resources_to_pb(&rs);
        unroled[0].role.clear();
        assert_eq!(resources_from_pb(&unroled).unwrap().0[0].role, "*");
    }

    #[test]
    fn attributes_round_trip() {
        let attrs = Attributes(vec![
            Attribute {
                name: "rack".into(),
                value: AttributeValue::Text("r1".into()),
            },
            Attribute {
                name: "level".into(),
                value: AttributeValue::Scalar(10.0),
            },
            Attribute {
                name: "keys".into(),
                value: AttributeValue::Ranges(vec![Range {
                    begin: 1000,
                    end: 1500,
                }]),
            },
        ]);
        assert_eq!(
            attributes_from_pb(&attributes_to_pb(&attrs)).unwrap(),
            attrs
        );
    }

    #[test]
    fn decoding_rejects_what_protobuf_allows() {
        let no_value = pb::Resource {
            name: "cpus".into(),
            role: "*".into(),
            value: None,
        };
        assert!(matches!(
            resource_from_pb(&no_value),
            Err(ConvertError::MissingValue { .. })
        ));
        let text = pb::Resource {
            name: "cpus".into(),
            role: "*".into(),
            value: Some(pb::Value {
                kind: Some(pb::value::Kind::Text("x".into())),
            }),
        };
        assert!(matches!(
            resource_from_pb(&text),
            Err(ConvertError::TextResource { .. })
        ));
        let mut inv = inventory_to_pb(&sample_inventory());
        inv.accelerators[0].vendor_id = 0x1_0000;
        assert!(matches!(
            inventory_from_pb(&inv),
            Err(ConvertError::PciIdRange { .. })
        ));
        let mut inv = inventory_to_pb(&sample_inventory());
        inv.accelerators[0].kind = "fpga".into();
        assert!(matches!(
            inventory_from_pb(&inv),
            Err(ConvertError::PciKind { .. })
        ));
    }

    #[test]
    fn task_status_round_trips_through_mesos_json() {
        let st = pb::TaskStatus {
            task_id: "t1".into(),
            state: "TASK_FAILED".into(),
            message: "Command exited with status 3".into(),
            source: "SOURCE_EXECUTOR".into(),
            reason: "REASON_COMMAND_EXECUTOR_FAILED".into(),
            executor_id: "t1".into(),
            timestamp: 1700000000.5,
            uuid: vec![7; 16],
            healthy: None,
            data: vec![],
            container_status: Some(pb::ContainerStatus {
                container_id: "c1".into(),
                parent_id: String::new(),
                executor_pid: Some(4242),
                ip_addresses: vec!["10.0.0.2".into()],
            }),
        };
        let m = task_status_to_mesos(&st, "a-S0").unwrap();
        assert_eq!(m.agent_id.as_ref().unwrap().value, "a-S0");
        assert_eq!(m.uuid.as_deref(), Some("BwcHBwcHBwcHBwcHBwcHBw=="));
        assert_eq!(
            serde_json::to_value(&m.container_status).unwrap(),
            serde_json::json!({"container_id": {"value": "c1"}, "executor_pid": 4242,
                "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": "10.0.0.2"}]}]})
        );
        assert_eq!(task_status_from_mesos(&m), st);
        let nested = pb::ContainerStatus {
            container_id: "child".into(),
            parent_id: "c1".into(),
            executor_pid: None,
            ip_addresses: vec![],
        };
        let back = container_status_from_mesos(&container_status_to_mesos(&nested));
        assert_eq!(back, nested);
        let bad = pb::TaskStatus {
            state: "TASK_NAPPING".into(),
            ..st.clone()
        };
        assert!(matches!(
            task_status_to_mesos(&bad, "a"),
            Err(ConvertError::TaskState { .. })
        ));
        let short = pb::TaskStatus {
            uuid: vec![1, 2],
            ..st
        };
        assert!(matches!(
            task_status_to_mesos(&short, "a"),
            Err(ConvertError::Uuid { .. })
        ));
    }
}
