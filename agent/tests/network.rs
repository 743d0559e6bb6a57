//! A task in its own network namespace on a bridge of its own (a test
//! bridge and range, so other agents on this machine are not disturbed):
//! it sees only `lo` and `eth0`, serves HTTP, and is reached on its address
//! and through the mapped host port; when it ends the namespace, veth and
//! forwarding go away.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_agent::executor::{ExecutorCall, ExecutorConfig, ExecutorHandle};
use keel_agent::isolation::Feature;
use keel_agent::isolation::network::NetworkConfig;
use keel_agent::isolation::network::bridge::{BridgeNetwork, veth_names};
use keel_api::pb;
use serde_json::json;
use tokio::sync::mpsc;

struct Setup {
    exec: ExecutorHandle,
    rx: mpsc::UnboundedReceiver<pb::StatusUpdate>,
    dir: tempfile::TempDir,
    bridge: String,
    subnet: String,
    _cleanup: support::Cleanup,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // The netns directory is a bind mount of itself.
        let _ = rustix::mount::unmount(
            self.dir.path().join("netns"),
            rustix::mount::UnmountFlags::DETACH,
        );
    }
}

fn setup() -> Option<Setup> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: network namespaces cannot be tested here");
        return None;
    }
    let n = fastrand::u8(1..250);
    let bridge = format!("kt{:06x}", fastrand::u32(..0xff_ffff));
    let subnet = format!("10.254.{n}.0/24");
    let dir = tempfile::tempdir().unwrap();
    let net = NetworkConfig {
        name: "keel".into(),
        bridge: bridge.clone(),
        subnet: subnet.parse().unwrap(),
        netns_dir: dir.path().join("netns"),
    };
    let features = [Feature::PidNs, Feature::MountNs];
    let mut config = ExecutorConfig::new(dir.path().join("work"));
    support::only_namespaces(&mut config, &features);
    config.use_network("keel", net.subnet, Arc::new(BridgeNetwork::new(net)));
    let (exec, rx) = support::start_runtime(config);
    Some(Setup {
        exec,
        rx,
        _cleanup: support::Cleanup(dir.path().to_path_buf()),
        dir,
        bridge,
        subnet,
    })
}

impl Setup {
    fn launch(&self, id: &str, cmd: &str, container: serde_json::Value, host_port: u16) {
        let task = json!({"name": id, "task_id": {"value": id},
            "agent_id": {"value": "agent-S1"}, "command": {"value": cmd},
            "container": container,
            "resources": [{"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": host_port, "end": host_port}]}}]});
        support::launch_into(&self.exec, json!({"user": "root", "name": "t"}), &task);
    }

    async fn next(&mut self) -> pb::TaskStatus {
        support::next_acked(&self.exec, &mut self.rx).await
    }

    fn sandbox(&self, task: &str) -> PathBuf {
        self.dir.path().join(format!(
            "work/slaves/agent-S1/frameworks/fw/executors/{task}/runs/latest"
        ))
    }
}

async fn http_get(addr: &str) -> Option<String> {
    let url = format!("http://{addr}/index.html");
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    resp.text().await.ok()
}

#[tokio::test]
async fn a_task_on_the_bridge_is_reached_on_its_address_and_its_mapped_port() {
    let Some(mut s) = setup() else { return };
    let host_port = support::free_port();
    let container = json!({"type": "MESOS", "network_infos": [{"name": "keel",
        "port_mappings": [{"host_port": host_port, "container_port": 8080}]}]});
    let cmd = "cat /proc/net/dev > netdev; echo hello > index.html; \
               exec busybox httpd -f -p 8080 -h /mnt/mesos/sandbox";
    s.launch("web", cmd, container, host_port);
    let running = loop {
        let st = s.next().await;
        assert!(!st.state.ends_with("FAILED"), "{st:?}");
        if st.state == "TASK_RUNNING" {
            break st;
        }
    };
    let gateway = s.subnet.replace(".0/24", ".1");
    let ip = s.subnet.replace(".0/24", ".2");
    // The task's status names its container's address (Mesos'
    // container_status.network_infos).
    let cs = running.container_status.expect("container_status");
    assert_eq!(cs.ip_addresses, std::slice::from_ref(&ip), "{cs:?}");
    let deadline = Instant::now() + support::WAIT;
    let (direct, mapped) = loop {
        let direct = http_get(&format!("{ip}:8080")).await;
        let mapped = http_get(&format!("127.0.0.1:{host_port}")).await;
        if let (Some(d), Some(m)) = (&direct, &mapped) {
            break (d.clone(), m.clone());
        }
        assert!(
            Instant::now() < deadline,
            "never reached: {direct:?} {mapped:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((direct.as_str(), mapped.as_str()), ("hello\n", "hello\n"));
    let netdev = std::fs::read_to_string(s.sandbox("web").join("netdev")).unwrap();
    let ifaces: Vec<&str> = netdev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces.len(), 2, "{netdev}");
    assert!(
        ifaces.contains(&"lo") && ifaces.contains(&"eth0"),
        "{netdev}"
    );
    let bridge_addr = std::process::Command::new("ip")
        .args(["-4", "addr", "show", &s.bridge])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bridge_addr.stdout).contains(&gateway));

    s.exec.call(ExecutorCall::Kill(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "web".into(),
        grace_period_ms: Some(2_000),
    }));
    loop {
        let st = s.next().await;
        if st.state == "TASK_KILLED" {
            break;
        }
    }
    // Everything the container had on the host is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(http_get(&format!("127.0.0.1:{host_port}")).await.is_none());
    let netns: Vec<_> = std::fs::read_dir(s.dir.path().join("netns"))
        .unwrap()
        .flatten()
        .collect();
    assert!(netns.is_empty(), "{netns:?}");
    let links = std::fs::read_dir("/sys/class/net").unwrap();
    let container_id = std::fs::read_link(s.sandbox("web")).unwrap();
    let (host_end, _) = veth_names(container_id.to_str().unwrap());
    assert!(
        !links.flatten().any(|l| l.file_name() == host_end.as_str()),
        "{host_end} is still there"
    );
}

#[tokio::test]
async fn unknown_networks_and_foreign_ports_are_refused() {
    let Some(mut s) = setup() else { return };
    let other = json!({"network_infos": [{"name": "elsewhere"}]});
    s.launch("a", "true", other, 31000);
    let st = s.next().await;
    assert_eq!(
        (st.state.as_str(), st.reason.as_str()),
        ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED")
    );
    assert!(st.message.contains("elsewhere"), "{st:?}");
    let foreign = json!({"network_infos": [{"name": "keel",
        "port_mappings": [{"host_port": 40000, "container_port": 80}]}]});
    s.launch("b", "true", foreign, 31000);
    let st = s.next().await;
    assert_eq!(
        (st.state.as_str(), st.reason.as_str()),
        ("TASK_FAILED", "REASON_TASK_INVALID")
    );
    assert!(st.message.contains("40000"), "{st:?}");
}

/// Sends `what` to `to` from `client` until an answer comes (the task may
/// not listen yet).
async fn udp_ask(client: &tokio::net::UdpSocket, to: &str, what: &str) -> String {
    let deadline = Instant::now() + support::WAIT;
    let mut buf = [0u8; 1500];
    loop {
        client.send_to(what.as_bytes(), to).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await;
        if let Ok(Ok(n)) = got {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(Instant::now() < deadline, "no udp answer from {to}");
    }
}

#[tokio::test]
async fn udp_on_a_mapped_port_reaches_the_task_per_client() {
    let Some(mut s) = setup() else { return };
    let host_port = support::free_port();
    let container = json!({"type": "MESOS", "network_infos": [{"name": "keel",
        "port_mappings": [{"host_port": host_port, "container_port": 9000, "protocol": "udp"}]}]});
    // A UDP echo server that names the peer it saw.
    let cmd = r#"exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 9000, Proto => "udp") or die "bind: $!"; while (defined $s->recv($m, 1500)) { $s->send("$m from " . $s->peerhost . ":" . $s->peerport) }'"#;
    s.launch("dns", cmd, container, host_port);
    loop {
        let st = s.next().await;
        assert!(!st.state.ends_with("FAILED"), "{st:?}");
        if st.state == "TASK_RUNNING" {
            break;
        }
    }
    let gateway = s.subnet.replace(".0/24", ".1");
    let mapped = format!("127.0.0.1:{host_port}");
    let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from_a = udp_ask(&a, &mapped, "a").await;
    let from_b = udp_ask(&b, &mapped, "b").await;
    // Each client is its own flow: the task sees two peers (the agent's
    // flow sockets, from the bridge's address).
    assert!(
        from_a.starts_with(&format!("a from {gateway}:")),
        "{from_a}"
    );
    assert!(
        from_b.starts_with(&format!("b from {gateway}:")),
        "{from_b}"
    );
    assert_ne!(
        from_a.rsplit(':').next(),
        from_b.rsplit(':').next(),
        "one flow per client"
    );
    assert_eq!(udp_ask(&a, &mapped, "a").await, from_a, "a keeps its flow");

    s.exec.call(ExecutorCall::Kill(pb::KillTask {
        framework_id: "fw".into(),
        task_id: "dns".into(),
        grace_period_ms: Some(2_000),
    }));
    loop {
        if s.next().await.state == "TASK_KILLED" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::net::UdpSocket::bind(("0.0.0.0", host_port)).is_ok(),
        "the host port is given back"
    );
}
