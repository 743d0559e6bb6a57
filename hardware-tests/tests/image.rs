//! Boots Keel's mkosi image (`cargo xtask image`, target/image/out) in QEMU
//! under OVMF: a master guest (the UKI with `keel.role=master` added) and an
//! agent guest booted from its disk through systemd-boot, registering with
//! that master. Both come from the same image; each runs from its own copy.
//!
//! `#[ignore]`d: `cargo xtask image-test` runs it (several minutes of TCG;
//! not part of CI). Console logs stay in target/keel-vm-tests/image/.

use std::time::Duration;

use keel_hardware_tests::api::{MasterApi, has_any_mac};
use keel_hardware_tests::check::compare;
use keel_hardware_tests::image::{OVMF_CODE, OVMF_VARS, boot_entry, copy_disk, uki_cmdline};
use keel_hardware_tests::lab::{free_port, workspace_root};
use keel_hardware_tests::qemu::{Boot, Guest, GuestSpec};
use keel_hardware_tests::shape::{DiskKind, DiskSpec, MIB, NicSpec, Shape};

const BOOT: Duration = Duration::from_secs(420);
/// The image's data partition before first boot.
const DATA_BUILT: u64 = 256 * MIB;

fn shape(name: &str, mac: &str) -> Shape {
    Shape {
        name: name.into(),
        vcpus: 2,
        memory_mib: 1536,
        disks: vec![DiskSpec {
            kind: DiskKind::Virtio,
            size_mib: 1024,
            serial: Some(format!("KEEL-{}", name.to_uppercase())),
        }],
        nics: vec![NicSpec {
            mac: mac.into(),
            model: Some("virtio-net-pci".into()),
            driver: None,
        }],
        tpm: false,
    }
}

fn tail(g: &Guest) -> String {
    let text = g.console();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn wait(g: &mut Guest, needle: &str) -> String {
    match g.wait_for(needle, BOOT) {
        Ok((line, _)) => line,
        Err(e) => panic!("{e}\n--- console tail ---\n{}", tail(g)),
    }
}

#[test]
#[ignore = "boots the mkosi image for minutes; cargo xtask image-test runs it"]
fn image_boots_a_master_and_an_agent_that_registers_with_it() {
    let out = workspace_root().join("target/image/out");
    let raw = out.join("keel.raw");
    let uki = out.join("keel.efi");
    assert!(raw.exists(), "no {}; run cargo xtask image", raw.display());
    let dir = workspace_root().join("target/keel-vm-tests/image");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cmdline = uki_cmdline(&uki, &dir).unwrap();
    assert!(cmdline.contains("roothash="), "{cmdline}");

    // The master: the same UKI, handed `keel.role=master` by the firmware.
    let port = free_port().unwrap();
    let mshape = shape("image-master", "52:54:00:4b:30:01");
    let mdir = dir.join(&mshape.name);
    copy_disk(&raw, &mdir.join("disk0.raw"), 1024 * MIB).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::copy(OVMF_VARS, mdir.join("vars.fd")).unwrap();
    let mut master = Guest::start(GuestSpec {
        boot: Boot::Uefi {
            code: OVMF_CODE.into(),
            vars: mdir.join("vars.fd"),
            kernel: Some((uki.clone(), format!("{cmdline} keel.role=master"))),
        },
        dir: mdir,
        shape: mshape,
        allow_reboot: false,
        forwards: vec![(port, 5050)],
    })
    .unwrap();
    let root = wait(&mut master, "root file system: ");
    assert!(
        root.ends_with("erofs on /dev/mapper/root, read-only"),
        "{root}"
    );
    wait(&mut master, "keel-master listening");

    // The agent: firmware -> systemd-boot -> UKI, from its own disk.
    let ashape = shape("image-agent", "52:54:00:4b:30:02");
    let adir = dir.join(&ashape.name);
    let disk = adir.join("disk0.raw");
    copy_disk(&raw, &disk, 1024 * MIB).unwrap();
    boot_entry(
        &disk,
        &format!("{cmdline} keel.masters=10.0.2.2:{port}"),
        &adir,
    )
    .unwrap();
    std::fs::copy(OVMF_VARS, adir.join("vars.fd")).unwrap();
    let mut agent = Guest::start(GuestSpec {
        boot: Boot::Uefi {
            code: OVMF_CODE.into(),
            vars: adir.join("vars.fd"),
            kernel: None,
        },
        dir: adir,
        shape: ashape.clone(),
        allow_reboot: false,
        forwards: vec![],
    })
    .unwrap();
    let root = wait(&mut agent, "root file system: ");
    assert!(
        root.ends_with("erofs on /dev/mapper/root, read-only"),
        "{root}"
    );
    wait(&mut agent, "registered with master");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = MasterApi::new(&format!("127.0.0.1:{port}")).unwrap();
    let macs = vec![ashape.nics[0].mac.clone()];
    let (_, inv, _) = rt
        .block_on(api.wait_for_agent(
            "the image agent's MAC",
            Duration::from_secs(60),
            |_, inv| has_any_mac(inv, &macs),
        ))
        .unwrap_or_else(|e| panic!("{e}\n--- agent console ---\n{}", tail(&agent)));
    let mismatches: Vec<String> = compare(&ashape, &inv)
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{inv:#?}");
    // ESP, root, root-verity, KEEL-DATA; systemd-repart grew the last one to
    // the rest of the (larger) disk at first boot.
    let parts = &inv.disks[0].partitions;
    assert_eq!(parts.len(), 4, "{parts:#?}");
    println!("KEEL-DATA: {} MiB", parts[3].size_bytes / MIB);
    assert!(parts[3].size_bytes > DATA_BUILT, "{parts:#?}");
    drop(agent);
    drop(master);
}
