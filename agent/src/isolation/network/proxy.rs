//! Host ports forwarded to containers: a TCP listener on the host port (all
//! addresses) per mapping, each connection spliced to the container's
//! address. Userspace, so it needs no iptables/nftables on the appliance;
//! restarted for adopted containers after an agent restart.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{NetworkError, PortMapping};

#[derive(Clone, Default)]
pub struct PortProxies {
    running: Arc<Mutex<HashMap<String, Vec<JoinHandle<()>>>>>,
}

fn listen(port: u16) -> Result<TcpListener, NetworkError> {
    let err = |e: std::io::Error| NetworkError::Port {
        port,
        reason: e.to_string(),
    };
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(err)?;
    std_listener.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(std_listener).map_err(err)
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

impl PortProxies {
    /// Starts forwarding `mappings` to `ip` (no-op if already running for
    /// `container`). Every host port is bound before this returns, so a
    /// port taken by someone else fails the call.
    pub fn start(
        &self,
        container: &str,
        ip: Ipv4Addr,
        mappings: &[PortMapping],
    ) -> Result<(), NetworkError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(container) || mappings.is_empty() {
            return Ok(());
        }
        let listeners = mappings
            .iter()
            .map(|m| Ok((listen(m.host_port)?, m.container_port)))
            .collect::<Result<Vec<_>, NetworkError>>()?;
        let tasks = listeners
            .into_iter()
            .map(|(l, port)| tokio::spawn(forward(l, SocketAddr::from((ip, port)))))
            .collect();
        running.insert(container.to_string(), tasks);
        Ok(())
    }

    /// Stops forwarding to `container` (its listeners close).
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
}
