//! Acceptance: an unmodified pymesos framework (PyPI) runs a task on Keel.
//!
//! pymesos' dependency http-parser does not build on Python >= 3.11, so the
//! environment is pymesos `--no-deps` plus six and addict, and the pure-Python
//! `http_parser` package taken from the http-parser sdist. It is created once
//! under `target/pymesos-venv` (PyPI must be reachable the first time).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keel_api::mesos::TaskState;
use support::*;

fn sh(cmd: &mut Command) {
    let out = run_output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's python, created on first use.
fn pymesos_python() -> PathBuf {
    let target = bin("keel-master")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let venv = target.join("pymesos-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".complete");
    if marker.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    sh(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    sh(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "pymesos==0.3.15",
        "six",
        "addict",
    ]));
    let sdist = venv.join("sdist");
    sh(Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "http-parser==0.9.0",
            "-d",
        ])
        .arg(&sdist));
    let site = String::from_utf8(
        run_output(Command::new(&python).args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ]))
        .stdout,
    )
    .unwrap();
    let site = Path::new(site.trim());
    sh(Command::new("tar")
        .arg("xzf")
        .arg(sdist.join("http-parser-0.9.0.tar.gz"))
        .arg("-C")
        .arg(&sdist));
    let pkg = site.join("http_parser");
    std::fs::create_dir_all(&pkg).unwrap();
    for entry in std::fs::read_dir(sdist.join("http-parser-0.9.0/http_parser")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&p, pkg.join(p.file_name().unwrap())).unwrap();
        }
    }
    sh(Command::new(&python).args(["-c", "import pymesos, http_parser.http"]));
    std::fs::write(&marker, "").unwrap();
    python
}

#[test]
fn pymesos_framework_launches_echo_hello() {
    let python = pymesos_python();
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let agent = start_agent(dir.path(), &m.addr(), &[]);
    wait_for(
        Duration::from_secs(20),
        "agent",
        || !m.keel_agents().is_empty(),
        || agent.log_text(),
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pymesos/framework.py");
    let out = run_output(Command::new(python).arg(script).arg(m.addr()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymesos framework failed\n{stdout}\n{stderr}\n--- master ---\n{}",
        m.proc.log_text()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("REGISTERED ")),
        "{stdout}"
    );
    let updates: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("UPDATE "))
        .collect();
    assert!(updates.contains(&"TASK_RUNNING"), "{stdout}");
    assert_eq!(updates.last(), Some(&"TASK_FINISHED"), "{stdout}");

    // The framework tore down; its task is completed in the master's view.
    let v = m.api.get_frameworks().unwrap();
    assert!(v.frameworks.is_empty(), "{v:?}");
    assert_eq!(
        v.completed_frameworks[0].framework_info.name,
        "pymesos-echo"
    );
    let state = m.api.legacy_state().unwrap();
    assert_eq!(
        state.completed_frameworks[0].completed_tasks[0].state,
        TaskState::TASK_FINISHED,
        "{state:?}"
    );
}
