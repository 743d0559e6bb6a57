//! A tmpfs of a few MiB on a temp dir, filled and freed at will, so that a
//! store hits a real `ENOSPC`. Unmounted when dropped. For the tests of
//! every store that must survive a full disk (the master's logs, the
//! agent's checkpoints).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    path: PathBuf,
    /// The temp dir it is mounted on, if it made one (removed after).
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes on a new temp dir; `None` (with a
    /// message) unless root, since only root may mount.
    pub fn mount(size: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut fs = Tmpfs::mount_on(dir.path(), size)?;
        fs._dir = Some(dir);
        Some(fs)
    }

    /// [`Tmpfs::mount`] on `path` (created if need be), which must outlive
    /// it.
    pub fn mount_on(path: &Path, size: u64) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs to fill needs root");
            return None;
        }
        std::fs::create_dir_all(path).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "keel-full"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Some(Tmpfs {
            path: path.to_path_buf(),
            _dir: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Fills the file system to the last byte.
    pub fn fill(&self) {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("create the filler");
        for chunk in [64 << 10, 4 << 10, 1] {
            let buf = vec![0xa5u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
    }

    /// Gives the space back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.path.clone();
        let ok = Command::new("umount").arg(&path).status();
        if !ok.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&path).status();
        }
    }
}
