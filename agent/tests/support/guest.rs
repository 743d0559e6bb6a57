//! One QEMU guest of Keel's own kernel and initramfs whose agent registers
//! with a master on the host, for the guest tests and the guest benchmark
//! (`guest_isolation.rs`, `guest_bench.rs`). The appliance has no userland:
//! what a task runs is served from the host's loopback (`serve`) and
//! brought in by the fetcher.
//!
//! Needs the release binaries of this tree (`cargo build --release -p
//! keel-init -p keel-agent -p keel-master`), the kernel cache of `cargo
//! xtask pxe` (target/keel-cache) and qemu-system-x86. `KEEL_AGENT_BIN`
//! puts another agent binary into the bundle (a mutated one, to see the
//! tests fail).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_hardware_tests::lab::{Lab, free_port, workspace_root};
use keel_hardware_tests::qemu::Guest;
use keel_hardware_tests::shape::Shape;
use keel_initramfs::BuildConfig;
use keel_initramfs::ipxe::BootDefaults;
use serde_json::json;

pub const BOOT: Duration = Duration::from_secs(300);

/// Builds the PXE bundle into `dir/pxe` with this tree's release binaries
/// (the agent from `KEEL_AGENT_BIN` when set).
pub fn bundle(dir: &Path) -> PathBuf {
    let root = workspace_root();
    let release = root.join("target/release");
    for bin in ["keel-init", "keel-agent", "keel-master"] {
        assert!(
            release.join(bin).exists(),
            "build the release binaries first: cargo build --release -p keel-init -p keel-agent -p keel-master"
        );
    }
    let agent = std::env::var_os("KEEL_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| release.join("keel-agent"));
    let out = dir.join("pxe");
    let cfg = BuildConfig {
        conf: root.join("initramfs/bundle.conf"),
        cache: root.join("target/keel-cache"),
        out: out.clone(),
        init: release.join("keel-init"),
        agent,
        master: release.join("keel-master"),
        kernel_package: None,
        boot: BootDefaults {
            role: "agent".into(),
            masters: "10.0.2.2:5050".into(),
            console: "ttyS0".into(),
            extra: "quiet".into(),
        },
        zstd_level: 3,
        mtime: 0,
    };
    keel_initramfs::build(&cfg).expect("the PXE bundle");
    out
}

/// A built example of this package (`cargo build [--release] -p keel-agent
/// --example NAME`): `env` names it, else the one beside this test binary.
pub fn example(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let path = deps.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build -p keel-agent --example {name} (or set {env})",
        path.display()
    );
    path
}

/// Serves `files` (URL name -> bytes) over HTTP on the host's loopback;
/// returns the port (the guest reaches it as 10.0.2.2:PORT/NAME).
pub fn serve(lab: &Lab, files: BTreeMap<String, Vec<u8>>) -> u16 {
    let files = std::sync::Arc::new(files);
    let listener = lab
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let files = files.clone();
                async move {
                    files
                        .get(&name)
                        .cloned()
                        .ok_or(axum::http::StatusCode::NOT_FOUND)
                }
            },
        ),
    );
    lab.rt
        .spawn(async move { axum::serve(listener, app).await });
    port
}

/// A booted guest whose agent has registered.
pub struct GuestAgent {
    pub lab: Lab,
    pub guest: Guest,
    /// The guest agent's port 5051 (files API), forwarded to the host
    /// (`127.0.0.1:PORT`).
    pub files: String,
    pub agent_id: String,
}

impl GuestAgent {
    /// Builds the bundle under `dir` (emptied first), starts a master and
    /// boots a guest with one virtio disk (the work disk, named on the
    /// kernel command line) and one NIC.
    pub fn boot(dir: &Path, vcpus: u32, memory_mib: u64) -> GuestAgent {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let out = bundle(dir);
        let lab = Lab::start(dir, &out).unwrap_or_else(|e| panic!("{e}"));
        // One NIC, so the forwarded port reaches the interface the agent uses.
        let shape_file = dir.join("shape.json");
        let shape_json = json!({"name": "guest", "vcpus": vcpus, "memory_mib": memory_mib,
            "disks": [{"kind": "virtio", "size_mib": 128, "serial": "KEEL-ISO-0001"}],
            "nics": [{"mac": "52:54:00:4b:09:01", "model": "virtio-net-pci"}]});
        std::fs::write(&shape_file, shape_json.to_string()).unwrap();
        let shape = Shape::load(&shape_file).unwrap();
        let files_port = free_port().unwrap();
        // The work dirs on that disk (ext4, formatted on first boot), as an
        // appliance keeps them: the agent's checkpoints are fsynced there
        // and bandwidth limits go to it.
        let append = lab.append("quiet keel.workdisk=serial:KEEL-ISO-0001");
        let mut spec = lab.kernel_guest(shape, append);
        spec.forwards = vec![(files_port, 5051)];
        let guest = Guest::start(spec).unwrap();
        let (agent, _, _) = lab
            .rt
            .block_on(lab.api.wait_for_agent("the guest agent", BOOT, |_, _| true))
            .unwrap_or_else(|e| panic!("{e}\n{}", guest.console()));
        eprintln!(
            "agent {} registered after {:?}",
            agent.id,
            guest.started().elapsed()
        );
        GuestAgent {
            lab,
            guest,
            files: format!("127.0.0.1:{files_port}"),
            agent_id: agent.id,
        }
    }

    /// `127.0.0.1:PORT` of the host master.
    pub fn master(&self) -> String {
        format!("127.0.0.1:{}", self.lab.master.port)
    }

    /// A file of a task's sandbox (`stdout`, `stderr`), from the guest
    /// agent's files API (through `keel-client`).
    pub async fn sandbox_file(&self, framework: &str, task: &str, file: &str) -> String {
        let path = format!("/frameworks/{framework}/executors/{task}/runs/latest/{file}");
        let sandbox = self
            .lab
            .api
            .client()
            .sandbox(&self.agent_id, &self.files, framework)
            .expect("a client of the agent");
        match sandbox.download(&path).await {
            Ok(resp) => resp.text().await.unwrap(),
            Err(e) => format!("({path}: {e})"),
        }
    }

    /// A call to the guest agent's v1 operator API, with a grant for
    /// `framework`'s sandboxes (through `keel-client`).
    pub async fn agent_call(
        &self,
        framework: &str,
        call: serde_json::Value,
    ) -> Result<keel_api::agent::Response, keel_client::ClientError> {
        let sandbox = self
            .lab
            .api
            .client()
            .sandbox(&self.agent_id, &self.files, framework)
            .expect("a client of the agent");
        sandbox.agent_call(&call).await
    }

    /// Whether the console shows `needle` (within a second).
    pub fn console_has(&mut self, needle: &str) -> bool {
        self.guest.wait_for(needle, Duration::from_secs(1)).is_ok()
    }
}
