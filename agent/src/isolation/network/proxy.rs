//! Host ports forwarded to containers, in userspace, so no
//! iptables/nftables is needed on the appliance; restarted for adopted
//! containers after an agent restart.
//!
//! - TCP: a listener on the host port (all addresses) per mapping, each
//!   connection spliced to the container's address.
//! - UDP: a socket on the host port per mapping. Each client address gets a
//!   **flow**: its own socket connected to the container, so the container
//!   sees one peer per client and its replies go back to that client from
//!   the host port. A flow ends after [`UDP_IDLE`] without a datagram
//!   either way; at most [`UDP_MAX_FLOWS`] per mapping (datagrams of further
//!   clients are dropped until one ends).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{NetworkError, PortMapping, Protocol};

/// How long a UDP flow lives without traffic (Linux conntrack keeps an
/// answered UDP flow 120 s, an unanswered one 30 s).
pub const UDP_IDLE: Duration = Duration::from_secs(60);
/// UDP flows per mapping, each holding one socket.
pub const UDP_MAX_FLOWS: usize = 1024;

#[derive(Clone)]
pub struct PortProxies {
    running: Arc<Mutex<HashMap<String, Vec<JoinHandle<()>>>>>,
    udp_idle: Duration,
    /// Live UDP flows, all containers together.
    udp_flows: Arc<AtomicUsize>,
}

impl Default for PortProxies {
    fn default() -> Self {
        Self::with_udp_idle(UDP_IDLE)
    }
}

fn port_err(port: u16) -> impl Fn(std::io::Error) -> NetworkError {
    move |e| NetworkError::Port {
        port,
        reason: e.to_string(),
    }
}

fn listen(port: u16) -> Result<TcpListener, NetworkError> {
    let err = port_err(port);
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(&err)?;
    std_listener.set_nonblocking(true).map_err(&err)?;
    TcpListener::from_std(std_listener).map_err(err)
}

fn bind_udp(port: u16) -> Result<UdpSocket, NetworkError> {
    let err = port_err(port);
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(&err)?;
    socket.set_nonblocking(true).map_err(&err)?;
    UdpSocket::from_std(socket).map_err(err)
}

async fn forward(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            match TcpStream::connect(to).await {
                Ok(mut outbound) => {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::debug!(%to, error = %e, "port forward: container refused"),
            }
        });
    }
}

/// One UDP client's flow: a socket connected to the container and the
/// task relaying the container's replies (aborted with the flow).
struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
    replies: JoinHandle<()>,
}

/// Counts a live flow while its relay task lives (ended or aborted).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Flow {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

/// Relays the container's datagrams on `upstream` to `client` through the
/// host port's socket until the flow has been idle for `idle`.
async fn relay_replies(
    host: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<Mutex<Instant>>,
    idle: Duration,
    _counted: Counted,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let deadline = *last.lock().unwrap_or_else(|e| e.into_inner()) + idle;
        tokio::select! {
            got = upstream.recv(&mut buf) => match got {
                Ok(n) => {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                    let _ = host.send_to(&buf[..n], client).await;
                }
                // An ICMP port unreachable from the container: nothing
                // listens there yet; the flow stays.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::debug!(%client, error = %e, "udp forward: flow ended");
                    return;
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                let last = *last.lock().unwrap_or_else(|e| e.into_inner());
                if Instant::now() >= last + idle {
                    return;
                }
            }
        }
    }
}

async fn forward_udp(host: UdpSocket, to: SocketAddr, idle: Duration, count: Arc<AtomicUsize>) {
    let host = Arc::new(host);
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut sweep = tokio::time::interval(idle);
    loop {
        let received = tokio::select! {
            r = host.recv_from(&mut buf) => r,
            _ = sweep.tick() => {
                // Ended flows give their sockets back.
                flows.retain(|_, f| !f.replies.is_finished());
                continue;
            }
        };
        let Ok((n, client)) = received else {
            continue;
        };
        flows.retain(|_, f| !f.replies.is_finished());
        if !flows.contains_key(&client) {
            if flows.len() >= UDP_MAX_FLOWS {
                tracing::debug!(%client, %to, "udp forward: too many flows, datagram dropped");
                continue;
            }
            let upstream = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%to, error = %e, "udp forward: no socket for a new flow");
                    continue;
                }
            };
            if let Err(e) = upstream.connect(to).await {
                tracing::debug!(%to, error = %e, "udp forward: cannot reach the container");
                continue;
            }
            let upstream = Arc::new(upstream);
            let last = Arc::new(Mutex::new(Instant::now()));
            let replies = tokio::spawn(relay_replies(
                host.clone(),
                upstream.clone(),
                client,
                last.clone(),
                idle,
                Counted::new(&count),
            ));
            let flow = Flow {
                upstream,
                last,
                replies,
            };
            flows.insert(client, flow);
        }
        if let Some(flow) = flows.get(&client) {
            flow.touch();
            if let Err(e) = flow.upstream.send(&buf[..n]).await {
                tracing::debug!(%client, %to, error = %e, "udp forward: datagram not sent");
            }
        }
    }
}

impl PortProxies {
    /// Proxies whose UDP flows end after `idle` without traffic.
    pub fn with_udp_idle(idle: Duration) -> Self {
        PortProxies {
            running: Arc::default(),
            udp_idle: idle,
            udp_flows: Arc::default(),
        }
    }

    /// UDP flows alive now, every container together.
    pub fn udp_flows(&self) -> usize {
        self.udp_flows.load(Ordering::Relaxed)
    }

    /// Starts forwarding `mappings` to `ip` (no-op if already running for
    /// `container`). Every host port is bound before this returns, so a
    /// port taken by someone else fails the call.
    pub fn start(
        &self,
        container: &str,
        ip: Ipv4Addr,
        mappings: &[PortMapping],
    ) -> Result<(), NetworkError> {
        enum Bound {
            Tcp(TcpListener),
            Udp(UdpSocket),
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(container) || mappings.is_empty() {
            return Ok(());
        }
        let bound = mappings
            .iter()
            .map(|m| {
                let socket = match m.protocol {
                    Protocol::Tcp => Bound::Tcp(listen(m.host_port)?),
                    Protocol::Udp => Bound::Udp(bind_udp(m.host_port)?),
                };
                Ok((socket, SocketAddr::from((ip, m.container_port))))
            })
            .collect::<Result<Vec<_>, NetworkError>>()?;
        let tasks = bound
            .into_iter()
            .map(|(socket, to)| match socket {
                Bound::Tcp(l) => tokio::spawn(forward(l, to)),
                Bound::Udp(s) => {
                    let count = self.udp_flows.clone();
                    tokio::spawn(forward_udp(s, to, self.udp_idle, count))
                }
            })
            .collect();
        running.insert(container.to_string(), tasks);
        Ok(())
    }

    /// Stops forwarding to `container` (its listeners, sockets and flows
    /// close).
    pub fn stop(&self, container: &str) {
        let tasks = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container);
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_reach_the_target_until_stopped() {
        // The "container": an echo server on loopback.
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_port = target.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = target.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let _ = s.write_all(&buf[..n]).await;
                });
            }
        });
        let host_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxies = PortProxies::default();
        let m = [PortMapping {
            host_port,
            container_port: target_port,
            protocol: Protocol::Tcp,
        }];
        proxies.start("c1", Ipv4Addr::LOCALHOST, &m).unwrap();
        proxies.start("c1", Ipv4Addr::LOCALHOST, &m).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", host_port)).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // A second container cannot take the same host port.
        assert!(matches!(
            proxies.start("c2", Ipv4Addr::LOCALHOST, &m),
            Err(NetworkError::Port { .. })
        ));
        proxies.stop("c1");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(TcpStream::connect(("127.0.0.1", host_port)).await.is_err());
    }

    /// A UDP echo "container" on loopback answering `echo:<datagram>`.
    async fn udp_echo() -> u16 {
        let target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = target.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = target.recv_from(&mut buf).await {
                let reply = [b"echo:", &buf[..n]].concat();
                let _ = target.send_to(&reply, from).await;
            }
        });
        port
    }

    fn free_udp_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn ask(client: &UdpSocket, host_port: u16, what: &[u8]) -> Vec<u8> {
        client
            .send_to(what, ("127.0.0.1", host_port))
            .await
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("no udp reply")
            .unwrap();
        assert_eq!(from.port(), host_port, "replies come from the host port");
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn udp_clients_get_their_own_flows_which_end_when_idle() {
        let target_port = udp_echo().await;
        let host_port = free_udp_port();
        let proxies = PortProxies::with_udp_idle(Duration::from_millis(400));
        let m = [PortMapping {
            host_port,
            container_port: target_port,
            protocol: Protocol::Udp,
        }];
        proxies.start("c1", Ipv4Addr::LOCALHOST, &m).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&a, host_port, b"a1").await, b"echo:a1");
        assert_eq!(ask(&b, host_port, b"b1").await, b"echo:b1");
        assert_eq!(ask(&a, host_port, b"a2").await, b"echo:a2");
        assert_eq!(proxies.udp_flows(), 2);
        // Traffic keeps a flow alive; silence ends it.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(ask(&a, host_port, b"keep").await, b"echo:keep");
        }
        assert_eq!(proxies.udp_flows(), 1, "b's flow ended, a's is alive");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(proxies.udp_flows(), 0);
        // An ended flow starts again on the next datagram.
        assert_eq!(ask(&b, host_port, b"b2").await, b"echo:b2");
        // The port is taken while forwarding, free after stop.
        assert!(matches!(
            proxies.start("c2", Ipv4Addr::LOCALHOST, &m),
            Err(NetworkError::Port { .. })
        ));
        proxies.stop("c1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxies.udp_flows(), 0, "stopping ends the flows");
        assert!(std::net::UdpSocket::bind(("0.0.0.0", host_port)).is_ok());
    }
}
