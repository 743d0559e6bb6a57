//! A container's file system view, built inside its mount namespace: the
//! host read-only, a private `/tmp`, the sandbox read-write at
//! `/mnt/mesos/sandbox`, the agent's work dir hidden, and a fresh `/proc`
//! for a PID namespace.
//!
//! [`plan`] is pure (tested on listings); [`apply`] runs it with rustix in
//! the container's init, before `pivot_root` into the new root:
//!
//! ```text
//!  new root (tmpfs) <- every top-level host directory bound read-only
//!                      (recursively: every mount below is remounted ro),
//!                      top-level symlinks recreated, /dev bound rw,
//!                      /tmp and /mnt new tmpfs, sandbox bound rw,
//!                      persistent volumes bound into the sandbox (rw/ro),
//!                      work dir covered by an empty read-only tmpfs,
//!                      /proc fresh (PID namespace) or bound
//!  pivot_root, detach the old root, remount the new root read-only
//! ```

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

/// Where tasks find their sandbox (Mesos' `MESOS_SANDBOX` in containers).
pub const SANDBOX_PATH: &str = "/mnt/mesos/sandbox";

#[derive(Debug, thiserror::Error)]
#[error("mount {what} at {target}: {source}")]
pub struct MountError {
    what: String,
    target: PathBuf,
    source: std::io::Error,
}

/// A top-level entry of the host's `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    Dir(String),
    Symlink(String, PathBuf),
}

/// Reads `/` (or a test tree).
pub fn host_entries(root: &Path) -> Vec<HostEntry> {
    let mut out: Vec<HostEntry> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kind = e.file_type().ok()?;
            if kind.is_symlink() {
                Some(HostEntry::Symlink(name, fs::read_link(e.path()).ok()?))
            } else if kind.is_dir() {
                Some(HostEntry::Dir(name))
            } else {
                None
            }
        })
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    Mkdir(PathBuf),
    Symlink {
        link: PathBuf,
        to: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
        options: String,
    },
    /// Recursive bind; `readonly` remounts every mount of the copy ro.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    Proc {
        target: PathBuf,
    },
    /// An empty, read-only tmpfs over `target` (hides what is there).
    Hide {
        target: PathBuf,
    },
}

/// A persistent volume bound into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeBind {
    /// The volume's directory on the host.
    pub source: PathBuf,
    /// Relative to the sandbox (checked: no `..`).
    pub target: PathBuf,
    pub readonly: bool,
}

/// What the container sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View<'a> {
    /// The new root (a directory on the host, mounted over with tmpfs).
    pub root: &'a Path,
    /// The task's sandbox on the host.
    pub sandbox: &'a Path,
    /// Host directories the task must not see (the agent's work dir).
    pub hide: &'a [PathBuf],
    /// Persistent volumes, bound below the sandbox.
    pub volumes: &'a [VolumeBind],
    /// Mount a fresh `/proc` (the task is in its own PID namespace).
    pub fresh_proc: bool,
}

/// The operations building `view` (after the new root's tmpfs is mounted).
pub fn plan(host: &[HostEntry], view: &View<'_>) -> Vec<MountOp> {
    let at = |p: &str| view.root.join(p.trim_start_matches('/'));
    let mut ops = Vec::new();
    for entry in host {
        match entry {
            HostEntry::Symlink(name, to) => ops.push(MountOp::Symlink {
                link: at(name),
                to: to.clone(),
            }),
            HostEntry::Dir(name) => {
                let target = at(name);
                ops.push(MountOp::Mkdir(target.clone()));
                match name.as_str() {
                    "proc" if view.fresh_proc => ops.push(MountOp::Proc { target }),
                    "tmp" => ops.push(MountOp::Tmpfs {
                        target,
                        options: "mode=1777".into(),
                    }),
                    "mnt" => ops.push(MountOp::Tmpfs {
                        target,
                        options: "mode=755".into(),
                    }),
                    "dev" | "proc" => ops.push(MountOp::Bind {
                        source: PathBuf::from("/").join(name),
                        target,
                        readonly: false,
                    }),
                    _ => ops.push(MountOp::Bind {
                        source: PathBuf::from("/").join(name),
                        target,
                        readonly: true,
                    }),
                }
            }
        }
    }
    let has = |n: &str| host.contains(&HostEntry::Dir(n.to_string()));
    for (name, fresh) in [("tmp", "mode=1777"), ("mnt", "mode=755")] {
        if !has(name) {
            ops.push(MountOp::Mkdir(at(name)));
            ops.push(MountOp::Tmpfs {
                target: at(name),
                options: fresh.into(),
            });
        }
    }
    if view.fresh_proc && !has("proc") {
        ops.push(MountOp::Mkdir(at("proc")));
        ops.push(MountOp::Proc { target: at("proc") });
    }
    ops.push(MountOp::Mkdir(at(SANDBOX_PATH)));
    ops.push(MountOp::Bind {
        source: view.sandbox.to_path_buf(),
        target: at(SANDBOX_PATH),
        readonly: false,
    });
    for v in view.volumes {
        let target = at(SANDBOX_PATH).join(&v.target);
        ops.push(MountOp::Mkdir(target.clone()));
        ops.push(MountOp::Bind {
            source: v.source.clone(),
            target,
            readonly: v.readonly,
        });
    }
    for hidden in view.hide {
        ops.push(MountOp::Hide {
            target: at(&hidden.to_string_lossy()),
        });
    }
    ops
}

/// Mount points at or under `target` in a mountinfo text, with the
/// `nosuid`/`nodev`/`noexec` flags a read-only remount must keep.
pub fn mounts_under(mountinfo: &str, target: &Path) -> Vec<(PathBuf, MountFlags)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let point = PathBuf::from(fields.nth(4)?.replace("\\040", " "));
            let opts = fields.next()?;
            let mut flags = MountFlags::empty();
            for o in opts.split(',') {
                match o {
                    "nosuid" => flags |= MountFlags::NOSUID,
                    "nodev" => flags |= MountFlags::NODEV,
                    "noexec" => flags |= MountFlags::NOEXEC,
                    _ => {}
                }
            }
            point.starts_with(target).then_some((point, flags))
        })
        .collect()
}

fn err<'a>(what: &str, target: &'a Path) -> impl FnOnce(rustix::io::Errno) -> MountError + 'a {
    let what = what.to_string();
    move |e| MountError {
        what,
        target: target.to_path_buf(),
        source: e.into(),
    }
}

fn io_err<'a>(what: &str, target: &'a Path) -> impl FnOnce(std::io::Error) -> MountError + 'a {
    let what = what.to_string();
    move |source| MountError {
        what,
        target: target.to_path_buf(),
        source,
    }
}

/// Makes `target` and every mount below it read-only: one
/// `mount_setattr(2)` (Linux 5.12), or a remount of each mount listed in
/// mountinfo where that call is missing.
fn remount_ro(target: &Path) -> Result<(), MountError> {
    match set_read_only_recursive(target) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::NOSYS) => {}
        Err(e) => return Err(err("read-only", target)(e)),
    }
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(io_err("mountinfo", target))?;
    for (point, keep) in mounts_under(&info, target) {
        let flags = MountFlags::BIND | MountFlags::RDONLY | keep;
        rustix::mount::mount_remount(&point, flags, "").map_err(err("read-only", &point))?;
    }
    Ok(())
}

/// `mount_setattr(target, AT_RECURSIVE, {attr_set: MOUNT_ATTR_RDONLY})`.
#[allow(unsafe_code)]
fn set_read_only_recursive(target: &Path) -> Result<(), rustix::io::Errno> {
    /// `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let path = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| rustix::io::Errno::INVAL)?;
    let mut attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a valid
    // `mount_attr` of the size passed, both alive across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(
            rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::INVAL),
        )
    }
}

/// Mounts tmpfs at `root` and runs `ops`. Call in a fresh mount namespace
/// whose mounts were made private.
pub fn apply(root: &Path, ops: &[MountOp]) -> Result<(), MountError> {
    fs::create_dir_all(root).map_err(io_err("mkdir", root))?;
    rustix::mount::mount("tmpfs", root, "tmpfs", MountFlags::empty(), c"mode=755")
        .map_err(err("tmpfs", root))?;
    for op in ops {
        match op {
            MountOp::Mkdir(d) => fs::create_dir_all(d).map_err(io_err("mkdir", d))?,
            MountOp::Symlink { link, to } => {
                std::os::unix::fs::symlink(to, link).map_err(io_err("symlink", link))?
            }
            MountOp::Tmpfs { target, options } => {
                let data = CString::new(options.as_str()).unwrap_or_default();
                rustix::mount::mount(
                    "tmpfs",
                    target,
                    "tmpfs",
                    MountFlags::NOSUID | MountFlags::NODEV,
                    data.as_c_str(),
                )
                .map_err(err("tmpfs", target))?
            }
            MountOp::Bind {
                source,
                target,
                readonly,
            } => {
                rustix::mount::mount_bind_recursive(source, target)
                    .map_err(err(&source.display().to_string(), target))?;
                if *readonly {
                    remount_ro(target)?;
                }
            }
            MountOp::Proc { target } => rustix::mount::mount(
                "proc",
                target,
                "proc",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )
            .map_err(err("proc", target))?,
            MountOp::Hide { target } => {
                if target.is_dir() {
                    rustix::mount::mount(
                        "tmpfs",
                        target,
                        "tmpfs",
                        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
                        c"size=4k",
                    )
                    .map_err(err("hide", target))?;
                }
            }
        }
    }
    Ok(())
}

/// Makes every mount private (nothing the container does reaches the host).
pub fn make_private() -> Result<(), MountError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(err("private", Path::new("/")))
}

/// Switches to `root`, drops the old root and makes `/` read-only.
///
/// A host running from its initramfs (Keel's appliance) has `rootfs` as its
/// root, which `pivot_root` refuses (EINVAL); there the new root is moved
/// over `/` and entered with `chroot`, as runc's `--no-pivot` does.
pub fn pivot(root: &Path) -> Result<(), MountError> {
    let old = root.join(".old-root");
    fs::create_dir_all(&old).map_err(io_err("mkdir", &old))?;
    match rustix::process::pivot_root(root, &old) {
        Ok(()) => {
            std::env::set_current_dir("/").map_err(io_err("chdir", Path::new("/")))?;
            let old = Path::new("/.old-root");
            rustix::mount::unmount(old, UnmountFlags::DETACH).map_err(err("detach", old))?;
            fs::remove_dir(old).map_err(io_err("rmdir", old))?;
        }
        Err(rustix::io::Errno::INVAL) => {
            fs::remove_dir(&old).map_err(io_err("rmdir", &old))?;
            std::env::set_current_dir(root).map_err(io_err("chdir", root))?;
            rustix::mount::mount_move(root, "/").map_err(err("move", root))?;
            rustix::process::chroot(".").map_err(err("chroot", root))?;
            std::env::set_current_dir("/").map_err(io_err("chdir", Path::new("/")))?;
        }
        Err(e) => return Err(err("pivot_root", root)(e)),
    }
    rustix::mount::mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "")
        .map_err(err("read-only", Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<HostEntry> {
        vec![
            HostEntry::Symlink("bin".into(), "usr/bin".into()),
            HostEntry::Dir("dev".into()),
            HostEntry::Dir("etc".into()),
            HostEntry::Dir("proc".into()),
            HostEntry::Dir("tmp".into()),
            HostEntry::Dir("usr".into()),
            HostEntry::Dir("var".into()),
        ]
    }

    #[test]
    fn the_host_is_read_only_and_the_sandbox_is_not() {
        let hide = [PathBuf::from("/var/lib/keel")];
        let volumes = [VolumeBind {
            source: "/var/lib/keel/volumes/roles/eng/db".into(),
            target: "data".into(),
            readonly: true,
        }];
        let view = View {
            root: Path::new("/r"),
            sandbox: Path::new("/var/lib/keel/slaves/s/runs/c"),
            hide: &hide,
            volumes: &volumes,
            fresh_proc: true,
        };
        let ops = plan(&host(), &view);
        let bind = |s: &str, t: &str, ro| MountOp::Bind {
            source: s.into(),
            target: t.into(),
            readonly: ro,
        };
        assert!(ops.contains(&MountOp::Symlink {
            link: "/r/bin".into(),
            to: "usr/bin".into()
        }));
        assert!(ops.contains(&bind("/etc", "/r/etc", true)));
        assert!(ops.contains(&bind("/usr", "/r/usr", true)));
        assert!(ops.contains(&bind("/dev", "/r/dev", false)));
        assert!(ops.contains(&MountOp::Proc {
            target: "/r/proc".into()
        }));
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/r/tmp".into(),
            options: "mode=1777".into()
        }));
        // The host has no /mnt: the container gets one anyway.
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/r/mnt".into(),
            options: "mode=755".into()
        }));
        let sandbox = ops
            .iter()
            .position(|o| {
                *o == bind(
                    "/var/lib/keel/slaves/s/runs/c",
                    "/r/mnt/mesos/sandbox",
                    false,
                )
            })
            .unwrap();
        let hidden = ops
            .iter()
            .position(|o| {
                *o == MountOp::Hide {
                    target: "/r/var/lib/keel".into(),
                }
            })
            .unwrap();
        assert!(
            sandbox < hidden,
            "the sandbox is bound before the work dir is covered"
        );
        let volume = ops
            .iter()
            .position(|o| {
                *o == bind(
                    "/var/lib/keel/volumes/roles/eng/db",
                    "/r/mnt/mesos/sandbox/data",
                    true,
                )
            })
            .unwrap();
        assert!(
            sandbox < volume && volume < hidden,
            "volumes go into the bound sandbox, from the work dir before it is covered"
        );
        let plain = plan(
            &host(),
            &View {
                fresh_proc: false,
                ..view
            },
        );
        assert!(plain.contains(&bind("/proc", "/r/proc", false)));
    }

    #[test]
    fn read_only_remounts_cover_every_mount_below() {
        let info = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 22 0:40 / /r/var rw,relatime - ext4 /dev/vda rw
41 40 0:41 / /r/var/lib/x rw,nosuid,nodev,noexec - tmpfs tmpfs rw
42 22 0:42 / /r/varnish rw - tmpfs tmpfs rw
";
        let got = mounts_under(info, Path::new("/r/var"));
        assert_eq!(
            got,
            vec![
                (PathBuf::from("/r/var"), MountFlags::empty()),
                (
                    PathBuf::from("/r/var/lib/x"),
                    MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC
                ),
            ]
        );
    }

    #[test]
    fn lists_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        std::os::unix::fs::symlink("usr/lib", dir.path().join("lib")).unwrap();
        assert_eq!(
            host_entries(dir.path()),
            vec![
                HostEntry::Dir("etc".into()),
                HostEntry::Symlink("lib".into(), "usr/lib".into())
            ]
        );
    }
}
