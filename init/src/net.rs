//! Links, addresses and routes over rtnetlink: what init needs to take a
//! NIC from "driver bound" to "has its DHCP address and default route".

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(std::io::Error),
    #[error("netlink {what} on {link}: {reason}")]
    Netlink {
        what: &'static str,
        link: String,
        reason: String,
    },
}

/// A network link as init sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Lower-case `aa:bb:..`; None for links without an Ethernet address.
    pub mac: Option<String>,
    pub up: bool,
    pub carrier: bool,
}

impl Link {
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        let mac = self.mac.as_ref()?;
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(out)
    }
}

/// A netlink connection; the connection task runs on the caller's runtime.
#[derive(Clone)]
pub struct Net {
    handle: Handle,
}

impl Net {
    pub fn connect() -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        tokio::spawn(conn);
        Ok(Net { handle })
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::Netlink {
                what: "dump links",
                link: "*".into(),
                reason: e.to_string(),
            })?;
        Ok(msgs.iter().map(link_from).collect())
    }

    pub async fn set_up(&self, link: &Link) -> Result<(), NetError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).up().build())
            .execute()
            .await
            .map_err(|e| nl_err("set up", link, e))
    }

    pub async fn set_mtu(&self, link: &Link, mtu: u32) -> Result<(), NetError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).mtu(mtu).build())
            .execute()
            .await
            .map_err(|e| nl_err("set mtu", link, e))
    }

    /// Adds `addr/prefix` to `link`; an address already there is fine.
    pub async fn add_address(&self, link: &Link, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        match self
            .handle
            .address()
            .add(link.index, addr, prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_exists(&e) => Ok(()),
            Err(e) => Err(nl_err("add address", link, e)),
        }
    }

    /// Removes `addr/prefix` from `link`.
    pub async fn del_address(&self, link: &Link, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .set_address_filter(addr)
            .set_prefix_length_filter(prefix)
            .execute();
        while let Some(msg) = found
            .try_next()
            .await
            .map_err(|e| nl_err("find address", link, e))?
        {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| nl_err("delete address", link, e))?;
        }
        Ok(())
    }

    /// Global IPv4 addresses: (link index, address, prefix length).
    pub async fn ipv4_addresses(&self) -> Result<Vec<(u32, Ipv4Addr, u8)>, NetError> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::Netlink {
            what: "dump addresses",
            link: "*".into(),
            reason: e.to_string(),
        })?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.scope == AddressScope::Universe)
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(v4)) => {
                        Some((m.header.index, *v4, m.header.prefix_len))
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// Default route through `gateway` on `link`; one already there is fine.
    pub async fn add_default_route(&self, link: &Link, gateway: Ipv4Addr) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(link.index)
            .gateway(gateway)
            .build();
        match self.handle.route().add(route).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_exists(&e) => Ok(()),
            Err(e) => Err(nl_err("add default route", link, e)),
        }
    }
}

fn nl_err(what: &'static str, link: &Link, e: rtnetlink::Error) -> NetError {
    NetError::Netlink {
        what,
        link: link.name.clone(),
        reason: e.to_string(),
    }
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if m.code.map(|c| c.get()) == Some(-(rustix::io::Errno::EXIST.raw_os_error())))
}

fn link_from(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        mac: None,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp),
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) if a.len() == 6 => {
                link.mac = Some(
                    a.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            }
            LinkAttribute::OperState(State::Up) => link.carrier = true,
            _ => {}
        }
    }
    link
}

/// Whether `name` is a physical NIC: it has a device behind it in sysfs
/// (`/sys/class/net/<name>/device`), unlike lo, bridges and veths.
pub fn is_physical(sys: &Path, name: &str) -> bool {
    sys.join("class/net").join(name).join("device").exists()
}

/// The links to run DHCP on: physical ones with an Ethernet address, the
/// boot NIC alone when it is named and present, sorted by name.
pub fn dhcp_candidates(sys: &Path, links: &[Link], boot_mac: Option<&str>) -> Vec<Link> {
    let mut phys: Vec<Link> = links
        .iter()
        .filter(|l| l.mac.is_some() && is_physical(sys, &l.name))
        .cloned()
        .collect();
    phys.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(mac) = boot_mac
        && let Some(boot) = phys.iter().find(|l| l.mac.as_deref() == Some(mac))
    {
        return vec![boot.clone()];
    }
    phys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            mac: mac.map(str::to_string),
            up: false,
            carrier: false,
        }
    }

    #[test]
    fn candidates_are_physical_and_prefer_the_boot_nic() {
        let sys = tempfile::tempdir().unwrap();
        for n in ["eth0", "eth1"] {
            std::fs::create_dir_all(sys.path().join("class/net").join(n).join("device")).unwrap();
        }
        std::fs::create_dir_all(sys.path().join("class/net/br0")).unwrap();
        let links = [
            link(1, "lo", None),
            link(3, "eth1", Some("52:54:00:00:00:02")),
            link(2, "eth0", Some("52:54:00:00:00:01")),
            link(4, "br0", Some("52:54:00:00:00:09")),
        ];
        let all = dhcp_candidates(sys.path(), &links, None);
        assert_eq!(
            all.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["eth0", "eth1"]
        );
        let boot = dhcp_candidates(sys.path(), &links, Some("52:54:00:00:00:02"));
        assert_eq!(boot, [links[1].clone()]);
        // A boot MAC that is not here (another NIC booted) means all of them.
        assert_eq!(
            dhcp_candidates(sys.path(), &links, Some("52:54:00:ff:ff:ff")).len(),
            2
        );
        assert_eq!(links[1].mac_bytes(), Some([0x52, 0x54, 0, 0, 0, 2]));
        assert_eq!(links[0].mac_bytes(), None);
    }
}
