//! DHCPv4 client, the pure part: the messages a client sends (RFC 2131
//! DISCOVER, REQUEST for selecting, renewing and rebinding) and what a reply
//! means, over `dhcproto` messages. No sockets here; [`crate::lease`] moves
//! the bytes.
//!
//! ```text
//!  Selecting --OFFER--> Requesting --ACK--> Bound --T1--> Renewing --T2--> Rebinding
//!      ^                    |                 ^              |ACK             |ACK
//!      +-------NAK----------+                 +--------------+----------------+
//!      +-------------------------------- NAK or lease expired ---------------+
//! ```

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// What the client asks the server for.
const PARAMS: &[OptionCode] = &[
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::DomainName,
    OptionCode::InterfaceMtu,
    OptionCode::AddressLeaseTime,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];

/// Identifies this client to servers (option 60).
const VENDOR_CLASS: &[u8] = b"keel-init";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DhcpError {
    #[error("cannot decode a dhcp message: {0}")]
    Decode(String),
    #[error("cannot encode a dhcp message: {0}")]
    Encode(String),
}

/// An address lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub server: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub mtu: Option<u16>,
    /// Lease time; `u32::MAX` seconds is infinite.
    pub lease_time: Duration,
    /// When to renew (T1) and rebind (T2), from the start of the lease.
    pub renew_after: Duration,
    pub rebind_after: Duration,
}

/// The client's state machine for one interface.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    hostname: Option<String>,
    state: State,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Selecting,
    Requesting {
        offer: Lease,
    },
    Bound(Lease),
    /// Renewing (unicast to the server) or rebinding (broadcast).
    Renewing {
        lease: Lease,
        broadcast: bool,
    },
}

/// What to do with a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not for us, or nothing to do: keep waiting.
    Ignore,
    /// Send this REQUEST (after an OFFER).
    Send(Message),
    /// The server acknowledged: configure this lease.
    Bound(Lease),
    /// The server said no: start over with a DISCOVER.
    Restart { reason: String },
}

impl Client {
    pub fn new(mac: [u8; 6], xid: u32, hostname: Option<String>) -> Self {
        Client {
            mac,
            xid,
            hostname,
            state: State::Selecting,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    fn base(&self, ty: MessageType, ciaddr: Ipv4Addr, broadcast: bool) -> Message {
        let zero = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(self.xid, ciaddr, zero, zero, zero, &self.mac);
        if broadcast {
            // Ask for broadcast replies: we cannot receive unicast before we
            // have the address.
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(ty));
        let mut id = vec![1u8];
        id.extend_from_slice(&self.mac);
        opts.insert(DhcpOption::ClientIdentifier(id));
        opts.insert(DhcpOption::ParameterRequestList(PARAMS.to_vec()));
        opts.insert(DhcpOption::MaxMessageSize(1500));
        opts.insert(DhcpOption::ClassIdentifier(VENDOR_CLASS.to_vec()));
        if let Some(h) = &self.hostname {
            opts.insert(DhcpOption::Hostname(h.clone()));
        }
        m
    }

    /// Starts (or restarts) selecting: the DISCOVER to broadcast.
    pub fn discover(&mut self) -> Message {
        self.state = State::Selecting;
        self.base(MessageType::Discover, Ipv4Addr::UNSPECIFIED, true)
    }

    /// The REQUEST that renews (unicast to the server, `broadcast == false`)
    /// or rebinds (broadcast) the bound lease. None unless bound.
    pub fn renew(&mut self, broadcast: bool) -> Option<Message> {
        let lease = match &self.state {
            State::Bound(l) | State::Renewing { lease: l, .. } => l.clone(),
            _ => return None,
        };
        let m = self.base(MessageType::Request, lease.address, false);
        self.state = State::Renewing { lease, broadcast };
        Some(m)
    }

    /// Feeds a reply to the state machine.
    pub fn handle(&mut self, reply: &Message) -> Step {
        if reply.opcode() != Opcode::BootReply
            || reply.xid() != self.xid
            || reply.chaddr().get(..6) != Some(&self.mac[..])
        {
            return Step::Ignore;
        }
        let ty = reply.opts().msg_type();
        match (&self.state, ty) {
            (State::Selecting, Some(MessageType::Offer)) => {
                let Some(offer) = lease_from(reply) else {
                    return Step::Ignore;
                };
                let mut req = self.base(MessageType::Request, Ipv4Addr::UNSPECIFIED, true);
                req.opts_mut()
                    .insert(DhcpOption::RequestedIpAddress(offer.address));
                req.opts_mut()
                    .insert(DhcpOption::ServerIdentifier(offer.server));
                self.state = State::Requesting { offer };
                Step::Send(req)
            }
            (State::Requesting { offer }, Some(MessageType::Ack)) => match lease_from(reply) {
                Some(lease) if lease.address == offer.address => {
                    self.state = State::Bound(lease.clone());
                    Step::Bound(lease)
                }
                _ => Step::Ignore,
            },
            (State::Renewing { lease: old, .. }, Some(MessageType::Ack)) => {
                match lease_from(reply) {
                    Some(lease) if lease.address == old.address => {
                        self.state = State::Bound(lease.clone());
                        Step::Bound(lease)
                    }
                    _ => Step::Ignore,
                }
            }
            (State::Requesting { .. } | State::Renewing { .. }, Some(MessageType::Nak)) => {
                let reason = match reply.opts().get(OptionCode::Message) {
                    Some(DhcpOption::Message(m)) => m.clone(),
                    _ => "no reason given".to_string(),
                };
                self.state = State::Selecting;
                Step::Restart { reason }
            }
            _ => Step::Ignore,
        }
    }
}

/// The lease an OFFER or ACK describes; None without an address or server.
pub fn lease_from(m: &Message) -> Option<Lease> {
    let address = m.yiaddr();
    if address.is_unspecified() {
        return None;
    }
    let o = m.opts();
    let server = match o.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ if !m.siaddr().is_unspecified() => m.siaddr(),
        _ => return None,
    };
    let prefix_len = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).leading_ones() as u8,
        // RFC 2131 leaves it to the client; a class C is the usual guess.
        _ => 24,
    };
    let secs = |code| match o.get(code) {
        Some(DhcpOption::AddressLeaseTime(s))
        | Some(DhcpOption::Renewal(s))
        | Some(DhcpOption::Rebinding(s)) => Some(*s),
        _ => None,
    };
    let lease_secs = secs(OptionCode::AddressLeaseTime).unwrap_or(3600);
    let renew = secs(OptionCode::Renewal).unwrap_or(lease_secs / 2);
    let rebind = secs(OptionCode::Rebinding).unwrap_or(lease_secs / 8 * 7);
    Some(Lease {
        address,
        prefix_len,
        server,
        router: match o.get(OptionCode::Router) {
            Some(DhcpOption::Router(r)) => r.first().copied(),
            _ => None,
        },
        dns: match o.get(OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(d)) => d.clone(),
            _ => Vec::new(),
        },
        domain: match o.get(OptionCode::DomainName) {
            Some(DhcpOption::DomainName(d)) => Some(d.clone()),
            _ => None,
        },
        hostname: match o.get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(h.clone()),
            _ => None,
        },
        mtu: match o.get(OptionCode::InterfaceMtu) {
            Some(DhcpOption::InterfaceMtu(m)) => Some(*m),
            _ => None,
        },
        lease_time: Duration::from_secs(lease_secs.into()),
        renew_after: Duration::from_secs(renew.into()),
        rebind_after: Duration::from_secs(rebind.into()),
    })
}

pub fn encode(m: &Message) -> Result<Vec<u8>, DhcpError> {
    let mut buf = Vec::with_capacity(576);
    m.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| DhcpError::Encode(e.to_string()))?;
    Ok(buf)
}

pub fn decode(bytes: &[u8]) -> Result<Message, DhcpError> {
    Message::decode(&mut Decoder::new(bytes)).map_err(|e| DhcpError::Decode(e.to_string()))
}

/// A server's reply to `req`, for the tests.
#[cfg(test)]
fn reply(req: &Message, ty: MessageType, yiaddr: Ipv4Addr) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(req.xid(), zero, yiaddr, zero, zero, &req.chaddr()[..6]);
    m.set_opcode(Opcode::BootReply);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(ty));
    o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)));
    o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]));
    o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
        10, 0, 2, 3,
    )]));
    o.insert(DhcpOption::AddressLeaseTime(86400));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    /// Encodes and decodes, as the wire would.
    fn wire(m: &Message) -> Message {
        decode(&encode(m).unwrap()).unwrap()
    }

    #[test]
    fn discover_offer_request_ack() {
        let mut c = Client::new(MAC, 7, Some("node-1".into()));
        let d = wire(&c.discover());
        assert_eq!(d.opts().msg_type(), Some(MessageType::Discover));
        assert!(d.flags().broadcast());
        assert_eq!(d.chaddr(), &MAC);
        assert!(
            matches!(d.opts().get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "node-1")
        );

        let step = c.handle(&wire(&reply(&d, MessageType::Offer, IP)));
        let Step::Send(req) = step else {
            panic!("{step:?}")
        };
        let req = wire(&req);
        assert_eq!(req.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            req.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(IP))
        );
        assert_eq!(
            req.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)))
        );

        let Step::Bound(lease) = c.handle(&wire(&reply(&req, MessageType::Ack, IP))) else {
            panic!()
        };
        assert_eq!(lease.address, IP);
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(lease.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(lease.lease_time, Duration::from_secs(86400));
        assert_eq!(lease.renew_after, Duration::from_secs(43200));
        assert_eq!(lease.rebind_after, Duration::from_secs(75600));
        assert_eq!(c.state(), &State::Bound(lease));
    }

    #[test]
    fn replies_for_someone_else_are_ignored() {
        let mut c = Client::new(MAC, 7, None);
        let d = c.discover();
        let mut other = reply(&d, MessageType::Offer, IP);
        other.set_xid(8);
        assert_eq!(c.handle(&other), Step::Ignore);
        let mut other = reply(&d, MessageType::Offer, IP);
        other.set_chaddr(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(c.handle(&other), Step::Ignore);
        // An ACK while selecting is not ours to take.
        assert_eq!(c.handle(&reply(&d, MessageType::Ack, IP)), Step::Ignore);
        // Nor is our own request echoed back.
        assert_eq!(c.handle(&d), Step::Ignore);
    }

    #[test]
    fn a_nak_restarts_with_its_reason() {
        let mut c = Client::new(MAC, 7, None);
        let d = c.discover();
        let Step::Send(req) = c.handle(&reply(&d, MessageType::Offer, IP)) else {
            panic!()
        };
        let mut nak = reply(&req, MessageType::Nak, Ipv4Addr::UNSPECIFIED);
        nak.opts_mut()
            .insert(DhcpOption::Message("address in use".into()));
        assert_eq!(
            c.handle(&nak),
            Step::Restart {
                reason: "address in use".into()
            }
        );
        assert_eq!(c.state(), &State::Selecting);
    }

    #[test]
    fn renewing_keeps_the_address() {
        let mut c = Client::new(MAC, 7, None);
        assert!(c.renew(false).is_none(), "nothing to renew yet");
        let d = c.discover();
        let Step::Send(req) = c.handle(&reply(&d, MessageType::Offer, IP)) else {
            panic!()
        };
        let Step::Bound(_) = c.handle(&reply(&req, MessageType::Ack, IP)) else {
            panic!()
        };
        let renew = wire(&c.renew(false).unwrap());
        assert_eq!(renew.ciaddr(), IP);
        assert!(!renew.flags().broadcast());
        assert!(renew.opts().get(OptionCode::RequestedIpAddress).is_none());
        let Step::Bound(l) = c.handle(&reply(&renew, MessageType::Ack, IP)) else {
            panic!()
        };
        assert_eq!(l.address, IP);
        // An ACK for another address while renewing is not a renewal.
        c.renew(true).unwrap();
        assert_eq!(
            c.handle(&reply(
                &renew,
                MessageType::Ack,
                Ipv4Addr::new(10, 0, 2, 16)
            )),
            Step::Ignore
        );
    }

    #[test]
    fn missing_options_get_rfc_defaults() {
        let d = Client::new(MAC, 1, None).discover();
        let mut m = reply(&d, MessageType::Offer, IP);
        m.opts_mut().remove(OptionCode::SubnetMask);
        m.opts_mut().remove(OptionCode::AddressLeaseTime);
        m.opts_mut()
            .insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 240, 0)));
        let l = lease_from(&m).unwrap();
        assert_eq!(l.prefix_len, 20);
        assert_eq!(l.lease_time, Duration::from_secs(3600));
        m.opts_mut().remove(OptionCode::ServerIdentifier);
        assert!(lease_from(&m).is_none());
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode(&[1, 2, 3]).is_err());
    }
}
