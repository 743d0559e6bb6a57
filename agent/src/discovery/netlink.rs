//! The netlink side of NIC discovery: the live `RTM_GETLINK`/`RTM_GETADDR`
//! dumps over rtnetlink, and the fixture files that record them.
//!
//! # Fixture format
//!
//! `netlink/links.bin` and `netlink/addrs.bin` hold the replies of one dump
//! each, laid out as the kernel lays out a dump reply buffer: a sequence of
//! complete netlink messages (16-byte `struct nlmsghdr` in host byte order,
//! then the `ifinfomsg`/`ifaddrmsg` payload and its attributes), each padded
//! to a multiple of 4 bytes, with no trailing `NLMSG_DONE`. rtnetlink hands
//! out parsed messages, so a capture re-serializes them with
//! netlink-packet-route; attributes that crate does not know are kept as raw
//! NLAs and round-trip unchanged.

use std::fs;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_core::{NLM_F_MULTIPART, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;

use super::DiscoveryError;

pub(crate) const LINKS_FILE: &str = "netlink/links.bin";
pub(crate) const ADDRS_FILE: &str = "netlink/addrs.bin";

/// Dumps all links and all addresses (IPv4 and IPv6) of the current network
/// namespace. The connection lives on a task of the caller's tokio runtime
/// for the duration of the call.
pub async fn dump_live() -> Result<(Vec<LinkMessage>, Vec<AddressMessage>), DiscoveryError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| DiscoveryError::Netlink {
            what: "connection",
            reason: e.to_string(),
        })?;
    let task = tokio::spawn(connection);
    let links = handle.link().get().execute().try_collect::<Vec<_>>().await;
    let addrs = handle
        .address()
        .get()
        .execute()
        .try_collect::<Vec<_>>()
        .await;
    task.abort();
    let links = links.map_err(|e| DiscoveryError::Netlink {
        what: "link",
        reason: e.to_string(),
    })?;
    let addrs = addrs.map_err(|e| DiscoveryError::Netlink {
        what: "address",
        reason: e.to_string(),
    })?;
    Ok((links, addrs))
}

/// Serializes link messages as `RTM_NEWLINK` dump replies.
pub fn encode_links(links: &[LinkMessage]) -> Vec<u8> {
    encode(links.iter().cloned().map(RouteNetlinkMessage::NewLink))
}

/// Serializes address messages as `RTM_NEWADDR` dump replies.
pub fn encode_addrs(addrs: &[AddressMessage]) -> Vec<u8> {
    encode(addrs.iter().cloned().map(RouteNetlinkMessage::NewAddress))
}

fn encode(msgs: impl Iterator<Item = RouteNetlinkMessage>) -> Vec<u8> {
    let mut out = Vec::new();
    for inner in msgs {
        let mut msg = NetlinkMessage::from(inner);
        msg.header.flags = NLM_F_MULTIPART;
        msg.finalize();
        let start = out.len();
        out.resize(start + align4(msg.buffer_len()), 0);
        msg.serialize(&mut out[start..start + msg.buffer_len()]);
    }
    out
}

/// Reads a recorded link dump (see the module docs for the format).
pub fn read_links(path: &Path) -> Result<Vec<LinkMessage>, DiscoveryError> {
    let bytes = fs::read(path).map_err(|e| DiscoveryError::read(path, e))?;
    decode(&bytes, path, |m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(l),
        _ => None,
    })
}

/// Reads a recorded address dump (see the module docs for the format).
pub fn read_addrs(path: &Path) -> Result<Vec<AddressMessage>, DiscoveryError> {
    let bytes = fs::read(path).map_err(|e| DiscoveryError::read(path, e))?;
    decode(&bytes, path, |m| match m {
        RouteNetlinkMessage::NewAddress(a) => Some(a),
        _ => None,
    })
}

/// Splits `bytes` into netlink messages and keeps those `pick` accepts;
/// anything else (another message type, `NLMSG_DONE`) is an error, since a
/// fixture holding it was not written by [`encode`].
fn decode<T>(
    bytes: &[u8],
    path: &Path,
    pick: impl Fn(RouteNetlinkMessage) -> Option<T>,
) -> Result<Vec<T>, DiscoveryError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let bad =
            |reason: String| DiscoveryError::parse(path, format!("at byte {offset}: {reason}"));
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
            .map_err(|e| bad(e.to_string()))?;
        let len = msg.header.length as usize;
        if len < 16 {
            return Err(bad(format!("message length {len}")));
        }
        let NetlinkPayload::InnerMessage(inner) = msg.payload else {
            return Err(bad("not an rtnetlink message".into()));
        };
        out.push(pick(inner).ok_or_else(|| bad("unexpected message type".into()))?);
        offset += align4(len);
    }
    Ok(out)
}

const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::AddressAttribute;
    use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, State};

    fn sample_links() -> Vec<LinkMessage> {
        let mut a = LinkMessage::default();
        a.header.index = 2;
        a.attributes = vec![
            // 5 bytes: the message needs padding.
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(9000),
            LinkAttribute::OperState(State::Up),
        ];
        let mut b = LinkMessage::default();
        b.header.index = 7;
        b.attributes = vec![
            LinkAttribute::IfName("br-lab".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ];
        vec![a, b]
    }

    #[test]
    fn links_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.bin");
        let bytes = encode_links(&sample_links());
        assert_eq!(bytes.len() % 4, 0);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read_links(&path).unwrap(), sample_links());
    }

    #[test]
    fn addrs_round_trip() {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.index = 2;
        msg.header.prefix_len = 64;
        msg.attributes = vec![AddressAttribute::Address("fd00::2".parse().unwrap())];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addrs.bin");
        fs::write(&path, encode_addrs(std::slice::from_ref(&msg))).unwrap();
        assert_eq!(read_addrs(&path).unwrap(), [msg]);
        // An address file is not a link file.
        let err = read_links(&path).unwrap_err().to_string();
        assert!(
            err.contains("addrs.bin") && err.contains("unexpected message type"),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.bin");
        let bytes = encode_links(&sample_links());
        fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        let err = read_links(&path).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot parse") && err.contains("at byte"),
            "{err}"
        );
        assert!(read_links(&dir.path().join("missing.bin")).is_err());
    }
}
