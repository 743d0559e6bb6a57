//! `keelctl logs` against a real master and agent on loopback: a task run
//! with `keelctl run`, its stdout and stderr read back from the agent's
//! sandbox, and `-f` following a task while it writes.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{cluster, keelctl, task_id};

#[test]
fn logs_prints_a_tasks_output_and_follows_it() {
    let c = cluster();
    let out = keelctl(
        &c.master,
        &["run", "--", "echo out; echo err >&2; printf 'añ\\n'"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let id = task_id(&stderr);

    let logs = keelctl(&c.master, &["logs", &id]);
    assert!(logs.status.success(), "{logs:?}");
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\nañ\n");
    let logs = keelctl(&c.master, &["logs", &id, "--stderr"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "err\n");
    let missing = keelctl(&c.master, &["logs", "no-such-task"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no task no-such-task"));

    // -f: started while the task is still writing, ends when it ends.
    let mut run = Command::new(env!("CARGO_BIN_EXE_keelctl"))
        .args(["--master", &c.master, "run", "--"])
        .arg("for i in 1 2 3 4 5; do echo tick $i; sleep 0.5; done")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = run.stderr.take().unwrap();
    let mut seen = String::new();
    let id = loop {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "keelctl run said nothing: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains("launched task ") && seen.contains(" on agent") {
            break task_id(&seen);
        }
    };
    let started = Instant::now();
    let follow = keelctl(&c.master, &["logs", "-f", &id]);
    assert!(follow.status.success(), "{follow:?}");
    assert_eq!(
        String::from_utf8_lossy(&follow.stdout),
        "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n"
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "it followed");
    assert!(run.wait().unwrap().success());
}
