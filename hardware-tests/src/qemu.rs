//! The QEMU provisioner: a guest of a [`Shape`] under TCG (`-accel tcg -cpu
//! max`; these machines have no nested KVM), booted from kernel + initramfs
//! or by real PXE through the NIC's iPXE ROM (Debian `ipxe-qemu`), every NIC
//! on its own QEMU user network (the host's loopback is 10.0.2.2 there),
//! optional swtpm, serial console to a file, QMP on a unix socket.
//!
//! [`qemu_args`] is pure; [`Guest`] runs it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::shape::{DiskKind, MIB, Shape};
use crate::swtpm::Swtpm;

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start qemu-system-x86_64 (Debian package qemu-system-x86): {0}")]
    Spawn(std::io::Error),
    #[error("guest {name}: no {what:?} on the console within {within:?}; console log {log}")]
    Timeout {
        name: String,
        what: String,
        within: Duration,
        log: PathBuf,
    },
    #[error("guest {name}: qemu exited ({status}); console log {log}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
    },
    #[error("qmp {socket}: {reason}")]
    Qmp { socket: PathBuf, reason: String },
    #[error(transparent)]
    Swtpm(#[from] crate::swtpm::SwtpmError),
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads the kernel and initramfs itself.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// The first NIC's iPXE ROM boots from the network: QEMU's DHCP hands out
    /// `bootfile`, fetched over TFTP from `tftp_dir` (which may chain to
    /// HTTP on the host).
    Pxe { tftp_dir: PathBuf, bootfile: String },
    /// UEFI firmware (OVMF: read-only `code`, this guest's copy of `vars`)
    /// boots the first disk (its ESP's boot loader), or `kernel`, an EFI
    /// program such as a UKI, with `append` as its command line.
    Uefi {
        code: PathBuf,
        vars: PathBuf,
        kernel: Option<(PathBuf, String)>,
    },
}

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub shape: Shape,
    pub boot: Boot,
    /// Holds the disks, the console log, the QMP socket and the TPM state.
    pub dir: PathBuf,
    /// Let a guest reboot (a reset restarts it) rather than exit QEMU.
    pub allow_reboot: bool,
    /// TCP ports of the host's loopback forwarded to the guest's first NIC
    /// (host port, guest port).
    pub forwards: Vec<(u16, u16)>,
}

impl GuestSpec {
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    pub fn disk_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("disk{i}.raw"))
    }

    pub fn tpm_dir(&self) -> PathBuf {
        self.dir.join("tpm")
    }
}

/// QEMU's arguments for `spec` (disk images and the TPM socket are expected
/// at the spec's paths).
pub fn qemu_args(spec: &GuestSpec) -> Vec<String> {
    let s = &spec.shape;
    let mut a: Vec<String> = [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|x| x.to_string()));
    push(&["-name", &s.name]);
    push(&[
        "-smp",
        &s.vcpus.to_string(),
        "-m",
        &format!("{}M", s.memory_mib),
    ]);
    push(&["-serial", &format!("file:{}", spec.console_log().display())]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", spec.qmp_socket().display()),
    ]);
    if !spec.allow_reboot {
        push(&["-no-reboot"]);
    }
    // Entropy for the guest's early boot (TLS, uuids) without waiting.
    push(&["-device", "virtio-rng-pci"]);
    if s.disks.iter().any(|d| d.kind == DiskKind::Scsi) {
        push(&["-device", "virtio-scsi-pci,id=scsi0"]);
    }
    for (i, d) in s.disks.iter().enumerate() {
        let path = spec.disk_path(i);
        push(&[
            "-drive",
            &format!("file={},format=raw,if=none,id=d{i}", path.display()),
        ]);
        let serial = d
            .serial
            .as_ref()
            .map(|s| format!(",serial={s}"))
            .unwrap_or_default();
        let serial = match (&spec.boot, i) {
            // The firmware boots the first disk.
            (Boot::Uefi { kernel: None, .. }, 0) => format!("{serial},bootindex=0"),
            _ => serial,
        };
        let dev = match d.kind {
            DiskKind::Virtio => format!("virtio-blk-pci,drive=d{i}{serial}"),
            DiskKind::Nvme => format!("nvme,drive=d{i}{serial}"),
            DiskKind::Scsi => format!("scsi-hd,drive=d{i},bus=scsi0.0{serial}"),
            DiskKind::Ata => format!("ide-hd,drive=d{i}{serial}"),
        };
        push(&["-device", &dev]);
    }
    for (i, n) in s.nics.iter().enumerate() {
        let mut netdev = format!("user,id=n{i}");
        let mut rom = ",romfile=".to_string();
        if let (0, Boot::Pxe { tftp_dir, bootfile }) = (i, &spec.boot) {
            netdev.push_str(&format!(",tftp={},bootfile={bootfile}", tftp_dir.display()));
            // The boot NIC keeps QEMU's default iPXE ROM.
            rom.clear();
        }
        if i == 0 {
            for (host, guest) in &spec.forwards {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
        }
        let model = n.model.as_deref().unwrap_or("virtio-net-pci");
        push(&["-netdev", &netdev]);
        push(&[
            "-device",
            &format!("{model},netdev=n{i},mac={}{rom}", n.mac),
        ]);
    }
    if s.tpm {
        push(&[
            "-chardev",
            &format!(
                "socket,id=chrtpm,path={}",
                Swtpm::socket(&spec.tpm_dir()).display()
            ),
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ]);
    }
    match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => push(&[
            "-kernel",
            &kernel.display().to_string(),
            "-initrd",
            &initrd.display().to_string(),
            "-append",
            append,
        ]),
        Boot::Pxe { .. } => push(&["-boot", "order=n"]),
        Boot::Uefi { code, vars, kernel } => {
            push(&[
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                ),
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
            if let Some((efi, append)) = kernel {
                push(&["-kernel", &efi.display().to_string(), "-append", append]);
            }
        }
    }
    a
}

/// A running guest; killed (with its swtpm) when dropped.
pub struct Guest {
    pub spec: GuestSpec,
    child: Child,
    started: Instant,
    _tpm: Option<Swtpm>,
    /// How far [`Guest::wait_for`] has read the console.
    read_to: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QemuError + '_ {
    move |source| QemuError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Guest {
    /// Creates the disks (sparse, blank) unless they exist, starts swtpm if
    /// the shape has a TPM, then QEMU.
    pub fn start(spec: GuestSpec) -> Result<Self, QemuError> {
        std::fs::create_dir_all(&spec.dir).map_err(io(&spec.dir))?;
        for (i, d) in spec.shape.disks.iter().enumerate() {
            let path = spec.disk_path(i);
            if !path.exists() {
                let f = std::fs::File::create(&path).map_err(io(&path))?;
                f.set_len(d.size_mib * MIB).map_err(io(&path))?;
            }
        }
        let tpm = if spec.shape.tpm {
            Some(Swtpm::start(&spec.tpm_dir())?)
        } else {
            None
        };
        let log = spec.console_log();
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(spec.qmp_socket());
        let child = Command::new("qemu-system-x86_64")
            .args(qemu_args(&spec))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(QemuError::Spawn)?;
        Ok(Guest {
            spec,
            child,
            started: Instant::now(),
            _tpm: tpm,
            read_to: 0,
        })
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The whole console log so far.
    pub fn console(&self) -> String {
        std::fs::read(self.spec.console_log())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a console line after the last match contains `needle`;
    /// returns that line and the time since QEMU started.
    pub fn wait_for(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> Result<(String, Duration), QemuError> {
        let deadline = Instant::now() + within;
        loop {
            let text = self.console();
            if let Some(found) = text.get(self.read_to..).and_then(|rest| rest.find(needle)) {
                let at = self.read_to + found;
                let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                self.read_to = end;
                return Ok((
                    text[start..end].trim_end().to_string(),
                    self.started.elapsed(),
                ));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(QemuError::Exited {
                    name: self.spec.shape.name.clone(),
                    status: format!("{status}: {}", self.stderr()),
                    log: self.spec.console_log(),
                });
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Timeout {
                    name: self.spec.shape.name.clone(),
                    what: needle.to_string(),
                    within,
                    log: self.spec.console_log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(err) = self.child.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(err, &mut s);
        }
        s.trim().to_string()
    }

    /// Runs one QMP command (`{"execute": ...}`) and returns its reply.
    pub fn qmp(&self, command: &serde_json::Value) -> Result<serde_json::Value, QemuError> {
        let socket = self.spec.qmp_socket();
        let err = |reason: String| QemuError::Qmp {
            socket: socket.clone(),
            reason,
        };
        let stream = UnixStream::connect(&socket).map_err(|e| err(e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| err(e.to_string()))?;
        let mut writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut reader = BufReader::new(stream);
        let mut read_reply = || -> Result<serde_json::Value, QemuError> {
            loop {
                let mut line = String::new();
                reader
                    .read_line(&mut line)
                    .map_err(|e| err(e.to_string()))?;
                if line.is_empty() {
                    return Err(err("connection closed".into()));
                }
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
                // Skip the greeting and asynchronous events.
                if v.get("return").is_some() || v.get("error").is_some() {
                    return Ok(v);
                }
            }
        };
        let mut send =
            |v: &serde_json::Value| writeln!(writer, "{v}").map_err(|e| err(e.to_string()));
        send(&serde_json::json!({"execute": "qmp_capabilities"}))?;
        read_reply()?;
        send(command)?;
        let reply = read_reply()?;
        if let Some(e) = reply.get("error") {
            return Err(err(e.to_string()));
        }
        Ok(reply)
    }

    /// Presses Ctrl-Alt-Del on the guest's keyboard: keel-init reboots
    /// cleanly (stops the service, syncs, unmounts).
    pub fn ctrl_alt_del(&self) -> Result<(), QemuError> {
        let keys: Vec<_> = ["ctrl", "alt", "delete"]
            .iter()
            .map(|k| serde_json::json!({"type": "qcode", "data": k}))
            .collect();
        self.qmp(&serde_json::json!({"execute": "send-key", "arguments": {"keys": keys}}))
            .map(|_| ())
    }

    /// Kills QEMU.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{DiskSpec, NicSpec};

    fn spec(boot: Boot) -> GuestSpec {
        GuestSpec {
            shape: Shape {
                name: "g".into(),
                vcpus: 2,
                memory_mib: 1024,
                disks: vec![
                    DiskSpec {
                        kind: DiskKind::Scsi,
                        size_mib: 96,
                        serial: Some("S1".into()),
                    },
                    DiskSpec {
                        kind: DiskKind::Nvme,
                        size_mib: 128,
                        serial: None,
                    },
                ],
                nics: vec![
                    NicSpec {
                        mac: "52:54:00:00:00:01".into(),
                        model: Some("e1000".into()),
                        driver: None,
                    },
                    NicSpec {
                        mac: "52:54:00:00:00:02".into(),
                        model: None,
                        driver: None,
                    },
                ],
                tpm: true,
            },
            boot,
            dir: PathBuf::from("/tmp/g"),
            allow_reboot: false,
            forwards: vec![],
        }
    }

    fn joined(spec: &GuestSpec) -> String {
        qemu_args(spec).join(" ")
    }

    #[test]
    fn kernel_boot_line() {
        let a = joined(&spec(Boot::Kernel {
            kernel: "/b/vmlinuz".into(),
            initrd: "/b/initramfs.img".into(),
            append: "console=ttyS0 keel.masters=10.0.2.2:1".into(),
        }));
        for part in [
            "-machine q35 -accel tcg -cpu max -nodefaults",
            "-smp 2 -m 1024M",
            "-serial file:/tmp/g/console.log",
            "-qmp unix:/tmp/g/qmp.sock,server=on,wait=off -no-reboot",
            "-device virtio-scsi-pci,id=scsi0",
            "-drive file=/tmp/g/disk0.raw,format=raw,if=none,id=d0 -device scsi-hd,drive=d0,bus=scsi0.0,serial=S1",
            "-drive file=/tmp/g/disk1.raw,format=raw,if=none,id=d1 -device nvme,drive=d1 ",
            "-netdev user,id=n0 -device e1000,netdev=n0,mac=52:54:00:00:00:01,romfile=",
            "-netdev user,id=n1 -device virtio-net-pci,netdev=n1,mac=52:54:00:00:00:02,romfile=",
            "-chardev socket,id=chrtpm,path=/tmp/g/tpm/swtpm.sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0",
            "-kernel /b/vmlinuz -initrd /b/initramfs.img",
        ] {
            assert!(a.contains(part), "{part:?} not in {a}");
        }
        let args = qemu_args(&spec(Boot::Kernel {
            kernel: "k".into(),
            initrd: "i".into(),
            append: "a b".into(),
        }));
        assert_eq!(
            args[args.len() - 1],
            "a b",
            "the append line stays one argument"
        );
        assert!(!a.contains("-boot"));
    }

    #[test]
    fn pxe_boot_line() {
        let mut s = spec(Boot::Pxe {
            tftp_dir: "/tmp/g/tftp".into(),
            bootfile: "keel.ipxe".into(),
        });
        s.allow_reboot = true;
        let a = joined(&s);
        assert!(a.contains(
            "-netdev user,id=n0,tftp=/tmp/g/tftp,bootfile=keel.ipxe -device e1000,netdev=n0,mac=52:54:00:00:00:01 "
        ));
        assert!(a.contains("mac=52:54:00:00:00:02,romfile="));
        assert!(a.ends_with("-boot order=n"));
        assert!(!a.contains("-kernel") && !a.contains("-no-reboot"));
    }

    #[test]
    fn uefi_boot_lines() {
        let mut s = spec(Boot::Uefi {
            code: "/fw/CODE.fd".into(),
            vars: "/tmp/g/VARS.fd".into(),
            kernel: None,
        });
        s.forwards = vec![(15090, 5050)];
        let a = joined(&s);
        assert!(a.contains("-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd -drive if=pflash,format=raw,unit=1,file=/tmp/g/VARS.fd"));
        assert!(a.contains("scsi-hd,drive=d0,bus=scsi0.0,serial=S1,bootindex=0"));
        assert!(a.contains("-netdev user,id=n0,hostfwd=tcp:127.0.0.1:15090-:5050 "));
        assert!(!a.contains("-kernel"));
        s.boot = Boot::Uefi {
            code: "/fw/CODE.fd".into(),
            vars: "/tmp/g/VARS.fd".into(),
            kernel: Some(("/img/keel.efi".into(), "root=x keel.role=master".into())),
        };
        let a = joined(&s);
        assert!(a.ends_with("-kernel /img/keel.efi -append root=x keel.role=master"));
        assert!(!a.contains("bootindex"));
    }
}
