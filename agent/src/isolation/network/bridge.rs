//! The real [`Network`]: a Linux bridge with the gateway address, one veth
//! pair per container, set up over rtnetlink. Every operation runs on a
//! thread of its own with a current-thread runtime: a netlink socket works
//! in the network namespace its thread was in when it was opened, so one
//! socket is opened in the host's namespace, the thread then unshares a new
//! one (only that thread moves), and a second socket configures the inside.
//! Nothing forks.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{Network, NetworkAttachment, NetworkConfig, NetworkError};
use crate::isolation::namespaces;

pub struct BridgeNetwork {
    config: NetworkConfig,
    /// The bridge and netns directory exist (set up on first use, so an
    /// agent whose tasks never ask for the network changes nothing).
    prepared: std::sync::Mutex<bool>,
}

/// Runs `f` on a new thread with its own runtime (its namespace changes
/// stay on that thread).
fn on_thread<T, F, Fut>(f: F) -> Result<T, NetworkError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, NetworkError>>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetworkError::netlink("runtime", e))?;
        rt.block_on(f())
    })
    .join()
    .unwrap_or_else(|_| Err(NetworkError::netlink("thread", "panicked")))
}

fn connect() -> Result<Handle, NetworkError> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| NetworkError::netlink("socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn index(h: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let found = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(NetworkError::netlink(format!("find {name}"), e)),
    }
}

async fn must_index(h: &Handle, name: &str) -> Result<u32, NetworkError> {
    index(h, name)
        .await?
        .ok_or_else(|| NetworkError::netlink(format!("find {name}"), "no such link"))
}

fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -17)
}

/// Host and container ends of a container's veth pair (<= 15 bytes).
pub fn veth_names(container_id: &str) -> (String, String) {
    let h = container_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (format!("kv{h:08x}"), format!("kp{h:08x}"))
}

/// Whether `path` is a mount point in this mount namespace.
fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|p| Path::new(p) == path)
}

impl BridgeNetwork {
    pub fn new(config: NetworkConfig) -> Self {
        BridgeNetwork {
            config,
            prepared: std::sync::Mutex::new(false),
        }
    }

    /// Creates the bridge (with the gateway address, up) and the netns
    /// directory (bound onto itself and unbindable, so the recursive binds
    /// of a container's view never copy other containers' namespaces).
    /// Idempotent.
    pub fn prepare(&self) -> Result<(), NetworkError> {
        let mut done = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return Ok(());
        }
        let config = &self.config;
        let dir = &config.netns_dir;
        let ns_err = |e: &dyn std::fmt::Display| NetworkError::Namespace {
            path: dir.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| ns_err(&e))?;
        if !mounted(dir) {
            rustix::mount::mount_bind(dir, dir).map_err(|e| ns_err(&e))?;
        }
        rustix::mount::mount_change(dir, rustix::mount::MountPropagationFlags::UNBINDABLE)
            .map_err(|e| ns_err(&e))?;
        let (bridge, gateway, prefix) = (
            config.bridge.clone(),
            config.subnet.gateway(),
            config.subnet.prefix,
        );
        on_thread(move || async move {
            let h = connect()?;
            if index(&h, &bridge).await?.is_none() {
                let add = h
                    .link()
                    .add(LinkBridge::new(&bridge).build())
                    .execute()
                    .await;
                if let Err(e) = add
                    && !exists(&e)
                {
                    return Err(NetworkError::netlink(format!("add bridge {bridge}"), e));
                }
            }
            let idx = must_index(&h, &bridge).await?;
            let add = h
                .address()
                .add(idx, IpAddr::V4(gateway), prefix)
                .execute()
                .await;
            if let Err(e) = add
                && !exists(&e)
            {
                return Err(NetworkError::netlink(format!("address of {bridge}"), e));
            }
            h.link()
                .set(LinkUnspec::new_with_index(idx).up().build())
                .execute()
                .await
                .map_err(|e| NetworkError::netlink(format!("up {bridge}"), e))
        })?;
        *done = true;
        Ok(())
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    fn netns_path(&self, container_id: &str) -> PathBuf {
        self.config.netns_dir.join(container_id)
    }
}

impl Network for BridgeNetwork {
    fn attach(&self, container_id: &str, att: &NetworkAttachment) -> Result<PathBuf, NetworkError> {
        self.prepare()?;
        let path = self.netns_path(container_id);
        if mounted(&path) {
            return Ok(path);
        }
        let ns_err = |e: &dyn std::fmt::Display| NetworkError::Namespace {
            path: path.clone(),
            reason: e.to_string(),
        };
        File::create(&path).map_err(|e| ns_err(&e))?;
        let (host_end, inner_end) = veth_names(container_id);
        let bridge = self.config.bridge.clone();
        let (att, file) = (att.clone(), path.clone());
        on_thread(move || async move {
            let host = connect()?;
            namespaces::new_network_namespace().map_err(|e| NetworkError::netlink("unshare", e))?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", &file)
                .map_err(|e| NetworkError::netlink("bind the namespace", e))?;
            let inner = connect()?;

            let add = host
                .link()
                .add(LinkVeth::new(&host_end, &inner_end).build())
                .execute()
                .await;
            if let Err(e) = add
                && !exists(&e)
            {
                return Err(NetworkError::netlink(format!("add veth {host_end}"), e));
            }
            let ns = File::open(&file).map_err(|e| NetworkError::netlink("open namespace", e))?;
            let peer = must_index(&host, &inner_end).await?;
            host.link()
                .set(
                    LinkUnspec::new_with_index(peer)
                        .setns_by_fd(ns.as_raw_fd())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("move veth", e))?;
            let br = must_index(&host, &bridge).await?;
            let end = must_index(&host, &host_end).await?;
            host.link()
                .set(LinkUnspec::new_with_index(end).controller(br).up().build())
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("attach veth", e))?;

            let lo = must_index(&inner, "lo").await?;
            inner
                .link()
                .set(LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("up lo", e))?;
            let eth = must_index(&inner, &inner_end).await?;
            inner
                .link()
                .set(
                    LinkUnspec::new_with_index(eth)
                        .name("eth0".to_string())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("name eth0", e))?;
            inner
                .address()
                .add(eth, IpAddr::V4(att.ip), att.prefix)
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("address eth0", e))?;
            inner
                .link()
                .set(LinkUnspec::new_with_index(eth).up().build())
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("up eth0", e))?;
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(att.gateway)
                .output_interface(eth)
                .build();
            inner
                .route()
                .add(route)
                .execute()
                .await
                .map_err(|e| NetworkError::netlink("default route", e))
        })
        .inspect_err(|_| {
            let _ = self.detach(container_id);
        })?;
        Ok(path)
    }

    fn detach(&self, container_id: &str) -> Result<(), NetworkError> {
        let (host_end, _) = veth_names(container_id);
        on_thread(move || async move {
            let h = connect()?;
            if let Some(idx) = index(&h, &host_end).await? {
                h.link()
                    .del(idx)
                    .execute()
                    .await
                    .map_err(|e| NetworkError::netlink(format!("delete {host_end}"), e))?;
            }
            Ok(())
        })?;
        let path = self.netns_path(container_id);
        if mounted(&path) {
            rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
                NetworkError::Namespace {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetworkError::Namespace {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ() {
        let (h, p) = veth_names("6d1f8a3c-2b7e-4c1d-9f00-aa11bb22cc33");
        assert!(h.len() <= 15 && p.len() <= 15);
        assert_eq!(&h[2..], &p[2..]);
        assert_ne!(veth_names("a").0, veth_names("b").0);
    }
}
