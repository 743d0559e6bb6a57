//! TLS under a tonic channel: TCP to the URI's host and port, then the
//! handshake with the cluster's client configuration, the server's
//! certificate checked for the host it was asked for.
//!
//! Give tonic an `http://` endpoint and this connector
//! (`Endpoint::connect_with_connector_lazy`): the encryption is ours, so
//! masters and agents verify peers the same way everywhere.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Connects over TLS with one client configuration.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl TlsConnector {
    /// `timeout` bounds the TCP connect and the handshake together.
    pub fn new(config: Arc<ClientConfig>, timeout: Duration) -> TlsConnector {
        TlsConnector { config, timeout }
    }

    /// TCP to `host:port`, then TLS for `host`.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let addr = format!("{host}:{port}");
        let work = async {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            connector.connect(name, tcp).await.inspect_err(|e| {
                tracing::warn!(peer = %addr, error = %e, "TLS handshake with the server failed");
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr}: TLS connect timed out"),
                )
            })?
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host"))
                })?
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            Ok(TokioIo::new(this.connect(&host, port).await?))
        })
    }
}
