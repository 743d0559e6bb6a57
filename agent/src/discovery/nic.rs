//! Network interfaces: parsed from rtnetlink link and address messages (pure,
//! see [`from_messages`]), then enriched from `sys/class/net/<name>/` (see
//! [`enrich`]).
//!
//! From `RTM_NEWLINK`: name (`IFLA_IFNAME`), index, MAC (`IFLA_ADDRESS`, `None`
//! when absent or all zero), MTU, operational state (`IFLA_OPERSTATE`, lower
//! case as in sysfs `operstate`), kind (`IFLA_LINKINFO`/`IFLA_INFO_KIND`, or
//! `loopback` for `ARPHRD_LOOPBACK`). From `RTM_NEWADDR`: the addresses of
//! each link with their prefix length (`IFA_LOCAL`, else `IFA_ADDRESS`).

use std::path::Path;

use keel_api::inventory::{IpAddress, Nic};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkLayerType, LinkMessage, State};

use super::sysfs::{attr, is_pci_address, link_basename, resolve};

pub(crate) const NET_DIR: &str = "sys/class/net";

/// Builds one [`Nic`] per link message (sorted by index), with the addresses
/// whose `ifa_index` matches, in dump order. Sysfs fields stay `None`.
pub fn from_messages(links: &[LinkMessage], addrs: &[AddressMessage]) -> Vec<Nic> {
    let mut nics: Vec<Nic> = links.iter().map(link_to_nic).collect();
    nics.sort_by_key(|n| n.index);
    for msg in addrs {
        let Some(nic) = nics.iter_mut().find(|n| n.index == msg.header.index) else {
            continue;
        };
        if let Some(address) = address_of(msg) {
            nic.addresses.push(IpAddress {
                address,
                prefix_len: u32::from(msg.header.prefix_len),
            });
        }
    }
    nics
}

fn link_to_nic(msg: &LinkMessage) -> Nic {
    let mut nic = Nic {
        index: msg.header.index,
        oper_state: "unknown".to_string(),
        ..Nic::default()
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => nic.name = name.clone(),
            LinkAttribute::Address(bytes) => nic.mac = format_mac(bytes),
            LinkAttribute::Mtu(mtu) => nic.mtu = *mtu,
            LinkAttribute::OperState(state) => nic.oper_state = oper_state(*state),
            LinkAttribute::LinkInfo(infos) => {
                nic.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    if msg.header.link_layer_type == LinkLayerType::Loopback {
        nic.kind = Some("loopback".to_string());
    }
    nic
}

/// `IFA_LOCAL` is the interface's own address on point-to-point links, where
/// `IFA_ADDRESS` is the peer; elsewhere both agree, and IPv6 sends only the
/// latter.
fn address_of(msg: &AddressMessage) -> Option<String> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(ip),
        _ => None,
    });
    local.or(address).map(ToString::to_string)
}

/// Lower-case hex bytes joined by `:`; `None` for an empty or all-zero address.
pub fn format_mac(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(hex.join(":"))
}

/// The RFC 2863 state as sysfs `operstate` spells it.
pub fn oper_state(state: State) -> String {
    match state {
        State::Unknown => "unknown".to_string(),
        State::NotPresent => "notpresent".to_string(),
        State::Down => "down".to_string(),
        State::LowerLayerDown => "lowerlayerdown".to_string(),
        State::Testing => "testing".to_string(),
        State::Dormant => "dormant".to_string(),
        State::Up => "up".to_string(),
        other => other.to_string().to_lowercase(),
    }
}

/// Fills the sysfs fields of `nic` from `root/sys/class/net/<name>/`:
///
/// - driver: basename of the `device/driver` symlink;
/// - PCI address: the resolved `device` path's last component when that is a
///   PCI address, or its parent's for virtio devices (`.../0000:00:03.0/virtio2`);
/// - speed: `speed` in Mb/s; unreadable (EINVAL on down links), missing or
///   negative (`-1`, unknown) gives `None`.
pub fn enrich(root: &Path, nic: &mut Nic) {
    // A name from netlink with a `/` or `..` would escape the tree.
    if nic.name.is_empty() || nic.name.contains('/') || nic.name == "." || nic.name == ".." {
        return;
    }
    let dir = root.join(NET_DIR).join(&nic.name);
    nic.driver = link_basename(&dir.join("device/driver"));
    nic.pci_address = resolve(root, &dir.join("device")).and_then(|p| pci_address_of(&p));
    nic.speed_mbps = attr(&dir.join("speed")).and_then(|s| s.parse::<u32>().ok());
}

/// The PCI address of a resolved device path, e.g.
/// `sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0` -> `0000:02:00.0`.
fn pci_address_of(device: &Path) -> Option<String> {
    let last = device.file_name()?.to_string_lossy();
    if is_pci_address(&last) {
        return Some(last.into_owned());
    }
    if super::cpu::is_numbered(&last, "virtio") {
        let parent = device.parent()?.file_name()?.to_string_lossy();
        return is_pci_address(&parent).then(|| parent.into_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::link::InfoKind;
    use std::fs;
    use std::net::IpAddr;

    fn link(index: u32, name: &str, attrs: Vec<LinkAttribute>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.link_layer_type = LinkLayerType::Ether;
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        msg.attributes.extend(attrs);
        msg
    }

    fn addr(index: u32, prefix: u8, attrs: Vec<AddressAttribute>) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.attributes = attrs;
        msg
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn links_and_addresses() {
        let mut lo = link(
            1,
            "lo",
            vec![
                LinkAttribute::Address(vec![0; 6]),
                LinkAttribute::Mtu(65536),
            ],
        );
        lo.header.link_layer_type = LinkLayerType::Loopback;
        let eth = link(
            2,
            "eth0",
            vec![
                LinkAttribute::Address(vec![0x52, 0x54, 0, 0x12, 0x34, 0xAB]),
                LinkAttribute::Mtu(1500),
                LinkAttribute::OperState(State::Up),
            ],
        );
        let veth = link(
            3,
            "veth0",
            vec![
                LinkAttribute::OperState(State::LowerLayerDown),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            ],
        );
        let addrs = [
            addr(
                2,
                24,
                vec![
                    AddressAttribute::Local(ip("10.0.2.15")),
                    AddressAttribute::Address(ip("10.0.2.15")),
                ],
            ),
            addr(1, 8, vec![AddressAttribute::Local(ip("127.0.0.1"))]),
            // Point-to-point: IFA_ADDRESS is the peer.
            addr(
                3,
                32,
                vec![
                    AddressAttribute::Address(ip("10.9.9.2")),
                    AddressAttribute::Local(ip("10.9.9.1")),
                ],
            ),
            addr(
                2,
                64,
                vec![AddressAttribute::Address(ip("fe80::5054:ff:fe12:34ab"))],
            ),
            addr(9, 8, vec![AddressAttribute::Local(ip("10.1.1.1"))]),
        ];
        let nics = from_messages(&[veth, eth, lo], &addrs);
        let names: Vec<_> = nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "veth0"]);
        assert_eq!(nics[0].kind.as_deref(), Some("loopback"));
        assert_eq!(nics[0].mac, None);
        assert_eq!(nics[0].oper_state, "unknown");
        assert_eq!(nics[1].mac.as_deref(), Some("52:54:00:12:34:ab"));
        assert_eq!(
            (
                nics[1].mtu,
                nics[1].oper_state.as_str(),
                nics[1].kind.as_deref()
            ),
            (1500, "up", None)
        );
        let eth_addrs: Vec<_> = nics[1]
            .addresses
            .iter()
            .map(|a| (a.address.as_str(), a.prefix_len))
            .collect();
        assert_eq!(
            eth_addrs,
            [("10.0.2.15", 24), ("fe80::5054:ff:fe12:34ab", 64)]
        );
        assert_eq!(nics[2].kind.as_deref(), Some("veth"));
        assert_eq!(nics[2].oper_state, "lowerlayerdown");
        assert_eq!(nics[2].addresses[0].address, "10.9.9.1");
    }

    #[test]
    fn macs_and_states() {
        assert_eq!(format_mac(&[]), None);
        assert_eq!(format_mac(&[0, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            format_mac(&[0xde, 0xad, 0xbe, 0xef, 0, 1]).as_deref(),
            Some("de:ad:be:ef:00:01")
        );
        assert_eq!(oper_state(State::Dormant), "dormant");
        assert_eq!(oper_state(State::NotPresent), "notpresent");
    }

    #[test]
    fn sysfs_enrichment() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let sys = r.join("sys");
        let pci = "devices/pci0000:00/0000:00:03.0";
        fs::create_dir_all(sys.join(pci).join("virtio1/net/eth0")).unwrap();
        fs::create_dir_all(sys.join("devices/pci0000:00/0000:00:1c.0/0000:02:00.0/net/eth1"))
            .unwrap();
        fs::create_dir_all(sys.join("devices/virtual/net/lo")).unwrap();
        fs::create_dir_all(sys.join("class/net")).unwrap();
        let ln = |target: &str, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
        ln(
            &format!("../../{pci}/virtio1/net/eth0"),
            &sys.join("class/net/eth0"),
        );
        ln(
            "../../../virtio1",
            &sys.join(pci).join("virtio1/net/eth0/device"),
        );
        ln(
            "../../../bus/virtio/drivers/virtio_net",
            &sys.join(pci).join("virtio1/driver"),
        );
        fs::write(sys.join(pci).join("virtio1/net/eth0/speed"), "-1\n").unwrap();
        let e1 = "devices/pci0000:00/0000:00:1c.0/0000:02:00.0";
        ln(&format!("../../{e1}/net/eth1"), &sys.join("class/net/eth1"));
        ln(
            "../../../0000:02:00.0",
            &sys.join(e1).join("net/eth1/device"),
        );
        ln(
            "../../../../bus/pci/drivers/e1000e",
            &sys.join(e1).join("driver"),
        );
        fs::write(sys.join(e1).join("net/eth1/speed"), "1000\n").unwrap();
        ln("../../devices/virtual/net/lo", &sys.join("class/net/lo"));

        let mut nics: Vec<Nic> = ["eth0", "eth1", "lo", "../x", "gone"]
            .iter()
            .map(|n| Nic {
                name: n.to_string(),
                ..Nic::default()
            })
            .collect();
        for n in &mut nics {
            enrich(r, n);
        }
        let got: Vec<_> = nics
            .iter()
            .map(|n| (n.driver.as_deref(), n.pci_address.as_deref(), n.speed_mbps))
            .collect();
        assert_eq!(
            got,
            [
                (Some("virtio_net"), Some("0000:00:03.0"), None),
                (Some("e1000e"), Some("0000:02:00.0"), Some(1000)),
                (None, None, None),
                (None, None, None),
                (None, None, None),
            ]
        );
    }
}
