//! The host half of `cargo xtask guest-bench` (not a test: `#[ignore]`d,
//! run by that command): boots a guest of Keel's kernel and initramfs,
//! serves it `examples/guest_bench/` (release), Debian's crun with its
//! libraries and the host's static busybox, and launches the bench as one
//! task. Everything it times happens inside the guest, on the guest's clock
//! (see the example); this side prints what it reported.
//!
//! crun comes from the machine's apt sources (`apt-get download`, as the
//! bundle's kernel does) into target/keel-cache/crun/, with the libraries
//! `ldd` finds for it. `GUEST_BENCH_RUNS` (100) and `GUEST_BENCH_WARMUP`
//! (3) set the number of launches.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keel_api::mesos::TaskState;
use keel_hardware_tests::lab::workspace_root;
use serde_json::json;
use support::framework::Framework;
use support::guest::{GuestAgent, example, serve};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `crun/bin/crun` and `crun/lib/*` (every library `ldd` names but the
/// dynamic loader) as a tar, built once under `cache`.
fn crun_tar(cache: &Path) -> Vec<u8> {
    let dir = cache.join("crun");
    let tar = dir.join("crun.tar");
    if let Ok(bytes) = std::fs::read(&tar) {
        return bytes;
    }
    let debs = dir.join("debs");
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&debs);
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&debs).unwrap();
    // crun and the packages it depends on (first alternatives; libc6 is
    // the guest's own, copied from this machine into the bundle).
    let depends = run(Command::new("apt-cache").args(["depends", "crun"]));
    let mut packages = vec!["crun".to_string()];
    packages.extend(depends.lines().filter_map(|l| {
        let p = l.trim().strip_prefix("Depends:")?.trim();
        (!p.starts_with('<') && p != "libc6").then(|| p.to_string())
    }));
    eprintln!("+ apt-get download {}", packages.join(" "));
    run(Command::new("apt-get")
        .arg("download")
        .args(&packages)
        .current_dir(&debs));
    for deb in std::fs::read_dir(&debs).unwrap().flatten() {
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb.path())
            .arg(&tree));
    }
    let crun = tree.join("usr/bin/crun");
    let libdirs = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
        .map(|d| tree.join(d).display().to_string())
        .join(":");
    let ldd = run(Command::new("ldd")
        .arg(&crun)
        .env("LD_LIBRARY_PATH", &libdirs));
    let mut libs = Vec::new();
    for line in ldd.lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        assert!(!rest.contains("not found"), "crun needs {name}: {ldd}");
        let path = rest.split_whitespace().next().unwrap_or("");
        if !path.is_empty() {
            libs.push((name.to_string(), PathBuf::from(path)));
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_path_with_name(&crun, "crun/bin/crun").unwrap();
    for (name, path) in &libs {
        b.append_path_with_name(path, format!("crun/lib/{name}"))
            .unwrap();
    }
    let bytes = b.into_inner().unwrap();
    std::fs::write(&tar, &bytes).unwrap();
    bytes
}

fn busybox() -> Vec<u8> {
    let path = run(Command::new("sh").args(["-c", "command -v busybox"]));
    let path = path.trim();
    let ldd = Command::new("ldd").arg(path).output().unwrap();
    assert!(
        !ldd.status.success() || String::from_utf8_lossy(&ldd.stdout).contains("not a dynamic"),
        "{path} is not static (install busybox-static)"
    );
    std::fs::read(path).unwrap()
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "a benchmark: cargo xtask guest-bench"]
fn launch_beside_crun_inside_a_guest() {
    let started = Instant::now();
    let runs = env_num("GUEST_BENCH_RUNS", 100);
    let warmup = env_num("GUEST_BENCH_WARMUP", 3);
    let root = workspace_root();
    let bench = example("guest_bench", "KEEL_GUEST_BENCH_BIN");
    let mut files = BTreeMap::new();
    files.insert("guest_bench".to_string(), std::fs::read(&bench).unwrap());
    files.insert("busybox".to_string(), busybox());
    files.insert(
        "crun.tar".to_string(),
        crun_tar(&root.join("target/keel-cache")),
    );
    let dir = root.join("target/keel-vm-tests/guest-bench");
    let mut guest = GuestAgent::boot(&dir, 2, 2048);
    let port = serve(&guest.lab, files);
    let url = |name: &str| format!("http://10.0.2.2:{port}/{name}");

    let stdout = guest.lab.rt.block_on(async {
        let mut fw = Framework::subscribe(&guest.master(), "guest-bench").await;
        let task = json!({"name": "bench", "task_id": {"value": "bench"},
            "command": {"shell": false, "value": "/mnt/mesos/sandbox/guest_bench",
                "arguments": ["guest_bench", runs.to_string(), warmup.to_string()],
                "uris": [
                    {"value": url("guest_bench"), "executable": true},
                    {"value": url("busybox"), "executable": true},
                    {"value": url("crun.tar"), "extract": true}]},
            "container": {"type": "MESOS", "hostname": "bench"}});
        fw.launch(task, 2.0, 768.0, vec![]).await;
        let within = Duration::from_secs(300 + 20 * (runs + warmup) as u64);
        let st = fw.until("bench", TaskState::TASK_FINISHED, within).await;
        let out = guest.sandbox_file(&fw.id, "bench", "stdout").await;
        if st.state != TaskState::TASK_FINISHED {
            let err = guest.sandbox_file(&fw.id, "bench", "stderr").await;
            let agent = guest.sandbox_file(&fw.id, "bench", "agent.log").await;
            panic!("the bench ended {st:?}\nstdout:\n{out}\nstderr:\n{err}\nagent.log:\n{agent}");
        }
        out
    });
    println!("{stdout}");
    let row = stdout.lines().find_map(|l| l.strip_prefix("table_row="));
    println!("{}", row.unwrap_or("(no table row in the bench's output)"));
    eprintln!("guest bench took {:?}", started.elapsed());
    assert!(!guest.console_has("panicked"), "{}", guest.guest.console());
}
