//! Where the cgroup v2 hierarchy is and where the agent sits in it, from
//! `/proc/self/mountinfo` and `/proc/self/cgroup` (read under a proc root;
//! tests feed captured text).

use std::path::{Path, PathBuf};

use super::CgroupError;

/// The mount point of the first `cgroup2` file system in a mountinfo text.
/// (`/sys/fs/cgroup` on a v2-only machine, `/sys/fs/cgroup/unified` on a
/// hybrid one.)
pub fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v2 cgroup (`0::/path`) in a `/proc/<pid>/cgroup` text.
pub fn v2_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// Where this process is in the v2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub mount: PathBuf,
    /// The process's own cgroup, relative to the mount (`/` for the root).
    pub cgroup: String,
}

impl Placement {
    /// The directory of the process's cgroup.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.cgroup.trim_start_matches('/'))
    }
}

/// Reads `<proc>/self/mountinfo` and `<proc>/self/cgroup`.
pub fn placement(proc_root: &Path) -> Result<Placement, CgroupError> {
    let read = |name: &str| {
        let p = proc_root.join("self").join(name);
        std::fs::read_to_string(&p).map_err(|e| CgroupError::io(&p, e))
    };
    let mount = v2_mount(&read("mountinfo")?).ok_or(CgroupError::NoHierarchy)?;
    let cgroup = v2_cgroup(&read("cgroup")?).ok_or(CgroupError::NoHierarchy)?;
    Ok(Placement { mount, cgroup })
}

#[cfg(test)]
mod tests {
    use super::*;

    // This dev box (Debian 12 under a hybrid hierarchy), trimmed.
    const HYBRID: &str = "\
24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    // A QEMU guest of Keel's initramfs: v2 only.
    const UNIFIED: &str = "\
1 0 0:2 / / rw - rootfs rootfs rw
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn finds_the_v2_mount() {
        assert_eq!(
            v2_mount(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(v2_mount(UNIFIED), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(v2_mount("24 1 254:0 / / rw - ext4 /dev/vda rw\n"), None);
        let odd = "9 1 0:9 / /mnt/with\\040space rw - cgroup2 none rw\n";
        assert_eq!(v2_mount(odd), Some(PathBuf::from("/mnt/with space")));
    }

    #[test]
    fn finds_the_own_cgroup() {
        let text = "9:name=systemd:/\n4:memory:/process_api/b7\n0::/\n";
        assert_eq!(v2_cgroup(text).as_deref(), Some("/"));
        let svc = "0::/system.slice/keel-agent.service\n";
        let p = Placement {
            mount: "/sys/fs/cgroup".into(),
            cgroup: v2_cgroup(svc).unwrap(),
        };
        assert_eq!(
            p.dir(),
            Path::new("/sys/fs/cgroup/system.slice/keel-agent.service")
        );
        assert_eq!(v2_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn reads_a_proc_tree_and_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/mountinfo"), UNIFIED).unwrap();
        std::fs::write(dir.path().join("self/cgroup"), "0::/\n").unwrap();
        let p = placement(dir.path()).unwrap();
        assert_eq!(p.dir(), Path::new("/sys/fs/cgroup/"));
        // Whatever this machine has, reading it works or says why.
        match placement(Path::new("/proc")) {
            Ok(p) => assert!(p.mount.is_absolute()),
            Err(e) => assert!(matches!(e, CgroupError::NoHierarchy), "{e}"),
        }
    }
}
