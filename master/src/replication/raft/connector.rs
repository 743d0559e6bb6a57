//! How a master reaches the other masters: a [`Connector`] makes the gRPC
//! channel to a peer's address, and [`super::network`] speaks Raft over it.
//! [`TcpConnector`] is the real one (TCP, or TLS with the cluster's
//! certificates). Tests plug in their own (over the
//! same [`endpoint`]) to cut links between chosen masters as a network
//! partition would: `master/tests/raft_support/net.rs`.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long connecting to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Makes channels to peers.
pub trait Connector: Send + Sync + 'static {
    /// A channel to the master at `addr` (`host:port`). It connects lazily:
    /// on the first call, and again after a failure.
    fn connect(&self, addr: &str) -> Result<Channel, ConnectError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("bad master address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
}

/// The endpoint of the master at `addr`, with the masters' connection
/// settings.
pub fn endpoint(addr: &str) -> Result<Endpoint, ConnectError> {
    let endpoint =
        Endpoint::from_shared(format!("http://{addr}")).map_err(|e| ConnectError::BadAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        // Small Raft messages must not wait for Nagle's algorithm.
        .tcp_nodelay(true))
}

/// TCP to the peer's address, TLS over it when configured (the peer's
/// certificate checked against the cluster CA for the host asked for).
#[derive(Clone, Default)]
pub struct TcpConnector {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl TcpConnector {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> TcpConnector {
        TcpConnector { tls }
    }
}

impl Connector for TcpConnector {
    fn connect(&self, addr: &str) -> Result<Channel, ConnectError> {
        let endpoint = endpoint(addr)?;
        Ok(match &self.tls {
            Some(config) => endpoint.connect_with_connector_lazy(keel_pki::TlsConnector::new(
                config.clone(),
                CONNECT_TIMEOUT,
            )),
            None => endpoint.connect_lazy(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_that_are_no_uri_are_refused() {
        assert!(TcpConnector::default().connect("127.0.0.1:5050").is_ok());
        let err = TcpConnector::default()
            .connect("not an address")
            .unwrap_err();
        assert!(
            matches!(err, ConnectError::BadAddress { ref addr, .. } if addr == "not an address"),
            "{err}"
        );
    }
}
