//! Small helpers shared by the readers: sysfs attribute files, symlinks and
//! directory listings, always relative to a root directory.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::DiscoveryError;

/// Reads a file that must exist (e.g. `proc/meminfo`).
pub(crate) fn read_string(path: &Path) -> Result<String, DiscoveryError> {
    fs::read_to_string(path).map_err(|e| DiscoveryError::read(path, e))
}

/// Reads an optional attribute: trimmed, `None` when the file is missing,
/// unreadable (sysfs answers EIO/EINVAL for some attributes of down or
/// virtual devices) or empty.
pub(crate) fn attr(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// An optional attribute parsed as a decimal unsigned integer.
pub(crate) fn attr_u64(path: &Path) -> Option<u64> {
    attr(path)?.parse().ok()
}

/// An optional attribute holding a `0x`-prefixed hexadecimal number, as in
/// the PCI `class`, `vendor` and `device` files.
pub(crate) fn attr_hex(path: &Path) -> Option<u32> {
    let text = attr(path)?;
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    u32::from_str_radix(digits, 16).ok()
}

/// The last component of a symlink's target, e.g. the driver name from a
/// `driver -> ../../bus/pci/drivers/nvme` link. Works on dangling links.
pub(crate) fn link_basename(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Resolves `path` (which lies under `root`) through all symlinks and returns
/// the result relative to `root`, e.g. `sys/block/vda` ->
/// `sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda`.
///
/// Unlike `canonicalize`, this walks the path one component at a time inside
/// `root` (`..` stops at `root`, absolute link targets restart from it), and a
/// missing component is taken as a plain directory, so a fixture whose
/// directories git dropped for being empty still resolves. `None` when `path`
/// is not under `root` or the links loop.
pub(crate) fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let mut pending: VecDeque<OsString> = components(rel);
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(comp) = pending.pop_front() {
        if comp == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&comp);
        match fs::read_link(root.join(&next)) {
            Ok(target) => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return None;
                }
                if target.is_absolute() {
                    cur.clear();
                }
                for (i, c) in components(&target).into_iter().enumerate() {
                    pending.insert(i, c);
                }
            }
            Err(_) => cur = next,
        }
    }
    Some(cur)
}

/// How many symlinks a walk follows before giving up (the kernel's limit).
pub(crate) const MAX_SYMLINK_HOPS: usize = 40;

/// The normal and `..` components of a relative or absolute path.
pub(crate) fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The names in a directory, sorted; an absent directory has none.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, DiscoveryError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DiscoveryError::read(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DiscoveryError::read(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Whether `s` looks like a PCI address, `dddd:bb:dd.f` in hex (the domain
/// can be longer than four digits, e.g. `10000:e1:00.0` behind Intel VMD).
pub(crate) fn is_pci_address(s: &str) -> bool {
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|c| c.is_ascii_hexdigit());
    let mut parts = s.split(':');
    let (Some(domain), Some(bus), Some(devfn), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    domain.len() >= 4 && hex(domain, domain.len()) && hex(bus, 2) && hex(dev, 2) && hex(func, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:00:1f.3"));
        assert!(is_pci_address("10000:e1:00.0"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("virtio2"));
        assert!(!is_pci_address("0000:0g:00.0"));
    }

    #[test]
    fn attributes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("model"), "QEMU HARDDISK   \n").unwrap();
        fs::write(p.join("empty"), "  \n").unwrap();
        fs::write(p.join("class"), "0x030200\n").unwrap();
        fs::write(p.join("size"), "2048\n").unwrap();
        assert_eq!(attr(&p.join("model")).as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(attr(&p.join("empty")), None);
        assert_eq!(attr(&p.join("missing")), None);
        assert_eq!(attr_hex(&p.join("class")), Some(0x030200));
        assert_eq!(attr_u64(&p.join("size")), Some(2048));
        assert_eq!(attr_u64(&p.join("model")), None);
    }

    #[test]
    fn links_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir_all(p.join("sys/devices/x/block/vda")).unwrap();
        fs::create_dir_all(p.join("sys/block")).unwrap();
        std::os::unix::fs::symlink("../devices/x/block/vda", p.join("sys/block/vda")).unwrap();
        std::os::unix::fs::symlink("../../gone/nvme", p.join("sys/driver")).unwrap();
        assert_eq!(
            resolve(p, &p.join("sys/block/vda")),
            Some(PathBuf::from("sys/devices/x/block/vda"))
        );
        assert_eq!(
            link_basename(&p.join("sys/driver")).as_deref(),
            Some("nvme")
        );
        // Dangling and looping links.
        std::os::unix::fs::symlink("../../gone/x/y", p.join("sys/devices/x/dangling")).unwrap();
        std::os::unix::fs::symlink("loop", p.join("sys/loop")).unwrap();
        assert_eq!(
            resolve(p, &p.join("sys/devices/x/dangling/z")),
            Some(PathBuf::from("sys/gone/x/y/z"))
        );
        assert_eq!(resolve(p, &p.join("sys/loop")), None);
        assert_eq!(resolve(p, Path::new("/elsewhere")), None);
        assert_eq!(
            list_dir(&p.join("sys")).unwrap(),
            ["block", "devices", "driver", "loop"]
        );
        assert!(list_dir(&p.join("nope")).unwrap().is_empty());
    }
}

/// Builders for the hand-made trees the readers' unit tests use.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fs;
    use std::path::Path;

    /// Writes `text` at `root/rel`, creating the directories on the way.
    pub(crate) fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}
