//! A connection's bytes: plain TCP, or TLS over it once the handshake is
//! done ([`accept`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use keel_pki::PeerIdentity;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The first byte of a TLS record that starts a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a plaintext HTTP client is told on a TLS port before it is closed.
const PLAINTEXT_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\
connection: close\r\ncontent-length: 42\r\n\r\nthis port speaks TLS: use https:// instead\n";

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connection ready to serve, and the identity in the client's
/// certificate; `None` when it was refused (and logged): plaintext on a
/// TLS port, a failed or slow handshake.
pub(crate) async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsAcceptor>,
    timeout: Duration,
) -> Option<(Stream, Option<PeerIdentity>)> {
    let Some(acceptor) = tls else {
        return Some((Stream::Plain(tcp), None));
    };
    match tokio::time::timeout(timeout, handshake(tcp, peer, acceptor)).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(%peer, ?timeout, "TLS handshake not done in time: connection closed");
            None
        }
    }
}

async fn handshake(
    mut tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
) -> Option<(Stream, Option<PeerIdentity>)> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) if first[0] != TLS_HANDSHAKE => {
            tracing::warn!(%peer, "plaintext client on the TLS port refused");
            let _ = tcp.write_all(PLAINTEXT_REFUSAL).await;
            let _ = tcp.shutdown().await;
            return None;
        }
        Ok(_) => {}
    }
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "TLS handshake refused");
            return None;
        }
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| match PeerIdentity::of(leaf) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "client certificate names no identity");
                None
            }
        });
    tracing::debug!(%peer, ?identity, "TLS connection");
    Some((Stream::Tls(Box::new(tls)), identity))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
