//! Keel's early userspace: `keel-init`, PID 1 of the PXE initramfs.
//!
//! It mounts the kernel file systems, loads the modules the hardware needs,
//! brings the NICs up over rtnetlink, gets an address by DHCP, reads Keel's
//! settings from the kernel command line, mounts the work-dir disk, and then
//! runs and supervises `keel-agent` or `keel-master`. The same binary is the
//! initramfs's `/sbin/modprobe` (the kernel's `request_module` helper), and in
//! the systemd image `keel-init exec` turns the command line into the
//! service's arguments.
//!
//! Pure parts, tested without root: [`cmdline`], [`kmod`], [`dhcp`],
//! [`service`], the decisions in [`workdisk`]. The rest touches the kernel:
//! [`mounts`], [`modules`], [`net`], [`lease`], [`supervise`], [`boot`].
//! There is no `unsafe` here: `finit_module`, `mount` and `reboot` go
//! through rustix's safe wrappers.

pub mod boot;
pub mod cmdline;
pub mod dhcp;
pub mod exec;
pub mod kmod;
pub mod lease;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod service;
pub mod supervise;
pub mod workdisk;
