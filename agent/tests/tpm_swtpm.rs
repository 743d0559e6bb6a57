//! The real TPM reader (tss-esapi) against swtpm running as a TCP socket
//! TPM on the host, through tpm2-tss's swtpm TCTI (libtss2-tcti-swtpm0,
//! which libtss2-dev pulls in). Skipped, saying so, when swtpm is missing;
//! .ci/run installs it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_agent::discovery::tpm::{self, Esapi, TpmConnector, TpmSession, props};
use keel_api::inventory::TpmInfo;

/// One `swtpm socket` with its state in a directory; killed on drop.
struct Swtpm {
    child: Child,
    port: u16,
}

impl Swtpm {
    fn start(state: &Path) -> Swtpm {
        std::fs::create_dir_all(state).unwrap();
        let port = free_port_pair();
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start swtpm");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not listen on {port}");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("swtpm exited with {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, port }
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn open(&self) -> Box<dyn TpmSession> {
        Esapi.connect(&self.tcti()).unwrap()
    }

    fn read(&self) -> TpmInfo {
        tpm::read_session(self.open().as_mut())
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port P with P + 1 free too (the swtpm TCTI's control port).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports");
}

fn have_swtpm() -> bool {
    let found = Command::new("swtpm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: swtpm not found (Debian package swtpm; .ci/run installs it)");
    }
    found
}

#[test]
fn swtpm_identity_and_a_stable_endorsement_key() {
    if !have_swtpm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = Swtpm::start(&dir.path().join("a"));

    let raw = a.open().fixed_properties().unwrap();
    eprintln!("swtpm properties: {raw:x?}");
    let tags: Vec<u32> = raw.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tags,
        (props::FIRST..props::FIRST + props::COUNT).collect::<Vec<_>>()
    );

    let first = a.read();
    eprintln!("{first:#?}");
    assert_eq!(first.error, None);
    assert!(first.present);
    assert_eq!(first.family.as_deref(), Some("2.0"));
    assert_eq!(first.manufacturer.as_deref(), Some("IBM"));
    assert_eq!(first.vendor.as_deref(), Some("SW   TPM"));
    let firmware = first.firmware_version.clone().unwrap();
    assert_eq!(firmware.split('.').count(), 4, "{firmware}");
    let ek = first.ek.clone().unwrap();
    assert_eq!(ek.algorithm, "rsa2048");
    assert_eq!(ek.sha256.len(), 64);
    assert!(ek.sha256.bytes().all(|c| c.is_ascii_hexdigit()));

    // Same TPM, a new connection: the same key from the same seed.
    assert_eq!(a.read(), first);

    // The same state after swtpm restarts (a reboot).
    drop(a);
    let again = Swtpm::start(&dir.path().join("a"));
    assert_eq!(again.read().ek, first.ek);

    // Another TPM: another endorsement seed, another key.
    let b = Swtpm::start(&dir.path().join("b"));
    let other = b.read();
    assert_eq!(other.error, None);
    assert_eq!(other.manufacturer, first.manufacturer);
    assert_ne!(other.ek.unwrap().sha256, ek.sha256);
}
