//! The real TPM reader (tss-esapi) against swtpm running as a TCP socket
//! TPM on the host, through tpm2-tss's swtpm TCTI (libtss2-tcti-swtpm0,
//! which libtss2-dev pulls in). Skipped, saying so, when swtpm is missing;
//! .ci/run installs it.

use std::path::Path;

use keel_agent::discovery::tpm::{self, Esapi, TpmConnector, TpmSession, props};
use keel_api::inventory::TpmInfo;

/// One `swtpm socket` with its state in a directory (the lab harness's),
/// killed on drop.
struct Swtpm(keel_hardware_tests::swtpm::Swtpm);

impl Swtpm {
    fn start(state: &Path) -> Swtpm {
        Swtpm(keel_hardware_tests::swtpm::Swtpm::start_tcp(state).expect("cannot start swtpm"))
    }

    fn tcti(&self) -> String {
        self.0.tcti().expect("a TCP swtpm has a TCTI")
    }

    fn open(&self) -> Box<dyn TpmSession> {
        Esapi.connect(&self.tcti()).unwrap()
    }

    fn read(&self) -> TpmInfo {
        tpm::read_session(self.open().as_mut())
    }
}

fn have_swtpm() -> bool {
    let found = keel_hardware_tests::swtpm::Swtpm::installed();
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
