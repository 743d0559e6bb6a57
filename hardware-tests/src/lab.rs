//! A lab on this machine: a `keel-master` on the host's loopback, an HTTP
//! server for the PXE bundle, and guests booted from it. Guests reach the
//! host as 10.0.2.2 through QEMU user networking; nothing touches the real
//! network.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use tokio::runtime::Runtime;

use crate::api::MasterApi;
use crate::qemu::{Boot, GuestSpec};
use crate::shape::Shape;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("keel-master on port {port} did not answer /health within {within:?}; log {log}")]
    MasterDown {
        port: u16,
        within: Duration,
        log: PathBuf,
    },
    #[error("the PXE bundle is missing {0}; build it with `cargo xtask pxe`")]
    NoBundle(PathBuf),
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The workspace this crate lives in.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// `target/pxe`, or `KEEL_PXE_DIR`.
pub fn bundle_dir() -> PathBuf {
    std::env::var_os("KEEL_PXE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pxe"))
}

/// The keel-master the bundle was built with, or `KEEL_MASTER_BIN`.
pub fn master_bin() -> PathBuf {
    std::env::var_os("KEEL_MASTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/keel-master"))
}

/// A free TCP port on the loopback (bound, read, released).
pub fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io(Path::new("127.0.0.1:0")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(io(Path::new("127.0.0.1:0")))
}

/// keel-master running on the host.
pub struct HostMaster {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl HostMaster {
    pub fn start(bin: &Path, work_dir: &Path) -> Result<Self, LabError> {
        Self::start_with(bin, work_dir, free_port()?, &[])
    }

    /// [`HostMaster::start`] on `port` with more flags (`--tls-*`,
    /// `--agent-admission`, ...).
    pub fn start_with(
        bin: &Path,
        work_dir: &Path,
        port: u16,
        extra: &[String],
    ) -> Result<Self, LabError> {
        std::fs::create_dir_all(work_dir).map_err(io(work_dir))?;
        let log = work_dir.join("master.log");
        let out = std::fs::File::create(&log).map_err(io(&log))?;
        let err = out.try_clone().map_err(io(&log))?;
        let child = Command::new(bin)
            .args([
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--work-dir",
            ])
            .arg(work_dir.join("data"))
            .args(extra)
            .env("KEEL_LOG_STDERR", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                bin: bin.to_path_buf(),
                source,
            })?;
        let master = HostMaster { port, log, child };
        let within = Duration::from_secs(20);
        let deadline = Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(LabError::MasterDown {
                    port,
                    within,
                    log: master.log.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(master)
    }

    /// `10.0.2.2:PORT`: the master as a QEMU guest sees it.
    pub fn guest_addr(&self) -> String {
        format!("10.0.2.2:{}", self.port)
    }
}

impl Drop for HostMaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the bundle's files over HTTP on the loopback.
pub struct BundleServer {
    pub addr: SocketAddr,
    /// The files served, in order (proof that a guest really PXE-booted).
    pub served: Served,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub type Served = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl BundleServer {
    pub fn start(rt: &Runtime, dir: &Path) -> Result<Self, LabError> {
        for f in [
            keel_initramfs::VMLINUZ,
            keel_initramfs::INITRAMFS,
            keel_initramfs::BOOT_SCRIPT,
        ] {
            if !dir.join(f).exists() {
                return Err(LabError::NoBundle(dir.join(f)));
            }
        }
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(io(Path::new("127.0.0.1:0")))?;
        let addr = listener.local_addr().map_err(io(dir))?;
        let served = Served::default();
        let app = axum::Router::new()
            .route("/{file}", axum::routing::get(serve))
            .with_state((dir.to_path_buf(), served.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(BundleServer {
            addr,
            served,
            stop: Some(tx),
        })
    }
}

impl Drop for BundleServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Only the bundle's own files, by plain name.
async fn serve(
    State((dir, served)): State<(PathBuf, Served)>,
    UrlPath(file): UrlPath<String>,
) -> Result<Vec<u8>, StatusCode> {
    let allowed = [
        keel_initramfs::VMLINUZ,
        keel_initramfs::INITRAMFS,
        keel_initramfs::BOOT_SCRIPT,
    ];
    if !allowed.contains(&file.as_str()) {
        return Err(StatusCode::NOT_FOUND);
    }
    let data = tokio::fs::read(dir.join(&file))
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    if let Ok(mut s) = served.lock() {
        s.push(file);
    }
    Ok(data)
}

/// A host master, a bundle server and the guests' directories.
pub struct Lab {
    pub rt: Runtime,
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub master: HostMaster,
    pub api: MasterApi,
    server: Option<BundleServer>,
}

impl Lab {
    /// Starts a master under `dir`; the bundle comes from `bundle`.
    pub fn start(dir: &Path, bundle: &Path) -> Result<Self, LabError> {
        Self::start_with(dir, bundle, free_port()?, &[], None)
    }

    /// [`Lab::start`] with a master on `port` with more flags; the lab's
    /// client speaks TLS with `tls` (an operator's material) when given.
    pub fn start_with(
        dir: &Path,
        bundle: &Path,
        port: u16,
        extra: &[String],
        tls: Option<keel_pki::Material>,
    ) -> Result<Self, LabError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io(dir))?;
        let master = HostMaster::start_with(&master_bin(), &dir.join("master"), port, extra)?;
        let api = MasterApi::with_tls(&format!("127.0.0.1:{}", master.port), tls)?;
        Ok(Lab {
            rt,
            dir: dir.to_path_buf(),
            bundle: bundle.to_path_buf(),
            master,
            api,
            server: None,
        })
    }

    /// The bundle files served over HTTP so far.
    pub fn served(&self) -> Vec<String> {
        self.server
            .as_ref()
            .and_then(|s| s.served.lock().ok().map(|v| v.clone()))
            .unwrap_or_default()
    }

    /// The kernel command line the interface promises to work with.
    pub fn append(&self, extra: &str) -> String {
        format!(
            "console=ttyS0 keel.role=agent keel.masters={} panic=-1 {extra}",
            self.master.guest_addr()
        )
        .trim()
        .to_string()
    }

    /// A guest booting the bundle's kernel and initramfs directly.
    pub fn kernel_guest(&self, shape: Shape, append: String) -> GuestSpec {
        GuestSpec {
            dir: self.dir.join(&shape.name),
            shape,
            boot: Boot::Kernel {
                kernel: self.bundle.join(keel_initramfs::VMLINUZ),
                initrd: self.bundle.join(keel_initramfs::INITRAMFS),
                append,
            },
            allow_reboot: false,
            forwards: vec![],
        }
    }

    /// A guest booting by PXE: QEMU's TFTP hands iPXE a script that sets
    /// the masters (and `extra` kernel parameters) and chains to the
    /// bundle's own boot.ipxe over HTTP from the host.
    pub fn pxe_guest(&mut self, shape: Shape, extra: &str) -> Result<GuestSpec, LabError> {
        if self.server.is_none() {
            self.server = Some(BundleServer::start(&self.rt, &self.bundle)?);
        }
        let http = self.server.as_ref().map(|s| s.addr.port()).unwrap_or(0);
        let dir = self.dir.join(&shape.name);
        let tftp = dir.join("tftp");
        std::fs::create_dir_all(&tftp).map_err(io(&tftp))?;
        let script = format!(
            "#!ipxe\nset keel-masters {}\nset keel-extra quiet panic=-1 {extra}\nchain http://10.0.2.2:{http}/{}\n",
            self.master.guest_addr(),
            keel_initramfs::BOOT_SCRIPT
        );
        let path = tftp.join("keel.ipxe");
        std::fs::write(&path, script).map_err(io(&path))?;
        Ok(GuestSpec {
            dir,
            shape,
            boot: Boot::Pxe {
                tftp_dir: tftp,
                bootfile: "keel.ipxe".into(),
            },
            allow_reboot: false,
            forwards: vec![],
        })
    }
}
