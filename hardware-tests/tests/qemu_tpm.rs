//! `--agent-admission tpm` with Keel's appliance in a QEMU guest and its
//! own swtpm (`docs/design/0006-trust.md`, "TPM"): the guest knows only
//! the cluster CA's fingerprint (`keel.ca=`) and has no join token. Its
//! EK not on the master's `--tpm-ek-allow` list, it waits as pending with
//! no session; listed, it is admitted through a real credential
//! activation and quote; after a reboot it comes back as the same agent on
//! the certificate it was issued (kept on its work disk).
//!
//! Needs what `tests/qemu.rs` needs (the bundle from `cargo xtask pxe`,
//! qemu-system-x86, swtpm); `#[ignore]`d like it: `cargo test -p
//! keel-hardware-tests --test qemu_tpm -- --ignored`. The replayed quote
//! and the AK outside the TPM are refused in `master/tests/tpm_admission.rs`
//! (a guest's agent cannot be made to cheat).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_hardware_tests::lab::{Lab, bundle_dir, free_port, workspace_root};
use keel_hardware_tests::qemu::Guest;
use keel_hardware_tests::shape::Shape;
use keel_pki::{Ca, Material, Role};

/// Generous for TCG on a busy 2-core machine.
const BOOT: Duration = Duration::from_secs(300);

fn tail(g: &Guest) -> String {
    let text = g.console();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn until<T>(g: &Guest, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOOT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {BOOT:?}\n--- console tail ---\n{}",
            tail(g)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "boots a QEMU guest for minutes; run by hand"]
fn a_guest_waits_pending_is_admitted_by_its_tpm_once_listed_and_keeps_its_id() {
    let dir: PathBuf = workspace_root().join("target/keel-vm-tests/tpm");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The cluster CA, a master certificate good for the guest's view of
    // the host (10.0.2.2), an admin for the lab's client.
    let ca = Ca::create("qemu tpm test").unwrap();
    let port = free_port().unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let m = ca
        .issue(
            Role::Master,
            &format!("10.0.2.2:{port}"),
            &["127.0.0.1".into(), "10.0.2.2".into()],
            week,
        )
        .unwrap();
    let admin = ca.issue(Role::Admin, "admin", &[], week).unwrap();
    let admin = Material::from_pem(ca.cert_pem(), Some((&admin.cert_pem, &admin.key_pem))).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let allow = dir.join("ek-allow");
    std::fs::write(&allow, "# nobody yet\n").unwrap();
    let flags: Vec<String> = [
        "--tls-ca",
        &file("ca.crt", ca.cert_pem()),
        "--tls-ca-key",
        &file("ca.key", ca.key_pem()),
        "--tls-cert",
        &file("m.crt", &m.cert_pem),
        "--tls-key",
        &file("m.key", &m.key_pem),
        "--agent-admission",
        "tpm",
        "--tpm-ek-allow",
        &allow.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let lab = Lab::start_with(&dir, &bundle_dir(), port, &flags, Some(admin))
        .unwrap_or_else(|e| panic!("{e}"));

    let shape =
        Shape::load(&workspace_root().join("hardware-tests/shapes/pxe-two-nics.json")).unwrap();
    let fingerprint = ca.fingerprint().unwrap();
    let append = lab.append(&format!(
        "quiet keel.ca={fingerprint} keel.workdisk=serial:KEEL-WORK"
    ));
    let mut spec = lab.kernel_guest(shape, append);
    spec.allow_reboot = true;
    let mut g = Guest::start(spec).unwrap();
    let client = lab.api.client();
    let pending = || lab.rt.block_on(client.pending_agents(false)).ok();
    let agents = || lab.rt.block_on(lab.api.agents()).unwrap_or_default();

    // Not listed: attested, then pending, with no session.
    let waiting = until(&g, "the guest pending", || {
        pending().and_then(|p| p.agents.into_iter().next())
    });
    assert!(agents().is_empty(), "a pending guest has no session");
    std::thread::sleep(Duration::from_secs(5));
    assert!(agents().is_empty(), "still none: {}", tail(&g));

    // Listed: admitted at its next attempt.
    std::fs::write(&allow, format!("sha256:{}\n", waiting.ek_sha256)).unwrap();
    let agent = until(&g, "the guest admitted", || agents().into_iter().next());
    // The agent's own inventory shows the fingerprint the master checked.
    let inventory = lab.rt.block_on(lab.api.inventory(&agent.id)).unwrap();
    let ek = inventory
        .tpm
        .and_then(|t| t.ek)
        .expect("no EK in the inventory");
    assert_eq!(ek.sha256, waiting.ek_sha256);
    assert!(pending().is_some_and(|p| p.agents.is_empty()));

    // A reboot: the same agent, on its certificate.
    g.ctrl_alt_del().unwrap();
    g.wait_for(
        "Reboot requested; stopping keel-agent",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&g)));
    let again = until(&g, "the guest back", || {
        agents()
            .into_iter()
            .find(|a| a.id == agent.id && a.reregistered_time.is_some())
    });
    assert_eq!(again.id, agent.id);
    assert_eq!(agents().len(), 1, "the reboot made a second agent");
    let log = std::fs::read_to_string(&lab.master.log).unwrap();
    assert_eq!(
        log.matches("agent admitted by its TPM").count(),
        1,
        "the reboot did not attest again: {log}"
    );
}
