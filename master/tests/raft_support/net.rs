//! A network between test masters that can cut links, as openraft's test
//! router does for its in-memory nodes. Each master reaches the others
//! through its own [`Connector`] from [`Net::connector`]: real TCP on
//! loopback under tonic's channels, every connection registered with the
//! [`Net`] by the pair of masters it joins. Cutting a link (or isolating a
//! master) fails calls both ways at once: new connections are refused, and
//! those already open fail their next read or write, including a read
//! already waiting. The nodes themselves run unchanged production code.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use hyper_util::rt::TokioIo;
use keel_master::replication::raft::connector::{self, ConnectError, Connector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Uri};

/// Who may talk to whom.
#[derive(Default)]
pub struct Net {
    rules: Mutex<Rules>,
}

#[derive(Default)]
struct Rules {
    /// Links cut, as ordered pairs (both directions are recorded).
    cut: BTreeSet<(SocketAddr, SocketAddr)>,
    /// Masters cut off from every other.
    isolated: BTreeSet<SocketAddr>,
    /// Connections opened so far: `(from, to)` and their switch.
    open: Vec<(SocketAddr, SocketAddr, Weak<Switch>)>,
}

impl Rules {
    fn blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.cut.contains(&(from, to))
    }

    /// Fails the open connections the rules now block.
    fn enforce(&mut self) {
        let mut open = std::mem::take(&mut self.open);
        open.retain(|(from, to, switch)| {
            let Some(switch) = switch.upgrade() else {
                return false;
            };
            if self.blocked(*from, *to) {
                switch.cut();
                return false;
            }
            true
        });
        self.open = open;
    }
}

impl Net {
    pub fn new() -> Arc<Net> {
        Arc::default()
    }

    /// The connector of the master at `from`.
    pub fn connector(self: &Arc<Self>, from: SocketAddr) -> Arc<dyn Connector> {
        Arc::new(Link {
            net: self.clone(),
            from,
        })
    }

    /// Cuts `addr` off from every other master, both ways.
    pub fn isolate(&self, addr: SocketAddr) {
        let mut rules = self.lock();
        rules.isolated.insert(addr);
        rules.enforce();
    }

    /// Undoes [`Net::isolate`].
    pub fn rejoin(&self, addr: SocketAddr) {
        self.lock().isolated.remove(&addr);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        let mut rules = self.lock();
        rules.cut.insert((a, b));
        rules.cut.insert((b, a));
        rules.enforce();
    }

    /// Undoes [`Net::cut`].
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        let mut rules = self.lock();
        rules.cut.remove(&(a, b));
        rules.cut.remove(&(b, a));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a connection from `from` to `to`, unless the link is cut.
    async fn dial(self: Arc<Self>, from: SocketAddr, to: SocketAddr) -> io::Result<Wire> {
        if self.lock().blocked(from, to) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("test network: {from} -> {to} is cut"),
            ));
        }
        let tcp = TcpStream::connect(to).await?;
        tcp.set_nodelay(true)?;
        let switch = Arc::new(Switch::default());
        let mut rules = self.lock();
        rules.open.push((from, to, Arc::downgrade(&switch)));
        // Cut while connecting: no connection gets through.
        rules.enforce();
        Ok(Wire { tcp, switch })
    }
}

/// One master's way into the [`Net`].
struct Link {
    net: Arc<Net>,
    from: SocketAddr,
}

impl Connector for Link {
    fn connect(&self, addr: &str) -> Result<Channel, ConnectError> {
        let to: SocketAddr = addr.parse().map_err(|e| ConnectError::BadAddress {
            addr: addr.to_string(),
            reason: format!("{e}"),
        })?;
        let dial = Dial {
            net: self.net.clone(),
            from: self.from,
            to,
        };
        Ok(connector::endpoint(addr)?.connect_with_connector_lazy(dial))
    }
}

/// tonic's connector: dials through the [`Net`].
#[derive(Clone)]
struct Dial {
    net: Arc<Net>,
    from: SocketAddr,
    to: SocketAddr,
}

impl tower_service::Service<Uri> for Dial {
    type Response = TokioIo<Wire>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Wire>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let dial = self.net.clone().dial(self.from, self.to);
        Box::pin(async move { dial.await.map(TokioIo::new) })
    }
}

/// Whether a connection's link was cut, and who to wake when it is.
#[derive(Default)]
struct Switch {
    cut: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Switch {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.reader.wake();
        self.writer.wake();
    }

    /// Registers the waker, then says whether the link is cut (in that
    /// order, so that a cut in between still wakes).
    fn check(&self, waker: &AtomicWaker, cx: &Context<'_>) -> io::Result<()> {
        waker.register(cx.waker());
        if self.cut.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "test network: link cut",
            ));
        }
        Ok(())
    }
}

/// A TCP connection that fails once its link is cut.
struct Wire {
    tcp: TcpStream,
    switch: Arc<Switch>,
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.switch.check(&this.switch.reader, cx)?;
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.switch.check(&this.switch.writer, cx)?;
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.switch.check(&this.switch.writer, cx)?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
