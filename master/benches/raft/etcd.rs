//! The same writes against a 3-member etcd cluster on loopback (Debian's
//! `etcd-server`), for comparison in the same run: etcd processes with
//! their default timing and fsync, written to through etcd's JSON gateway
//! (`POST /v3/kv/put`) on kept-alive HTTP/1.1 connections to the leader.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Etcd {
    children: Vec<Child>,
    pub clients: Vec<SocketAddr>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Etcd {
    pub async fn start(dir: &Path) -> Etcd {
        let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let initial = (0..3)
            .map(|i| format!("e{i}=http://127.0.0.1:{}", peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        let children = (0..3)
            .map(|i| {
                let client = format!("http://127.0.0.1:{}", clients[i]);
                let peer = format!("http://127.0.0.1:{}", peers[i]);
                Command::new("etcd")
                    .args(["--name", &format!("e{i}")])
                    .arg("--data-dir")
                    .arg(dir.join(format!("e{i}")))
                    .args(["--listen-client-urls", &client])
                    .args(["--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer])
                    .args(["--initial-advertise-peer-urls", &peer])
                    .args(["--initial-cluster", &initial])
                    .args(["--initial-cluster-state", "new"])
                    .args(["--initial-cluster-token", "keel-bench"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start etcd")
            })
            .collect();
        let etcd = Etcd {
            children,
            clients: clients
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
        };
        etcd.wait_ready().await;
        etcd
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.leader().await.is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not elect a leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client address of the member that leads.
    pub async fn leader(&self) -> Option<SocketAddr> {
        for addr in &self.clients {
            let Ok(mut c) = Client::connect(*addr).await else {
                continue;
            };
            let Ok(status) = c.post("/v3/maintenance/status", "{}").await else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&status).ok()?;
            let me = v["header"]["member_id"].as_str();
            if me.is_some() && me == v["leader"].as_str() {
                return Some(*addr);
            }
        }
        None
    }
}

/// One kept-alive HTTP/1.1 connection.
pub struct Client {
    conn: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(Client {
            conn: BufReader::new(tcp),
            addr,
        })
    }

    pub async fn post(&mut self, path: &str, body: &str) -> std::io::Result<String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.conn.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.conn.read_line(&mut line).await?;
        if !line.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("etcd answered {line:?}")));
        }
        let mut length = 0;
        loop {
            line.clear();
            self.conn.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.conn.read_exact(&mut body).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Puts `key` = `value` (etcd's gateway wants both in base64).
    pub async fn put(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        self.post("/v3/kv/put", &body).await.map(|_| ())
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
