//! A probe task for isolation tests in Keel's QEMU guests, which have no
//! shell: it reports what it sees from inside its container and pushes on
//! its limits. Output is `key=value` lines on stdout.
//!
//! ```text
//! probe whoami            pid, ppid, hostname, processes, cgroup, interfaces, ro/rw
//! probe hog MB            allocate and touch MB MiB, 4 MiB at a time
//! probe threads N         start up to N threads that sleep until it exits (pids.max counts them)
//! probe spin SECS         busy loop; report the container's CPU use from cpu.stat
//! probe hold MB SECS      hold MB MiB (touched) and busy-loop for SECS
//! probe serve PORT        answer "pong" to every TCP connection
//! probe connect ADDR      connect, print what comes back
//! probe ls DIR            list a directory
//! probe io                the container's io.max and io.weight
//! probe sleep SECS
//! ```

use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn out(k: &str, v: impl std::fmt::Display) {
    println!("{k}={v}");
    let _ = std::io::stdout().flush();
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn own_cgroup() -> String {
    read("/proc/self/cgroup")
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

fn whoami() {
    out("pid", std::process::id());
    out("ppid", std::os::unix::process::parent_id());
    out("hostname", read("/proc/sys/kernel/hostname").trim());
    let pids = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    out("processes", pids);
    out("pid1", read("/proc/1/cmdline").replace('\0', " ").trim());
    out("cgroup", own_cgroup());
    let ifaces: Vec<String> = read("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    out("interfaces", ifaces.join(","));
    let rw = |p: &str| match std::fs::write(p, "x") {
        Ok(()) => "rw",
        Err(_) => "ro",
    };
    out("usr", rw("/usr/keel-probe"));
    out("tmp", rw("/tmp/keel-probe"));
    out("sandbox", rw("keel-probe"));
    out(
        "cwd",
        std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
}

fn hog(mb: usize) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in (0..mb).step_by(4) {
        let mut c = vec![0u8; 4 << 20];
        for page in c.chunks_mut(4096) {
            page[0] = 1;
        }
        chunks.push(c);
        out("allocated_mb", i + 4);
    }
    out("done", "hog");
}

/// Holds `mb` MiB (every page touched) and keeps a CPU busy for `secs`.
fn hold(mb: usize, secs: u64) {
    let mut held: Vec<Vec<u8>> = Vec::new();
    for _ in (0..mb).step_by(4) {
        let mut c = vec![0u8; 4 << 20];
        for page in c.chunks_mut(4096) {
            page[0] = 1;
        }
        held.push(c);
    }
    out("held_mb", mb);
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    let mut x = 0u64;
    while std::time::Instant::now() < until {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    out("spun", x % 2);
    drop(held);
}

fn threads(n: usize) {
    let mut started = 0;
    let mut error = String::new();
    let mut handles = Vec::new();
    for _ in 0..n {
        match std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| std::thread::sleep(Duration::from_secs(3600)))
        {
            Ok(h) => {
                started += 1;
                handles.push(h);
            }
            Err(e) => {
                error = e.to_string();
                break;
            }
        }
    }
    out("threads", started);
    out("error", &error);
    let leaf = own_cgroup();
    let container = leaf
        .rsplit_once('/')
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    for (name, dir) in [("container", &container), ("leaf", &leaf)] {
        for file in ["pids.max", "pids.current", "pids.events"] {
            let text = read(&format!("/sys/fs/cgroup{dir}/{file}"));
            out(&format!("{name}_{file}"), text.trim().replace('\n', ";"));
        }
    }
    std::process::exit(0);
}

fn io() {
    let leaf = own_cgroup();
    let container = leaf
        .rsplit_once('/')
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    for file in ["io.max", "io.weight"] {
        let text = read(&format!("/sys/fs/cgroup{container}/{file}"));
        out(&file.replace('.', "_"), text.trim().replace('\n', ";"));
    }
}

fn cpu_usage_usec(container: &str) -> u64 {
    read(&format!("/sys/fs/cgroup{container}/cpu.stat"))
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn spin(secs: u64) {
    let leaf = own_cgroup();
    let container = leaf
        .rsplit_once('/')
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    out("container", &container);
    let (start, u0) = (Instant::now(), cpu_usage_usec(&container));
    let mut x: u64 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        for i in 0..100_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    let wall = start.elapsed().as_micros() as u64;
    let used = cpu_usage_usec(&container) - u0;
    out(
        "cpu_max",
        read(&format!("/sys/fs/cgroup{container}/cpu.max")).trim(),
    );
    out("usage_usec", used);
    out("wall_usec", wall);
    out("share", format!("{:.3}", used as f64 / wall as f64));
    out("ignore", x % 2);
}

fn serve(port: u16) {
    let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind");
    out("listening", port);
    for mut s in l.incoming().flatten() {
        let _ = s.write_all(b"pong\n");
    }
}

fn connect(addr: &str) {
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            // A mapped host port is the agent's proxy: it accepts before
            // the task listens (TASK_RUNNING comes at exec), and closes
            // at once while the task's port refuses. Try again then.
            if !got.trim().is_empty() {
                out("reply", got.trim());
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    out("reply", "none");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    match arg(1).as_str() {
        "whoami" => whoami(),
        "hog" => hog(num(2) as usize),
        "threads" => threads(num(2) as usize),
        "spin" => spin(num(2)),
        "hold" => hold(num(2) as usize, num(3)),
        "serve" => serve(num(2) as u16),
        "connect" => connect(&arg(2)),
        "io" => io(),
        "ls" => {
            for e in std::fs::read_dir(arg(2)).into_iter().flatten().flatten() {
                out("entry", e.file_name().to_string_lossy());
            }
        }
        "sleep" => std::thread::sleep(Duration::from_secs(num(2))),
        other => {
            eprintln!("probe: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}
