//! Acceptance: the Mesos CLI from PyPI (`avmesos-cli`, unmodified) runs
//! `task exec <task> echo hi` and `task attach <task>` against a task on
//! Keel. The CLI finds the task and its agent through the master, reads
//! the task's container id from `statuses[0].container_status` and talks
//! to the agent's `/api/v1` itself (LAUNCH_NESTED_CONTAINER_SESSION,
//! ATTACH_CONTAINER_OUTPUT, WAIT_CONTAINER).
//!
//! avmesos-cli 1.0.0 (the only release) names a module it never imports
//! in `task exec` / `attach` (`mesos.http...` in `avmesos/cli/mesos.py`:
//! `NameError: name 'mesos' is not defined`, against any cluster). The
//! test runs the CLI with that one name bound to the module it means
//! (`avmesos`, whose `http` has `simple_urljoin`, `Resource`,
//! `METHOD_POST`); nothing else of the CLI is touched.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keel_api::mesos::TaskState;
use support::scheduler::{Scheduler, command_task, framework, launch};
use support::venv;
use support::*;

const T: Duration = Duration::from_secs(30);

fn cli_python() -> PathBuf {
    venv::python("avmesos-venv", |python, _| {
        venv::pip(python, &["avmesos-cli==1.0.0", "requests"])
    })
}

/// `mesos-cli ARGS` against the master at `addr`, under a terminal
/// (`script`: `task attach` wants one); its output and exit status.
fn mesos_cli(dir: &Path, addr: &str, args: &[&str]) -> (i32, String) {
    let config = dir.join("mesos-cli.toml");
    std::fs::write(&config, format!("[master]\naddress = \"{addr}\"\n")).unwrap();
    let python = cli_python();
    let shim = dir.join("mesos_cli_shim.py");
    std::fs::write(&shim, SHIM).unwrap();
    let line = [python.display().to_string(), shim.display().to_string()]
        .into_iter()
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = run_output(
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("MESOS_CLI_CONFIG", &config),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `mesos-cli` with the module `avmesos/cli/mesos.py` uses unbound
/// (see the module doc) bound.
const SHIM: &str = "\
import runpy, sys
import avmesos, avmesos.http, avmesos.cli.mesos
avmesos.cli.mesos.mesos = avmesos
sys.argv = ['mesos-cli'] + sys.argv[1:]
runpy.run_module('avmesos.cli.mesos-cli', run_name='__main__')
";

#[test]
fn the_mesos_cli_execs_and_attaches_into_a_keel_task() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, agent) = master_and_agent(tmp.path());
    let mut fw = Scheduler::subscribe(m.port, framework("cli-exec"));
    let offer = fw.offer(T);
    let ticks = "for i in $(seq 1 40); do echo tick-$i; sleep 0.5; done";
    let tasks = vec![
        command_task(&offer, "cli-sleeper", "sleep 600", 0.1, 32.0),
        command_task(&offer, "cli-ticker", ticks, 0.1, 32.0),
    ];
    assert_eq!(launch(&fw, &offer, tasks), 202);
    let mut running = 0;
    while running < 2 {
        let update = fw.update(T);
        fw.ack(&update);
        assert!(
            !update.state.is_terminal(),
            "{update:?}\n{}",
            agent.log_text()
        );
        if update.state == TaskState::TASK_RUNNING {
            running += 1;
        }
    }
    let (code, out) = mesos_cli(
        tmp.path(),
        &m.addr(),
        &["task", "exec", "cli-sleeper", "echo", "hi"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hi"), "{out}");
    let (code, out) = mesos_cli(
        tmp.path(),
        &m.addr(),
        &["task", "exec", "cli-sleeper", "sh", "-c", "'exit 5'"],
    );
    assert_eq!(code, 5, "{out}");
    // attach without stdin: the task's output as it writes it, until the
    // task ends.
    let (_, out) = mesos_cli(
        tmp.path(),
        &m.addr(),
        &["task", "attach", "--no-stdin", "cli-ticker"],
    );
    assert!(out.contains("tick-40"), "{out}");
}
