//! Task isolation inside a QEMU guest of Keel's own kernel and initramfs,
//! where cgroup v2 has every controller: a master on the host, the guest's
//! agent registering with it, and probe tasks launched through the master's
//! scheduler API. The probe (`examples/probe.rs`) is served from the host's
//! loopback and brought in by the fetcher (the appliance has no userland);
//! it reports from inside, the agent's files API (forwarded to the host)
//! and the task states report from outside.
//!
//! Needs the release binaries of this tree (`cargo build --release -p
//! keel-init -p keel-agent -p keel-master`), the kernel cache of `cargo
//! xtask pxe` (target/keel-cache) and qemu-system-x86. `#[ignore]`d: run
//! `cargo test -p keel-agent --test guest_isolation -- --ignored --nocapture`.
//! The bundle (built here, with this tree's agent) and the console log stay
//! in target/keel-vm-tests/agent-isolation/.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_hardware_tests::lab::{Lab, free_port, workspace_root};
use keel_hardware_tests::qemu::Guest;
use keel_hardware_tests::shape::Shape;
use keel_initramfs::BuildConfig;
use keel_initramfs::ipxe::BootDefaults;
use serde_json::{Value as Json, json};
use support::framework::Framework;

const BOOT: Duration = Duration::from_secs(300);
const TASK: Duration = Duration::from_secs(400);

fn bundle(dir: &Path) -> PathBuf {
    let root = workspace_root();
    let release = root.join("target/release");
    for bin in ["keel-init", "keel-agent", "keel-master"] {
        assert!(
            release.join(bin).exists(),
            "build the release binaries first: cargo build --release -p keel-init -p keel-agent -p keel-master"
        );
    }
    let out = dir.join("pxe");
    let cfg = BuildConfig {
        conf: root.join("initramfs/bundle.conf"),
        cache: root.join("target/keel-cache"),
        out: out.clone(),
        init: release.join("keel-init"),
        agent: release.join("keel-agent"),
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

/// The probe binary (built with this test) over HTTP on the loopback.
fn serve_probe(lab: &Lab) -> u16 {
    let exe = std::env::current_exe().unwrap();
    let probe = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/probe");
    let bytes = std::fs::read(&probe).unwrap_or_else(|e| panic!("{}: {e}", probe.display()));
    let listener = lab
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/probe",
        axum::routing::get(move || {
            let b = bytes.clone();
            async move { b }
        }),
    );
    lab.rt
        .spawn(async move { axum::serve(listener, app).await });
    port
}

struct Probe<'a> {
    fw: &'a mut Framework,
    probe_url: String,
    files: String,
    http: reqwest::Client,
}

impl Probe<'_> {
    fn task(&self, id: &str, args: &[&str], container: Json) -> Json {
        let mut argv = vec!["probe".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        json!({"name": id, "task_id": {"value": id},
            "command": {"shell": false, "value": "/mnt/mesos/sandbox/probe", "arguments": argv,
                        "uris": [{"value": self.probe_url, "executable": true, "cache": true}]},
            "container": container})
    }

    async fn run(&mut self, id: &str, args: &[&str], cpus: f64, mem: f64) -> Json {
        self.run_with(
            id,
            args,
            cpus,
            mem,
            json!({"type": "MESOS", "hostname": id}),
            vec![],
        )
        .await
    }

    async fn run_with(
        &mut self,
        id: &str,
        args: &[&str],
        cpus: f64,
        mem: f64,
        container: Json,
        extra: Vec<Json>,
    ) -> Json {
        let task = self.task(id, args, container);
        self.fw.launch(task, cpus, mem, extra).await;
        self.fw.until(id, "TASK_FINISHED", TASK).await
    }

    /// The task's stdout, from the guest agent's files API.
    async fn stdout(&self, id: &str) -> BTreeMap<String, String> {
        let path = format!(
            "/frameworks/{}/executors/{id}/runs/latest/stdout",
            self.fw.id
        );
        let resp = self
            .http
            .get(format!("{}/files/download", self.files))
            .query(&[("path", path)])
            .send()
            .await
            .expect("files API");
        let text = resp.text().await.unwrap();
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[test]
#[ignore = "boots a QEMU guest for minutes of TCG"]
fn isolation_holds_inside_a_guest() {
    let dir = workspace_root().join("target/keel-vm-tests/agent-isolation");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = bundle(&dir);
    let lab = Lab::start(&dir, &out).unwrap_or_else(|e| panic!("{e}"));
    let probe_port = serve_probe(&lab);
    // One NIC, so the forwarded port reaches the interface the agent uses.
    let shape_file = dir.join("shape.json");
    let shape_json = json!({"name": "isolation", "vcpus": 1, "memory_mib": 1024,
        "disks": [{"kind": "virtio", "size_mib": 64, "serial": "KEEL-ISO-0001"}],
        "nics": [{"mac": "52:54:00:4b:09:01", "model": "virtio-net-pci"}]});
    std::fs::write(&shape_file, shape_json.to_string()).unwrap();
    let shape = Shape::load(&shape_file).unwrap();
    let files_port = free_port().unwrap();
    let mut spec = lab.kernel_guest(shape, lab.append("quiet"));
    spec.forwards = vec![(files_port, 5051)];
    let mut g = Guest::start(spec).unwrap();
    let (agent, _, _) = lab
        .rt
        .block_on(lab.api.wait_for_agent("the guest agent", BOOT, |_, _| true))
        .unwrap_or_else(|e| panic!("{e}\n{}", g.console()));
    eprintln!(
        "agent {} registered after {:?}",
        agent.id,
        g.started().elapsed()
    );
    let console_has =
        |g: &mut Guest, needle: &str| g.wait_for(needle, Duration::from_secs(1)).is_ok();

    let master = format!("127.0.0.1:{}", lab.master.port);
    lab.rt.block_on(async {
        let mut fw = Framework::subscribe(&master, "isolation-probes").await;
        let mut p = Probe {
            fw: &mut fw,
            probe_url: format!("http://10.0.2.2:{probe_port}/probe"),
            files: format!("http://127.0.0.1:{files_port}"),
            http: reqwest::Client::new(),
        };

        // Its own PID namespace (init is PID 1, the task PID 2), host name,
        // read-only host, private /tmp, its cgroup.
        let st = p.run("whoami", &["whoami"], 0.1, 32.0).await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        let seen = p.stdout("whoami").await;
        eprintln!("whoami: {seen:?}");
        assert_eq!(seen["pid"], "2");
        assert_eq!(seen["ppid"], "1");
        assert!(seen["pid1"].starts_with("keel-agent init"), "{seen:?}");
        assert!(seen["processes"].parse::<u32>().unwrap() <= 3, "{seen:?}");
        assert_eq!(seen["hostname"], "whoami");
        assert_eq!((seen["usr"].as_str(), seen["tmp"].as_str()), ("ro", "rw"));
        assert_eq!(seen["sandbox"], "rw");
        assert_eq!(seen["cwd"], "/mnt/mesos/sandbox");
        assert!(seen["cgroup"].contains("/keel/"), "{seen:?}");

        // mem=64 and a hog of 256 MiB: OOM-killed, reported with the reason.
        let st = p.run("hog", &["hog", "256"], 0.1, 64.0).await;
        eprintln!("hog: {st}");
        assert_eq!(st["state"], "TASK_FAILED", "{st}");
        assert_eq!(st["reason"], "REASON_CONTAINER_LIMITATION_MEMORY", "{st}");
        let seen = p.stdout("hog").await;
        let reached: u32 = seen
            .get("allocated_mb")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            reached <= 64,
            "allocated {reached} MiB under a 64 MiB limit"
        );

        // A thread bomb stops at pids.max; the agent carries on.
        // Each thread costs ~30 KiB of the container's memory (stack pages, its
        // kernel stack): 4096 of them need more than 128 MiB.
        let st = p.run("bomb", &["threads", "20000"], 0.1, 320.0).await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        let seen = p.stdout("bomb").await;
        eprintln!("bomb: {seen:?}");
        let threads: u32 = seen["threads"].parse().unwrap();
        assert!(threads < 4096 && threads > 3000, "{seen:?}");
        assert_eq!(seen["container_pids.max"], "4096", "{seen:?}");
        assert!(
            seen["error"].contains("Resource temporarily unavailable"),
            "{seen:?}"
        );

        // cpus=0.5: a busy loop gets half a CPU (+/- 10 %).
        let st = p.run("spin", &["spin", "6"], 0.5, 32.0).await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        let seen = p.stdout("spin").await;
        eprintln!("spin: {seen:?}");
        assert_eq!(seen["cpu_max"], "50000 100000");
        let share: f64 = seen["share"].parse().unwrap();
        assert!((0.45..=0.55).contains(&share), "{seen:?}");

        // Its own network namespace, reachable on its mapped host port.
        let port = 31005;
        let net = json!({"type": "MESOS", "network_infos": [{"name": "keel",
            "port_mappings": [{"host_port": port, "container_port": 8080}]}]});
        let ports = json!({"name": "ports", "type": "RANGES",
            "ranges": {"range": [{"begin": port, "end": port}]}});
        let server = p.task("server", &["serve", "8080"], net.clone());
        p.fw.launch(server, 0.1, 32.0, vec![ports]).await;
        let st = p.fw.until("server", "TASK_RUNNING", TASK).await;
        assert_eq!(st["state"], "TASK_RUNNING", "{st}");
        let st = p
            .run_with(
                "client",
                &["connect", &format!("127.0.0.1:{port}")],
                0.1,
                32.0,
                json!({"type": "MESOS"}),
                vec![],
            )
            .await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        assert_eq!(p.stdout("client").await["reply"], "pong");
        let st = p
            .run_with(
                "netview",
                &["whoami"],
                0.1,
                32.0,
                net_without_ports(),
                vec![],
            )
            .await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        let ifaces = p.stdout("netview").await["interfaces"].clone();
        let mut ifaces: Vec<&str> = ifaces.split(',').collect();
        ifaces.sort();
        assert_eq!(ifaces, ["eth0", "lo"]);

        // Kill: every process goes, and with them the container's cgroup.
        p.fw.kill("server").await;
        let st = p.fw.until("server", "TASK_KILLED", TASK).await;
        assert_eq!(st["state"], "TASK_KILLED", "{st}");
        let st = p
            .run(
                "after",
                &["ls", "/sys/fs/cgroup/keel/service/keel"],
                0.1,
                32.0,
            )
            .await;
        assert_eq!(st["state"], "TASK_FINISHED", "{st}");
        let path = format!("/frameworks/{}/executors/after/runs/latest/stdout", p.fw.id);
        let listing = p
            .http
            .get(format!("{}/files/download", p.files))
            .query(&[("path", path)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let containers = listing
            .lines()
            .filter(|l| {
                l.starts_with("entry=")
                    && !l.contains("supervisors")
                    && !l.contains("cgroup.")
                    && !l.contains('.')
            })
            .count();
        assert_eq!(
            containers, 1,
            "only the listing task's own container: {listing}"
        );

        // Launch -> TASK_RUNNING, as the framework sees it.
        let mut latencies = Vec::new();
        for i in 0..10 {
            let id = format!("lat{i}");
            let task = p.task(&id, &["sleep", "0"], json!({"type": "MESOS"}));
            p.fw.launch(task, 0.1, 16.0, vec![]).await;
            let start = Instant::now();
            let st = p.fw.until(&id, "TASK_RUNNING", TASK).await;
            latencies.push(start.elapsed());
            assert_eq!(st["state"], "TASK_RUNNING", "{st}");
            p.fw.until(&id, "TASK_FINISHED", TASK).await;
        }
        latencies.sort();
        eprintln!(
            "guest launch->TASK_RUNNING over {}: p50 {:?} max {:?}",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
    });
    assert!(!console_has(&mut g, "panicked"), "{}", g.console());
}

fn net_without_ports() -> Json {
    json!({"type": "MESOS", "network_infos": [{"name": "keel"}]})
}
