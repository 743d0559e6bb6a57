//! A test network for multi-master tests that need real partitions: one
//! network namespace per master, joined by a bridge in the test's own
//! namespace (where the clients run), all made with iproute2 and removed on
//! drop. Needs root; [`Testnet::new`] returns `None` without it.
//!
//! Cutting a master off from the other masters (not from the clients, as
//! when a leader loses its peers but not its users) is done with blackhole
//! routes for the peers' addresses on both sides: no firewall needed.

use std::net::Ipv4Addr;
use std::process::Command;

pub struct Testnet {
    prefix: String,
    subnet: [u8; 3],
    pub hosts: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Testnet {
    /// `hosts` namespaces on a fresh /24, or `None` when not root.
    pub fn new(hosts: usize) -> Option<Testnet> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let tag = fastrand::u32(..) & 0xffff;
        let net = Testnet {
            prefix: format!("kh{tag:04x}"),
            subnet: [10, fastrand::u8(100..200), fastrand::u8(1..255)],
            hosts,
        };
        let bridge = net.bridge();
        // While the bridge is gone (before it is made, after it is
        // removed), the subnet goes nowhere instead of out of the default
        // route to the real network.
        ip(&[
            "route",
            "add",
            "blackhole",
            &net.subnet_text(),
            "metric",
            "4000",
        ]);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway()),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..hosts {
            let ns = net.netns(i);
            let veth = format!("{}v{i}", net.prefix);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(net)
    }

    fn subnet_text(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn netns(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    /// The address of host `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, i as u8 + 1)
    }

    /// The clients' address on the bridge.
    fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// A command that runs `program` inside host `i`'s namespace.
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns(i)]).arg(program);
        cmd
    }

    fn routes(&self, i: usize, verb: &str) {
        for j in (0..self.hosts).filter(|j| *j != i) {
            for (from, to) in [(i, j), (j, i)] {
                let dst = format!("{}/32", self.addr(to));
                ip(&["-n", &self.netns(from), "route", verb, "blackhole", &dst]);
            }
        }
    }

    /// Cuts host `i` off from the other hosts; the clients still reach it.
    pub fn isolate(&self, i: usize) {
        self.routes(i, "add");
    }

    /// Undoes [`Testnet::isolate`].
    pub fn heal(&self, i: usize) {
        self.routes(i, "del");
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth in it, and its peer.
        for i in 0..self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", &self.subnet_text()])
            .output();
    }
}
