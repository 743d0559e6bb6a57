//! Keel's lab harness. It boots QEMU guests of a chosen [`shape::Shape`]
//! (vCPUs, memory, virtio/NVMe/SCSI disks, NICs with MACs and models, an
//! optional swtpm TPM 2.0), from the PXE bundle's kernel and initramfs or by
//! real PXE through iPXE, with a `keel-master` on the host ([`lab`]); then it
//! checks what the master reports for the node against the shape
//! ([`check`]). The same check runs against a real machine given its
//! address (`keel-hwtest check`).
//!
//! - [`shape`]: the machine description (JSON, `shapes/`).
//! - [`qemu`]: the provisioner (pure argument builder, guest process, QMP).
//! - [`swtpm`]: one software TPM per guest.
//! - [`lab`]: host master, bundle HTTP server, guest specs.
//! - [`api`]: the master's HTTP API.
//! - [`check`]: shape versus inventory.
//! - [`bench`]: boot time against a bare busybox initramfs.
//! - [`image`]: booting the mkosi image (disk copies, UKI command line, ESP entries).

pub mod api;
pub mod bench;
pub mod check;
pub mod image;
pub mod lab;
pub mod qemu;
pub mod shape;
pub mod swtpm;
pub mod tmpfs;
