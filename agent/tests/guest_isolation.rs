//! Task isolation inside a QEMU guest of Keel's own kernel and initramfs,
//! where cgroup v2 has every controller: a master on the host, the guest's
//! agent registering with it, and probe tasks launched through the master's
//! scheduler API. The probe (`examples/probe.rs`) is served from the host's
//! loopback and brought in by the fetcher (the appliance has no userland);
//! it reports from inside, the agent's files API (forwarded to the host)
//! and the task states report from outside. Every check runs, and the test
//! fails at the end with the list of those that did not hold.
//!
//! `cargo xtask vm-test` runs it (after the release binaries, the bundle's
//! kernel cache and the probe); by hand, `cargo build -p keel-agent
//! --example probe` and `cargo test -p keel-agent --test guest_isolation --
//! --ignored --nocapture` (see `support/guest.rs`). The bundle and the
//! console log stay in target/keel-vm-tests/agent-isolation/.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keel_api::mesos::{TaskState, TaskStatus};
use keel_hardware_tests::lab::workspace_root;
use serde_json::{Value as Json, json};
use support::framework::Framework;
use support::guest::{GuestAgent, example, serve};

const TASK: Duration = Duration::from_secs(400);

/// The checks that did not hold, so one slow boot reports all of them.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let what = what();
            eprintln!("CHECK FAILED: {what}");
            self.0.push(what);
        }
    }

    fn eq(&mut self, what: &str, got: impl AsRef<str>, want: &str, context: impl std::fmt::Debug) {
        let got = got.as_ref();
        self.check(got == want, || {
            format!("{what}: got {got:?}, want {want:?} ({context:?})")
        });
    }
}

type Seen = BTreeMap<String, String>;

fn get<'a>(seen: &'a Seen, key: &str) -> &'a str {
    seen.get(key).map(String::as_str).unwrap_or("")
}

struct Probe<'a> {
    fw: &'a mut Framework,
    guest: &'a GuestAgent,
    probe_url: String,
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

    async fn run(&mut self, id: &str, args: &[&str], cpus: f64, mem: f64) -> TaskStatus {
        let container = json!({"type": "MESOS", "hostname": id});
        self.run_with(id, args, cpus, mem, container, vec![]).await
    }

    async fn run_with(
        &mut self,
        id: &str,
        args: &[&str],
        cpus: f64,
        mem: f64,
        container: Json,
        extra: Vec<Json>,
    ) -> TaskStatus {
        let task = self.task(id, args, container);
        self.fw.launch(task, cpus, mem, extra).await;
        self.fw.until(id, TaskState::TASK_FINISHED, TASK).await
    }

    async fn stdout_text(&self, id: &str) -> String {
        self.guest.sandbox_file(&self.fw.id, id, "stdout").await
    }

    /// The task's `key=value` stdout lines.
    async fn stdout(&self, id: &str) -> Seen {
        self.stdout_text(id)
            .await
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[test]
#[ignore = "boots a QEMU guest for minutes of TCG"]
fn isolation_holds_inside_a_guest() {
    let started = Instant::now();
    let dir = workspace_root().join("target/keel-vm-tests/agent-isolation");
    let mut guest = GuestAgent::boot(&dir, 1, 1024);
    let probe = example("probe", "KEEL_PROBE_BIN");
    let probe = std::fs::read(&probe).unwrap_or_else(|e| panic!("{}: {e}", probe.display()));
    let probe_port = serve(&guest.lab, [("probe".to_string(), probe)].into());
    let mut c = Checks::default();

    guest.lab.rt.block_on(async {
        let mut fw = Framework::subscribe(&guest.master(), "isolation-probes").await;
        let mut p = Probe {
            fw: &mut fw,
            guest: &guest,
            probe_url: format!("http://10.0.2.2:{probe_port}/probe"),
        };

        // Its own PID namespace (init is PID 1, the task PID 2), host name,
        // read-only host, private /tmp, its cgroup.
        let st = p.run("whoami", &["whoami"], 0.1, 32.0).await;
        c.eq("whoami state", st.state.name(), "TASK_FINISHED", &st);
        let seen = p.stdout("whoami").await;
        eprintln!("whoami: {seen:?}");
        c.eq("task pid", get(&seen, "pid"), "2", &seen);
        c.eq("task ppid", get(&seen, "ppid"), "1", &seen);
        c.check(get(&seen, "pid1").starts_with("keel-agent init"), || {
            format!("PID 1 is not the container init: {seen:?}")
        });
        let processes = get(&seen, "processes").parse::<u32>().unwrap_or(u32::MAX);
        c.check(processes <= 3, || {
            format!("{processes} processes seen: {seen:?}")
        });
        c.eq("host name", get(&seen, "hostname"), "whoami", &seen);
        c.eq("/usr", get(&seen, "usr"), "ro", &seen);
        c.eq("/tmp", get(&seen, "tmp"), "rw", &seen);
        c.eq("sandbox", get(&seen, "sandbox"), "rw", &seen);
        c.eq("cwd", get(&seen, "cwd"), "/mnt/mesos/sandbox", &seen);
        c.check(get(&seen, "cgroup").contains("/keel/"), || {
            format!("not in a Keel cgroup: {seen:?}")
        });

        // mem=64 and a hog of 256 MiB: OOM-killed, reported with the reason.
        let st = p.run("hog", &["hog", "256"], 0.1, 64.0).await;
        eprintln!("hog: {st:?}");
        c.eq("hog state", st.state.name(), "TASK_FAILED", &st);
        let reason = st.reason.as_deref().unwrap_or("");
        c.eq(
            "hog reason",
            reason,
            "REASON_CONTAINER_LIMITATION_MEMORY",
            &st,
        );
        let seen = p.stdout("hog").await;
        let reached: u32 = get(&seen, "allocated_mb").parse().unwrap_or(0);
        c.check(reached <= 64, || {
            format!("allocated {reached} MiB under a 64 MiB limit")
        });

        // A thread bomb stops at pids.max; the agent carries on.
        // Each thread costs ~30 KiB of the container's memory (stack pages, its
        // kernel stack): 4096 of them need more than 128 MiB.
        let st = p.run("bomb", &["threads", "20000"], 0.1, 320.0).await;
        c.eq("bomb state", st.state.name(), "TASK_FINISHED", &st);
        let seen = p.stdout("bomb").await;
        eprintln!("bomb: {seen:?}");
        let threads: u32 = get(&seen, "threads").parse().unwrap_or(0);
        c.check(threads < 4096 && threads > 3000, || {
            format!("{threads} threads under pids.max 4096: {seen:?}")
        });
        c.eq("pids.max", get(&seen, "container_pids.max"), "4096", &seen);
        c.check(
            get(&seen, "error").contains("Resource temporarily unavailable"),
            || format!("the thread bomb was not stopped by EAGAIN: {seen:?}"),
        );

        // cpus=0.5: a busy loop gets half a CPU (+/- 10 %).
        let st = p.run("spin", &["spin", "6"], 0.5, 32.0).await;
        c.eq("spin state", st.state.name(), "TASK_FINISHED", &st);
        let seen = p.stdout("spin").await;
        eprintln!("spin: {seen:?}");
        c.eq("cpu.max", get(&seen, "cpu_max"), "50000 100000", &seen);
        let share: f64 = get(&seen, "share").parse().unwrap_or(f64::NAN);
        c.check((0.45..=0.55).contains(&share), || {
            format!("cpus=0.5 got {share} of a CPU: {seen:?}")
        });

        // GET_CONTAINERS: a task holding 48 MiB and burning half a CPU
        // shows it in its container's statistics, read twice.
        let hold = p.task("hold", &["hold", "48", "30"], json!({"type": "MESOS"}));
        p.fw.launch(hold, 0.5, 96.0, vec![]).await;
        let st = p.fw.until("hold", TaskState::TASK_RUNNING, TASK).await;
        c.eq("hold state", st.state.name(), "TASK_RUNNING", &st);
        let hold_container = st
            .container_status
            .as_ref()
            .and_then(|cs| cs.container_id.as_ref())
            .map(|id| id.value.clone())
            .unwrap_or_default();
        c.check(!hold_container.is_empty(), || {
            format!("no container_status: {st:?}")
        });
        let mut samples = Vec::new();
        for _ in 0..2 {
            // Allocation and a few seconds of CPU between the reads.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let fw_id = p.fw.id.clone();
            let call = json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": false}});
            match p.guest.agent_call(&fw_id, call).await {
                Ok(keel_api::agent::Response::GetContainers(list)) => {
                    let found = list
                        .containers
                        .into_iter()
                        .find(|x| x.container_id.value == hold_container);
                    samples.extend(found.and_then(|x| x.resource_statistics));
                }
                other => c.check(false, || format!("GET_CONTAINERS answered {other:?}")),
            }
        }
        eprintln!("hold statistics: {samples:?}");
        c.check(samples.len() == 2, || {
            format!("hold's container not listed twice: {samples:?}")
        });
        if let [first, second] = samples.as_slice() {
            let user = |s: &keel_api::agent::state::ResourceStatistics| {
                s.cpus_user_time_secs.unwrap_or(0.0) + s.cpus_system_time_secs.unwrap_or(0.0)
            };
            c.check(user(second) > user(first) + 1.0, || {
                format!("CPU time did not grow by a second in 5 s: {first:?} -> {second:?}")
            });
            c.check(second.cpus_limit == Some(0.5), || {
                format!("cpus_limit of cpus=0.5: {second:?}")
            });
            let rss = second.mem_rss_bytes.unwrap_or(0);
            c.check(rss >= 40 << 20, || {
                format!("48 MiB held, rss {rss}: {second:?}")
            });
            c.check(second.mem_limit_bytes == Some(96 << 20), || {
                format!("mem_limit_bytes of mem=96: {second:?}")
            });
            c.check(second.timestamp > first.timestamp, || {
                format!("timestamps: {first:?} -> {second:?}")
            });
        }
        p.fw.kill("hold").await;
        p.fw.until("hold", TaskState::TASK_KILLED, TASK).await;

        // keel.io/* labels: io.max on the work disk's whole device.
        let mut io = p.task("io", &["io"], json!({"type": "MESOS"}));
        io["labels"] = json!({"labels": [{"key": "keel.io/read-bps", "value": "1048576"},
                                         {"key": "keel.io/write-iops", "value": "200"}]});
        p.fw.launch(io, 0.1, 32.0, vec![]).await;
        let st = p.fw.until("io", TaskState::TASK_FINISHED, TASK).await;
        c.eq("io state", st.state.name(), "TASK_FINISHED", &st);
        let seen = p.stdout("io").await;
        eprintln!("io: {seen:?}");
        c.check(
            get(&seen, "io_max").ends_with(" rbps=1048576 wbps=max riops=max wiops=200"),
            || format!("io.max of a task asking for bandwidth: {seen:?}"),
        );

        // Its own network namespace, reachable on its mapped host port.
        let port = 31005;
        let net = json!({"type": "MESOS", "network_infos": [{"name": "keel",
            "port_mappings": [{"host_port": port, "container_port": 8080}]}]});
        let ports = json!({"name": "ports", "type": "RANGES",
            "ranges": {"range": [{"begin": port, "end": port}]}});
        let server = p.task("server", &["serve", "8080"], net);
        p.fw.launch(server, 0.1, 32.0, vec![ports]).await;
        let st = p.fw.until("server", TaskState::TASK_RUNNING, TASK).await;
        c.eq("server state", st.state.name(), "TASK_RUNNING", &st);
        let target = format!("127.0.0.1:{port}");
        let plain = json!({"type": "MESOS"});
        let st = p
            .run_with("client", &["connect", &target], 0.1, 32.0, plain, vec![])
            .await;
        c.eq("client state", st.state.name(), "TASK_FINISHED", &st);
        let reply = p.stdout("client").await;
        c.eq(
            "reply through the port mapping",
            get(&reply, "reply"),
            "pong",
            &reply,
        );
        let own_net = json!({"type": "MESOS", "network_infos": [{"name": "keel"}]});
        let st = p
            .run_with("netview", &["whoami"], 0.1, 32.0, own_net, vec![])
            .await;
        c.eq("netview state", st.state.name(), "TASK_FINISHED", &st);
        let seen = p.stdout("netview").await;
        let mut ifaces: Vec<&str> = get(&seen, "interfaces").split(',').collect();
        ifaces.sort();
        c.check(ifaces == ["eth0", "lo"], || {
            format!("interfaces in the task's network namespace: {ifaces:?}")
        });

        // Kill: every process goes, and with them the container's cgroup.
        p.fw.kill("server").await;
        let st = p.fw.until("server", TaskState::TASK_KILLED, TASK).await;
        c.eq("killed server state", st.state.name(), "TASK_KILLED", &st);
        let st = p
            .run(
                "after",
                &["ls", "/sys/fs/cgroup/keel/service/keel"],
                0.1,
                32.0,
            )
            .await;
        c.eq("after state", st.state.name(), "TASK_FINISHED", &st);
        let listing = p.stdout_text("after").await;
        let containers = listing
            .lines()
            .filter(|l| {
                l.starts_with("entry=")
                    && !l.contains("supervisors")
                    && !l.contains("cgroup.")
                    && !l.contains('.')
            })
            .count();
        c.check(containers == 1, || {
            format!("{containers} container cgroups, want only the listing task's own: {listing}")
        });

        // Launch -> TASK_RUNNING, as the framework on the host sees it
        // (through QEMU's user networking: `cargo xtask guest-bench`
        // measures inside the guest).
        let mut latencies = Vec::new();
        for i in 0..10 {
            let id = format!("lat{i}");
            let task = p.task(&id, &["sleep", "0"], json!({"type": "MESOS"}));
            p.fw.launch(task, 0.1, 16.0, vec![]).await;
            let start = Instant::now();
            let st = p.fw.until(&id, TaskState::TASK_RUNNING, TASK).await;
            latencies.push(start.elapsed());
            c.eq("latency task state", st.state.name(), "TASK_RUNNING", &st);
            p.fw.until(&id, TaskState::TASK_FINISHED, TASK).await;
        }
        latencies.sort();
        eprintln!(
            "guest launch->TASK_RUNNING over {}: p50 {:?} max {:?}",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
    });
    let panicked = guest.console_has("panicked");
    c.check(!panicked, || {
        format!("a panic on the console:\n{}", guest.guest.console())
    });
    eprintln!("guest isolation test took {:?}", started.elapsed());
    assert!(
        c.0.is_empty(),
        "{} checks failed:\n{}",
        c.0.len(),
        c.0.join("\n")
    );
}
