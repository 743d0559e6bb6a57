//! DHCP on the wire: a UDP socket on port 68 bound to one interface
//! (SO_BINDTODEVICE, SO_BROADCAST), which can send and receive the
//! broadcast exchange before the interface has an address. The protocol
//! decisions are [`crate::dhcp`]'s.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dhcproto::v4::Message;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};

use crate::dhcp::{Client, DhcpError, Lease, Step, decode, encode};

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("dhcp socket on {iface}: {source}")]
    Socket {
        iface: String,
        source: std::io::Error,
    },
    #[error("dhcp on {iface}: {source}")]
    Protocol { iface: String, source: DhcpError },
    #[error("lease of {address} on {iface} expired without a renewal")]
    Expired { iface: String, address: Ipv4Addr },
}

/// A DHCP client socket on one interface.
pub struct DhcpSocket {
    iface: String,
    sock: UdpSocket,
}

impl DhcpSocket {
    pub fn bind(iface: &str) -> Result<Self, LeaseError> {
        let err = |source| LeaseError::Socket {
            iface: iface.to_string(),
            source,
        };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        s.set_broadcast(true).map_err(err)?;
        s.bind_device(Some(iface.as_bytes())).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT).into())
            .map_err(err)?;
        let sock = UdpSocket::from_std(s.into()).map_err(err)?;
        Ok(DhcpSocket {
            iface: iface.to_string(),
            sock,
        })
    }

    async fn send(&self, m: &Message, to: Ipv4Addr) -> Result<(), LeaseError> {
        let bytes = encode(m).map_err(|source| LeaseError::Protocol {
            iface: self.iface.clone(),
            source,
        })?;
        self.sock
            .send_to(&bytes, SocketAddrV4::new(to, SERVER_PORT))
            .await
            .map_err(|source| LeaseError::Socket {
                iface: self.iface.clone(),
                source,
            })?;
        Ok(())
    }

    /// Feeds replies to `client` until it decides something other than
    /// "ignore", or `deadline` passes (None).
    async fn exchange(
        &self,
        client: &mut Client,
        deadline: Instant,
    ) -> Result<Option<Step>, LeaseError> {
        let mut buf = vec![0u8; 1500];
        loop {
            let n = match timeout_at(deadline, self.sock.recv(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Err(source)) => {
                    return Err(LeaseError::Socket {
                        iface: self.iface.clone(),
                        source,
                    });
                }
                Ok(Ok(n)) => n,
            };
            let Ok(reply) = decode(&buf[..n]) else {
                continue;
            };
            match client.handle(&reply) {
                Step::Ignore => continue,
                step => return Ok(Some(step)),
            }
        }
    }
}

/// Retransmission delays: 2, 4, 8, 16, 16... seconds, each +-1 s (RFC 2131
/// 4.1 suggests 4 s doubling; shorter first waits make boots faster).
pub fn retransmit_delay(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.saturating_add(1)).min(16);
    Duration::from_millis(base * 1000 - 1000 + fastrand::u64(0..2000))
}

/// Gets a lease on `iface`, retrying forever. `on_retry` hears each failed
/// round (attempt number, what happened) for the console.
pub async fn acquire(
    sock: &DhcpSocket,
    client: &mut Client,
    mut on_retry: impl FnMut(u32, &str),
) -> Result<Lease, LeaseError> {
    let mut attempt = 0u32;
    loop {
        let discover = client.discover();
        sock.send(&discover, Ipv4Addr::BROADCAST).await?;
        let deadline = Instant::now() + retransmit_delay(attempt);
        match sock.exchange(client, deadline).await? {
            Some(Step::Send(request)) => {
                // The offer came; request it, resending while no answer.
                for _ in 0..3 {
                    sock.send(&request, Ipv4Addr::BROADCAST).await?;
                    let deadline = Instant::now() + Duration::from_secs(3);
                    match sock.exchange(client, deadline).await? {
                        Some(Step::Bound(lease)) => return Ok(lease),
                        Some(Step::Restart { reason }) => {
                            on_retry(attempt, &format!("server refused the request: {reason}"));
                            break;
                        }
                        _ => {}
                    }
                }
            }
            Some(Step::Bound(lease)) => return Ok(lease),
            Some(Step::Restart { reason }) => on_retry(attempt, &reason),
            None => on_retry(attempt, "no offer"),
            Some(Step::Ignore) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

/// Keeps `lease` (bound at `bound_at`): renews at T1 by unicast, rebinds at
/// T2 by broadcast, and returns the renewed lease, or an error once it has
/// expired. Infinite leases never return.
pub async fn maintain(
    sock: &DhcpSocket,
    client: &mut Client,
    lease: &Lease,
    bound_at: Instant,
) -> Result<Lease, LeaseError> {
    if lease.lease_time.as_secs() >= u64::from(u32::MAX) {
        std::future::pending::<()>().await;
    }
    let expiry = bound_at + lease.lease_time;
    let rebind_at = bound_at + lease.rebind_after;
    let mut next = bound_at + lease.renew_after;
    loop {
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        if now >= expiry {
            return Err(LeaseError::Expired {
                iface: sock.iface.clone(),
                address: lease.address,
            });
        }
        let broadcast = now >= rebind_at;
        if let Some(req) = client.renew(broadcast) {
            let to = if broadcast {
                Ipv4Addr::BROADCAST
            } else {
                lease.server
            };
            sock.send(&req, to).await?;
            let deadline = (now + Duration::from_secs(10)).min(expiry);
            if let Some(Step::Bound(renewed)) = sock.exchange(client, deadline).await? {
                return Ok(renewed);
            }
        }
        // RFC 2131 4.4.5: wait half the time left to T2 (or expiry), at
        // least a minute.
        let until = if now < rebind_at { rebind_at } else { expiry };
        let wait = until
            .saturating_duration_since(Instant::now())
            .div_f32(2.0)
            .max(Duration::from_secs(60));
        next = (Instant::now() + wait).min(expiry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_back_off_to_sixteen_seconds() {
        for _ in 0..50 {
            let d0 = retransmit_delay(0);
            assert!(
                d0 >= Duration::from_secs(1) && d0 < Duration::from_secs(3),
                "{d0:?}"
            );
            let d3 = retransmit_delay(3);
            assert!(
                d3 >= Duration::from_secs(15) && d3 < Duration::from_secs(17),
                "{d3:?}"
            );
            assert!(retransmit_delay(40) < Duration::from_secs(17));
        }
    }
}
