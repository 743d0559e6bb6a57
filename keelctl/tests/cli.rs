//! keelctl against a real master and agent on loopback: the first master
//! of `--master` down (listing agents and running a task still work, and
//! with every master down the error names each), and a reader that goes
//! away (`keelctl ... -o json | grep -q X`) ends keelctl quietly.

mod support;

use std::process::{Command, Stdio};

use support::{cluster, free_port, keelctl};

#[test]
fn a_dead_first_master_is_skipped() {
    let c = cluster();
    let dead = format!("127.0.0.1:{}", free_port());
    let list = format!("{dead},{}", c.master);

    let out = keelctl(&list, &["agents"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        table.starts_with("ID") && table.contains("active"),
        "{table}"
    );

    let out = keelctl(&list, &["run", "--", "echo first master down"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("TASK_FINISHED"), "{stdout}");

    let other = format!("127.0.0.1:{}", free_port());
    let out = keelctl(&format!("{dead},{other}"), &["agents"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no master answered") && stderr.contains(&dead) && stderr.contains(&other),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_keelctl_quietly() {
    let c = cluster();
    for args in [&["agents", "-o", "json"][..], &["agents"], &["tasks"]] {
        // The read end is closed before keelctl writes anything.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_keelctl"))
            .args(["--master", &c.master])
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }

    // The shell form of the report.
    let script = format!(
        "{} --master {} agents -o json | grep -q active",
        env!("CARGO_BIN_EXE_keelctl"),
        c.master
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Broken pipe"));
}
