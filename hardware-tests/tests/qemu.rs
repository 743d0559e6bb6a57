//! Boots QEMU guests from Keel's PXE bundle against a keel-master on the
//! host and checks what the master reports.
//!
//! They need the bundle in target/pxe (or `KEEL_PXE_DIR`) and the release
//! keel-master, both made by `cargo xtask pxe`, plus qemu-system-x86,
//! ipxe-qemu and swtpm. `cargo xtask test` builds the bundle and runs them;
//! a plain `cargo test` skips them (`#[ignore]`) because they take minutes of
//! TCG time on two cores: run `cargo test -p keel-hardware-tests --test qemu
//! -- --ignored` by hand. Each test leaves its guests' console logs under
//! target/keel-vm-tests/<test>/.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use keel_hardware_tests::api::has_any_mac;
use keel_hardware_tests::check::compare;
use keel_hardware_tests::lab::{Lab, bundle_dir, workspace_root};
use keel_hardware_tests::qemu::Guest;
use keel_hardware_tests::shape::Shape;

/// One guest at a time: TCG on two shared cores is slow enough.
static SERIAL: Mutex<()> = Mutex::new(());

/// Generous for TCG on a busy 2-core machine (an idle one needs ~15 s).
const BOOT: Duration = Duration::from_secs(240);

fn shape(name: &str) -> Shape {
    let path = workspace_root()
        .join("hardware-tests/shapes")
        .join(format!("{name}.json"));
    Shape::load(&path).unwrap()
}

fn lab(test: &str) -> Lab {
    let dir: PathBuf = workspace_root().join("target/keel-vm-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Lab::start(&dir, &bundle_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// The console's last lines, for failure messages.
fn tail(g: &Guest) -> String {
    let text = g.console();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn wait(g: &mut Guest, needle: &str, within: Duration) -> String {
    match g.wait_for(needle, within) {
        Ok((line, _)) => line,
        Err(e) => panic!("{e}\n--- console tail ---\n{}", tail(g)),
    }
}

#[test]
#[ignore = "boots QEMU guests for minutes; cargo xtask test runs it"]
fn pxe_guest_matches_its_shape_and_keeps_its_id_across_a_reboot() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = lab("pxe");
    let shape = shape("pxe-two-nics");
    let mut spec = lab
        .pxe_guest(shape.clone(), "keel.workdisk=serial:KEEL-WORK")
        .unwrap();
    spec.allow_reboot = true;
    let mut g = Guest::start(spec).unwrap();

    // PXE: iPXE ran the bundle's script, which passed BOOTIF, so init ran
    // DHCP on the boot NIC only.
    wait(
        &mut g,
        "controllers for /sys/fs/cgroup/keel/: cpu io memory pids",
        BOOT,
    );
    wait(&mut g, "tpm0 present (TPM 2.0)", BOOT);
    let dhcp = wait(&mut g, "dhcp on ", BOOT);
    assert!(dhcp.ends_with("(52:54:00:4b:01:01)"), "{dhcp}");
    wait(&mut g, "is 10.0.2.15/24", BOOT);
    assert_eq!(g.console().matches("dhcp on ").count(), 1, "{}", tail(&g));
    wait(&mut g, "formatted now", BOOT);

    let macs: Vec<String> = shape.nics.iter().map(|n| n.mac.clone()).collect();
    let (agent, inv, _) = lab
        .rt
        .block_on(
            lab.api
                .wait_for_agent("the guest's MACs", BOOT, |_, inv| has_any_mac(inv, &macs)),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- console tail ---\n{}", tail(&g)));
    let mismatches: Vec<String> = compare(&shape, &inv)
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{inv:#?}");
    // The agent read the guest's swtpm through tss-esapi and
    // /dev/tpmrm0 (compare() checked it is readable: the shape has a TPM).
    let tpm = inv.tpm.clone().expect("the agent reported no TPM");
    assert!(tpm.present, "{tpm:#?}");
    assert_eq!(tpm.manufacturer.as_deref(), Some("IBM"), "{tpm:#?}");
    assert_eq!(tpm.device.as_deref(), Some("/dev/tpmrm0"), "{tpm:#?}");
    let ek = tpm.ek.clone().expect("no endorsement key");
    assert_eq!(agent.hostname, "keel-5254004b0101");
    // iPXE fetched the script and the bundle over HTTP from the host.
    assert_eq!(
        lab.served(),
        ["boot.ipxe", "vmlinuz", "initramfs.img"],
        "PXE requests"
    );

    // A clean reboot (Ctrl-Alt-Del -> SIGINT to init), PXE again, same disk.
    g.ctrl_alt_del().unwrap();
    wait(
        &mut g,
        "Reboot requested; stopping keel-agent",
        Duration::from_secs(60),
    );
    wait(&mut g, "existing file system", BOOT);
    let id = agent.id.clone();
    let (again, again_inv, _) = lab
        .rt
        .block_on(
            lab.api
                .wait_for_agent("the same id, re-registered", BOOT, |a, _| {
                    a.id == id && a.reregistered_time.is_some()
                }),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- console tail ---\n{}", tail(&g)));
    assert_eq!(again.id, agent.id);
    // The same swtpm state: the same endorsement key after the reboot.
    assert_eq!(again_inv.tpm.and_then(|t| t.ek), Some(ek));
    let agents = lab.rt.block_on(lab.api.agents()).unwrap();
    assert_eq!(
        agents.len(),
        1,
        "the reboot made a second agent: {agents:?}"
    );
}

#[test]
#[ignore = "boots QEMU guests for minutes; cargo xtask test runs it"]
fn kernel_booted_guest_of_another_shape_matches() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab("kernel");
    let shape = shape("kernel-scsi");
    // The interface other tools rely on, plus `quiet`.
    let append = lab.append("quiet");
    let mut g = Guest::start(lab.kernel_guest(shape.clone(), append)).unwrap();
    wait(
        &mut g,
        "work dirs in RAM: no file system labelled KEEL-DATA",
        BOOT,
    );
    let macs: Vec<String> = shape.nics.iter().map(|n| n.mac.clone()).collect();
    let (_, inv, _) = lab
        .rt
        .block_on(
            lab.api
                .wait_for_agent("the guest's MACs", BOOT, |_, inv| has_any_mac(inv, &macs)),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- console tail ---\n{}", tail(&g)));
    let mismatches: Vec<String> = compare(&shape, &inv)
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{inv:#?}");
}

#[test]
#[ignore = "boots QEMU guests for minutes; cargo xtask test runs it"]
fn malformed_masters_are_retried_with_backoff_and_a_missing_nic_driver_is_named() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab("malformed");
    let shape = shape("bad-input");
    let append = "console=ttyS0 keel.role=agent keel.masters=10.0.2.2 panic=-1 quiet".to_string();
    let mut g = Guest::start(lab.kernel_guest(shape, append)).unwrap();
    let missing = wait(&mut g, "[10ec:8139] has no driver: needs module ", BOOT);
    assert!(
        missing.contains("8139too") && missing.ends_with("which this initramfs does not carry"),
        "{missing}"
    );
    let malformed = "keel.masters=\"10.0.2.2\" is malformed: entry \"10.0.2.2\" has no port (want HOST:PORT); keel-agent not started";
    wait(&mut g, malformed, BOOT);
    // The retries back off 1 s, 2 s, 4 s. Kernel messages can interleave
    // with init's lines on the serial console, so each attempt is looked
    // for in the console text with line breaks removed.
    // (The line that announced the malformed list carries attempt 1.)
    for attempt in [2, 3] {
        wait(
            &mut g,
            &format!("(attempt {attempt})"),
            Duration::from_secs(30),
        );
    }
    let flat = g.console().replace(['\r', '\n'], "");
    for (attempt, delay) in [(1, 1), (2, 2), (3, 4)] {
        let phrase = format!("again in {delay}s (attempt {attempt})");
        assert!(flat.contains(&phrase), "no {phrase:?} on the console");
    }
    let console = g.console();
    for bad in ["Kernel panic", "panicked", "started keel-agent"] {
        assert!(
            !console.contains(bad),
            "{bad:?} on the console:\n{}",
            tail(&g)
        );
    }
    assert!(lab.rt.block_on(lab.api.agents()).unwrap().is_empty());
}

#[test]
#[ignore = "boots QEMU guests for minutes; cargo xtask test runs it"]
fn an_unreachable_master_is_retried_with_backoff() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = lab("unreachable");
    let shape = shape("bad-input");
    // A port nothing listens on.
    let port = keel_hardware_tests::lab::free_port().unwrap();
    let append =
        format!("console=ttyS0 keel.role=agent keel.masters=10.0.2.2:{port} panic=-1 quiet");
    let mut g = Guest::start(lab.kernel_guest(shape, append)).unwrap();
    wait(&mut g, "started keel-agent", BOOT);
    let refused = format!("cannot connect to master 10.0.2.2:{port}");
    wait(&mut g, &refused, BOOT);
    wait(&mut g, "reconnecting", Duration::from_secs(30));
    wait(&mut g, &refused, Duration::from_secs(30));
    wait(&mut g, "reconnecting", Duration::from_secs(30));
    let console = g.console();
    for bad in ["Kernel panic", "panicked", "keel-agent exited"] {
        assert!(
            !console.contains(bad),
            "{bad:?} on the console:\n{}",
            tail(&g)
        );
    }
}
