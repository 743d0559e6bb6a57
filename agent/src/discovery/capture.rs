//! Captures a machine into a fixture directory that [`super::discover_fixture`]
//! reads back.
//!
//! The fixture is a partial mirror of `/`: exactly the procfs/sysfs files the
//! readers use, at the same relative paths. Paths are copied one component at
//! a time; every symlink met on the way is recreated as the same (relative)
//! symlink and then followed, so `sys/block/vda ->
//! ../devices/pci0000:00/0000:00:04.0/virtio2/block/vda` resolves inside the
//! fixture as it does in `/sys`. Only regular files are copied, and files the
//! kernel refuses to read (EIO/EINVAL, e.g. `speed` of a down link) are left
//! out, as are files that do not exist on this machine. The netlink dumps go
//! to `netlink/` (format in [`super::netlink`]).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::sysfs::{MAX_SYMLINK_HOPS, components, list_dir};
use super::{DiscoveryError, HOSTNAME_FILE, cpu, disk, memory, netlink, nic, pci, tpm};

/// Captures this machine (`/` and the current network namespace) into `dst`,
/// creating it.
pub async fn capture(dst: &Path) -> Result<(), DiscoveryError> {
    capture_tree(Path::new("/"), dst)?;
    let (links, addrs) = netlink::dump_live().await?;
    write(
        &dst.join(netlink::LINKS_FILE),
        &netlink::encode_links(&links),
    )?;
    write(
        &dst.join(netlink::ADDRS_FILE),
        &netlink::encode_addrs(&addrs),
    )
}

/// Copies the procfs/sysfs files the readers use from `root` to `dst`
/// (the file half of [`capture`]; `root` may itself be a fixture).
pub fn capture_tree(root: &Path, dst: &Path) -> Result<(), DiscoveryError> {
    fs::create_dir_all(dst).map_err(|e| DiscoveryError::write(dst, e))?;
    let m = Mirror { src: root, dst };

    for file in [HOSTNAME_FILE, cpu::CPUINFO, memory::MEMINFO] {
        m.file(Path::new(file))?;
    }

    let cpu_dir = Path::new(cpu::CPU_DIR);
    m.file(&cpu_dir.join("online"))?;
    for name in m.list(cpu_dir)? {
        if cpu::is_numbered(&name, "cpu") {
            m.file(&cpu_dir.join(&name).join("topology/physical_package_id"))?;
            m.file(&cpu_dir.join(&name).join("topology/core_id"))?;
        }
    }
    // The reader only counts the node directories; `cpulist` keeps each one
    // in git, which drops empty directories.
    let node_dir = Path::new(cpu::NODE_DIR);
    for name in m.list(node_dir)? {
        if cpu::is_numbered(&name, "node") {
            m.file(&node_dir.join(&name).join("cpulist"))?;
        }
    }

    let blocks_dir = Path::new(memory::MEMORY_BLOCKS_DIR);
    m.file(&blocks_dir.join("block_size_bytes"))?;
    for name in m.list(blocks_dir)? {
        if name.starts_with("memory") {
            m.file(&blocks_dir.join(&name).join("online"))?;
        }
    }

    let huge_dir = Path::new(memory::HUGEPAGES_DIR);
    for name in m.list(huge_dir)? {
        m.file(&huge_dir.join(&name).join("nr_hugepages"))?;
        m.file(&huge_dir.join(&name).join("free_hugepages"))?;
    }

    let block_dir = Path::new(disk::BLOCK_DIR);
    for name in m.list(block_dir)? {
        let dir = block_dir.join(&name);
        for file in disk::DISK_FILES {
            m.file(&dir.join(file))?;
        }
        for part in m.list(&dir)? {
            if root.join(&dir).join(&part).join("partition").is_file() {
                for file in disk::PARTITION_FILES {
                    m.file(&dir.join(&part).join(file))?;
                }
            }
        }
    }

    let pci_dir = Path::new(pci::PCI_DIR);
    for address in m.list(pci_dir)? {
        for file in pci::PCI_FILES {
            m.file(&pci_dir.join(&address).join(file))?;
        }
        m.link(&pci_dir.join(&address).join("driver"))?;
    }

    let net_dir = Path::new(nic::NET_DIR);
    for name in m.list(net_dir)? {
        m.file(&net_dir.join(&name).join("speed"))?;
        m.link(&net_dir.join(&name).join("device/driver"))?;
    }

    // The TPM's presence and version; the device itself is not recorded.
    let tpm_dir = Path::new(tpm::CLASS_DIR);
    for name in m.list(tpm_dir)? {
        m.file(&tpm_dir.join(&name).join("tpm_version_major"))?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DiscoveryError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| DiscoveryError::write(parent, e))?;
    }
    fs::write(path, bytes).map_err(|e| DiscoveryError::write(path, e))
}

/// What to do with the last component of a mirrored path.
#[derive(Clone, Copy, PartialEq)]
enum Leaf {
    /// Follow symlinks and copy the regular file at the end.
    File,
    /// Recreate the symlink itself, whatever it points to.
    Link,
}

/// Copies paths from `src` to `dst`, component by component.
struct Mirror<'a> {
    src: &'a Path,
    dst: &'a Path,
}

impl Mirror<'_> {
    fn file(&self, rel: &Path) -> Result<(), DiscoveryError> {
        self.copy(rel, Leaf::File)
    }

    fn link(&self, rel: &Path) -> Result<(), DiscoveryError> {
        self.copy(rel, Leaf::Link)
    }

    /// Entry names of a source directory (following symlinks), sorted.
    fn list(&self, rel: &Path) -> Result<Vec<String>, DiscoveryError> {
        list_dir(&self.src.join(rel))
    }

    /// Walks `rel` inside `src`, recreating each directory and symlink met
    /// under `dst`; see the module docs. Missing paths copy nothing.
    fn copy(&self, rel: &Path, leaf: Leaf) -> Result<(), DiscoveryError> {
        let mut pending = components(rel);
        // The symlink-free directory reached so far, relative to the roots.
        let mut cur = PathBuf::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop_front() {
            if comp == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&comp);
            let src = self.src.join(&next);
            let meta = match fs::symlink_metadata(&src) {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(DiscoveryError::read(&src, e)),
            };
            let last = pending.is_empty();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&src).map_err(|e| DiscoveryError::read(&src, e))?;
                self.make_link(&next, &target)?;
                if last && leaf == Leaf::Link {
                    return Ok(());
                }
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(DiscoveryError::parse(&src, "too many levels of symlinks"));
                }
                if target.is_absolute() {
                    cur.clear();
                }
                for (i, c) in components(&target).into_iter().enumerate() {
                    pending.insert(i, c);
                }
            } else if meta.is_dir() {
                let dst = self.dst.join(&next);
                fs::create_dir_all(&dst).map_err(|e| DiscoveryError::write(&dst, e))?;
                cur = next;
            } else {
                if last && leaf == Leaf::File && meta.is_file() {
                    // Unreadable attributes (EIO, EINVAL, EACCES) are skipped.
                    if let Ok(bytes) = fs::read(&src) {
                        write(&self.dst.join(&next), &bytes)?;
                    }
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Creates the symlink `dst/rel -> target` unless something is there.
    fn make_link(&self, rel: &Path, target: &Path) -> Result<(), DiscoveryError> {
        let at = self.dst.join(rel);
        if fs::symlink_metadata(&at).is_ok() {
            return Ok(());
        }
        symlink(target, &at).map_err(|e| DiscoveryError::write(&at, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn mirrors_files_through_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let dev = "sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda";
        write_file(s, &format!("{dev}/size"), "2048\n");
        write_file(s, &format!("{dev}/stat"), "not used\n");
        write_file(s, &format!("{dev}/vda1/partition"), "1\n");
        write_file(s, &format!("{dev}/vda1/start"), "34\n");
        write_file(s, &format!("{dev}/vda1/size"), "1000\n");
        fs::create_dir_all(s.join("sys/block")).unwrap();
        symlink(
            format!("../{}", dev.strip_prefix("sys/").unwrap()),
            s.join("sys/block/vda"),
        )
        .unwrap();
        symlink("../../../virtio2", s.join(dev).join("device")).unwrap();
        symlink(
            "../../../bus/virtio/drivers/virtio_blk",
            s.join("sys/devices/pci0000:00/0000:00:04.0/virtio2/driver"),
        )
        .unwrap();
        write_file(
            s,
            "sys/devices/pci0000:00/0000:00:04.0/virtio2/vendor",
            "0x1af4\n",
        );
        write_file(s, "proc/meminfo", "MemTotal: 1 kB\n");

        let dst = tempfile::tempdir().unwrap();
        let d = dst.path().join("fixture");
        capture_tree(s, &d).unwrap();

        assert_eq!(
            fs::read_link(d.join("sys/block/vda")).unwrap(),
            fs::read_link(s.join("sys/block/vda")).unwrap()
        );
        assert_eq!(
            fs::read_to_string(d.join("sys/block/vda/size")).unwrap(),
            "2048\n"
        );
        assert_eq!(
            fs::read_to_string(d.join("sys/block/vda/vda1/start")).unwrap(),
            "34\n"
        );
        assert_eq!(
            fs::read_to_string(d.join("sys/block/vda/device/vendor")).unwrap(),
            "0x1af4\n"
        );
        assert!(
            fs::symlink_metadata(d.join(dev).join("device"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            !d.join(dev).join("stat").exists(),
            "unused files are not copied"
        );
        assert!(d.join("proc/meminfo").is_file());
        // The same walk again is a no-op (existing links are kept).
        capture_tree(s, &d).unwrap();
    }

    #[test]
    fn link_leaf_is_not_followed() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let dev = "sys/devices/pci0000:00/0000:00:02.0";
        write_file(s, &format!("{dev}/class"), "0x030000\n");
        write_file(s, &format!("{dev}/vendor"), "0x1234\n");
        fs::create_dir_all(s.join("sys/bus/pci/devices")).unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:02.0",
            s.join("sys/bus/pci/devices/0000:00:02.0"),
        )
        .unwrap();
        symlink(
            "../../../bus/pci/drivers/bochs-drm",
            s.join(dev).join("driver"),
        )
        .unwrap();
        write_file(s, "sys/bus/pci/drivers/bochs-drm/bind", "");

        let dst = tempfile::tempdir().unwrap();
        capture_tree(s, dst.path()).unwrap();
        let d = dst.path();
        assert_eq!(
            fs::read_link(d.join(dev).join("driver")).unwrap(),
            Path::new("../../../bus/pci/drivers/bochs-drm")
        );
        assert!(!d.join("sys/bus/pci/drivers").exists());
        assert_eq!(
            pci::read(d).unwrap()[0].driver.as_deref(),
            Some("bochs-drm")
        );
    }

    #[test]
    fn records_the_tpm_class_through_its_link() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let dev = "sys/devices/platform/MSFT0101:00/tpm/tpm0";
        write_file(s, &format!("{dev}/tpm_version_major"), "2\n");
        write_file(s, &format!("{dev}/dev"), "10:224\n");
        write_file(s, "proc/meminfo", "MemTotal: 1 kB\n");
        fs::create_dir_all(s.join("sys/class/tpm")).unwrap();
        symlink(
            "../../devices/platform/MSFT0101:00/tpm/tpm0",
            s.join("sys/class/tpm/tpm0"),
        )
        .unwrap();

        let dst = tempfile::tempdir().unwrap();
        capture_tree(s, dst.path()).unwrap();
        let d = dst.path();
        assert_eq!(
            fs::read_to_string(d.join("sys/class/tpm/tpm0/tpm_version_major")).unwrap(),
            "2\n"
        );
        assert!(!d.join(dev).join("dev").exists());
        let found = tpm::detect(d).unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.major), ("tpm0", Some(2)));
    }
}
