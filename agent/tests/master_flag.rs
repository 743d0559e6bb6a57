//! `keel-agent --master` with what Keel does not take (a ZooKeeper URL, as
//! Mesos agents are given, or any other URL): the agent refuses at once and
//! says what it takes, naming what it was given.

use std::process::Command;
use std::time::{Duration, Instant};

fn run_with_master(master: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_keel-agent"))
        .args(["--master", master, "--ip", "127.0.0.1", "--port", "0"])
        .arg("--work-dir")
        .arg(dir.path())
        .env("KEEL_LOG_STDERR", "1")
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it gave up at once"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_zookeeper_url_is_refused_with_what_keel_takes() {
    let given = "zk://10.0.0.1:2181,10.0.0.2:2181/mesos";
    let (code, stderr) = run_with_master(given);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(given), "{stderr}");
    assert!(stderr.contains("HOST:PORT[,HOST:PORT...]"), "{stderr}");
    assert!(stderr.contains("no ZooKeeper"), "{stderr}");
    assert!(!stderr.contains("invalid port"), "{stderr}");
}

#[test]
fn other_urls_are_refused_the_same_way() {
    let given = "http://master.lab:5050";
    let (code, stderr) = run_with_master(given);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(given), "{stderr}");
    assert!(stderr.contains("http:// URL"), "{stderr}");
    assert!(stderr.contains("HOST:PORT[,HOST:PORT...]"), "{stderr}");
}
