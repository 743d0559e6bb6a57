//! Loading kernel modules: by name (the bundle's boot list, `keel.modules`,
//! and the kernel's own requests through `/sbin/modprobe`, which is this
//! binary), and by hardware ("coldplug": every device's `modalias` in sysfs).
//! Also names the NICs that no shipped driver can drive.
//!
//! Modules are loaded with `finit_module(2)` through rustix's safe wrapper,
//! from the uncompressed `.ko` files the bundle ships.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kmod::{KmodError, ModuleIndex, glob_match};

/// The bundle's list of modules loaded at every boot (`[load]` of
/// `initramfs/modules.txt`), one per line.
pub const BOOT_LIST: &str = "etc/keel/modules-load";
/// Alias lines (`alias PATTERN MODULE`) of the network drivers the kernel
/// has but the bundle does not ship, to name what is missing.
pub const MISSING_ALIASES: &str = "etc/keel/missing-nic-drivers.alias";

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Index(#[from] KmodError),
    #[error("cannot open module {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load module {path}: {source}")]
    Load {
        path: PathBuf,
        source: rustix::io::Errno,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Loads modules from `/lib/modules/<release>`, remembering what it loaded.
pub struct Loader {
    dir: PathBuf,
    index: ModuleIndex,
    loaded: BTreeSet<String>,
}

impl Loader {
    /// Opens the index of the running kernel under `root` (`/` at boot).
    pub fn open(root: &Path) -> Result<Self, ModuleError> {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let dir = root.join("lib/modules").join(release);
        let index = ModuleIndex::load(&dir)?;
        Ok(Loader {
            dir,
            index,
            loaded: BTreeSet::new(),
        })
    }

    pub fn index(&self) -> &ModuleIndex {
        &self.index
    }

    /// Loads `name` (a module or alias) and what it needs. Returns the
    /// modules this call loaded.
    pub fn load(&mut self, name: &str) -> Result<Vec<String>, ModuleError> {
        let order = self.index.load_order(&[name])?;
        let mut loaded = Vec::new();
        for module in order {
            if self.loaded.contains(&module) {
                continue;
            }
            let Some(rel) = self.index.path(&module) else {
                continue;
            };
            let path = self.dir.join(rel);
            let file = File::open(&path).map_err(|source| ModuleError::Open {
                path: path.clone(),
                source,
            })?;
            match rustix::system::finit_module(&file, c"", 0) {
                Ok(()) => loaded.push(module.clone()),
                // Already loaded (by an earlier boot step or the kernel).
                Err(rustix::io::Errno::EXIST) => {}
                Err(source) => return Err(ModuleError::Load { path, source }),
            }
            self.loaded.insert(module);
        }
        Ok(loaded)
    }

    /// Loads the drivers of every device in sysfs that has a `modalias`,
    /// again until a round loads nothing new (a bus driver such as
    /// virtio_pci makes the devices its children's drivers bind to).
    /// Returns every module loaded and the failures, which do not stop it.
    pub fn coldplug(&mut self, sys: &Path) -> (Vec<String>, Vec<ModuleError>) {
        let mut all = Vec::new();
        let mut errors = Vec::new();
        let mut tried = BTreeSet::new();
        for _round in 0..8 {
            let mut new = 0;
            for alias in modaliases(sys) {
                if !tried.insert(alias.clone()) {
                    continue;
                }
                for module in self.index.lookup_alias(&alias) {
                    match self.load(&module) {
                        Ok(l) => {
                            new += l.len();
                            all.extend(l);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            if new == 0 {
                break;
            }
        }
        (all, errors)
    }
}

/// The `modalias` of every device on every bus under `sys` (`/sys`).
pub fn modaliases(sys: &Path) -> Vec<String> {
    let mut out = BTreeSet::new();
    let Ok(buses) = fs::read_dir(sys.join("bus")) else {
        return Vec::new();
    };
    for bus in buses.flatten() {
        let Ok(devices) = fs::read_dir(bus.path().join("devices")) else {
            continue;
        };
        for dev in devices.flatten() {
            if let Ok(a) = fs::read_to_string(dev.path().join("modalias")) {
                let a = a.trim();
                if !a.is_empty() {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Waits until the block and network devices under `sys` stop changing for
/// `quiet` (drivers such as nvme and SCSI scan asynchronously), at most
/// `limit`. Returns whether they settled.
pub fn settle(sys: &Path, quiet: Duration, limit: Duration) -> bool {
    let snapshot = || {
        let list = |d: &str| -> Vec<String> {
            fs::read_dir(sys.join(d))
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut v = list("class/block");
        v.extend(list("class/net"));
        v.sort();
        v
    };
    let start = Instant::now();
    let mut last = snapshot();
    let mut stable_since = Instant::now();
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
        let now = snapshot();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// A network-class PCI device that no driver bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndrivenNic {
    pub pci_address: String,
    pub vendor_device: String,
    pub modalias: String,
    /// Kernel modules that would drive it but are not in the bundle.
    pub missing_modules: Vec<String>,
}

impl std::fmt::Display for UndrivenNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network device {} [{}] has no driver: ",
            self.pci_address, self.vendor_device
        )?;
        if self.missing_modules.is_empty() {
            write!(f, "no kernel module matches {}", self.modalias)
        } else {
            write!(
                f,
                "needs module {}, which this initramfs does not carry",
                self.missing_modules.join(" or ")
            )
        }
    }
}

/// PCI devices of class 0x02 (network) without a bound driver under `sys`,
/// with the modules from `missing_aliases` (text of `alias PATTERN MODULE`
/// lines) that match them.
pub fn undriven_nics(sys: &Path, missing_aliases: &str) -> Vec<UndrivenNic> {
    let aliases: Vec<(&str, &str)> = missing_aliases
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(p), Some(m)) => Some((p, m)),
                _ => None,
            }
        })
        .collect();
    let mut out = Vec::new();
    let Ok(devices) = fs::read_dir(sys.join("bus/pci/devices")) else {
        return out;
    };
    let mut devices: Vec<_> = devices.flatten().map(|d| d.path()).collect();
    devices.sort();
    for dev in devices {
        let read = |f: &str| {
            fs::read_to_string(dev.join(f))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        if !read("class").starts_with("0x02") || dev.join("driver").exists() {
            continue;
        }
        let modalias = read("modalias");
        let mut missing: Vec<String> = Vec::new();
        for (pattern, module) in &aliases {
            if glob_match(pattern, &modalias) && !missing.iter().any(|m| m == module) {
                missing.push(module.to_string());
            }
        }
        out.push(UndrivenNic {
            pci_address: dev
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            vendor_device: format!(
                "{}:{}",
                read("vendor").trim_start_matches("0x"),
                read("device").trim_start_matches("0x")
            ),
            modalias,
            missing_modules: missing,
        });
    }
    out
}

/// The list file at `path` (one module per line, `#` comments).
pub fn read_list(path: &Path) -> Result<Vec<String>, ModuleError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ModuleError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `modprobe [-q] [-b] [--] NAME...`, as the kernel runs it for
/// `request_module` (`/sbin/modprobe -q -- rtnl-link-bridge`). Returns the
/// exit status.
pub fn modprobe_main(args: &[String]) -> i32 {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut loader = match Loader::open(Path::new("/")) {
        Ok(l) => l,
        Err(e) => {
            if !quiet {
                eprintln!("modprobe: {e}");
            }
            return 1;
        }
    };
    let mut status = 0;
    for name in names {
        if let Err(e) = loader.load(name) {
            if !quiet {
                eprintln!("modprobe: {e}");
            }
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn undriven_nics_are_named_with_the_missing_module() {
        let sys = tempfile::tempdir().unwrap();
        let s = sys.path();
        // An RTL8139 without driver, an e1000 with one, a disk controller.
        write(s, "bus/pci/devices/0000:00:05.0/class", "0x020000\n");
        write(s, "bus/pci/devices/0000:00:05.0/vendor", "0x10ec\n");
        write(s, "bus/pci/devices/0000:00:05.0/device", "0x8139\n");
        write(
            s,
            "bus/pci/devices/0000:00:05.0/modalias",
            "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00\n",
        );
        write(s, "bus/pci/devices/0000:00:03.0/class", "0x020000\n");
        write(s, "bus/pci/devices/0000:00:03.0/driver/bind", "");
        write(s, "bus/pci/devices/0000:00:04.0/class", "0x010802\n");
        write(s, "bus/pci/devices/0000:00:06.0/class", "0x020000\n");
        write(s, "bus/pci/devices/0000:00:06.0/vendor", "0x1234\n");
        write(s, "bus/pci/devices/0000:00:06.0/device", "0x0001\n");
        write(
            s,
            "bus/pci/devices/0000:00:06.0/modalias",
            "pci:v00001234d00000001\n",
        );
        let aliases = "alias pci:v000010ECd00008139sv*sd*bc*sc*i* 8139too\n\
                       alias pci:v000010ECd00008139sv*sd*bc*sc*i* 8139cp\n";
        let found = undriven_nics(s, aliases);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].pci_address, "0000:00:05.0");
        assert_eq!(found[0].missing_modules, ["8139too", "8139cp"]);
        assert_eq!(
            found[0].to_string(),
            "network device 0000:00:05.0 [10ec:8139] has no driver: needs module 8139too or 8139cp, which this initramfs does not carry"
        );
        assert_eq!(
            found[1].to_string(),
            "network device 0000:00:06.0 [1234:0001] has no driver: no kernel module matches pci:v00001234d00000001"
        );
    }

    #[test]
    fn modaliases_and_lists() {
        let sys = tempfile::tempdir().unwrap();
        write(sys.path(), "bus/pci/devices/a/modalias", "pci:x\n");
        write(
            sys.path(),
            "bus/virtio/devices/virtio0/modalias",
            "virtio:d00000001v00001AF4\n",
        );
        write(sys.path(), "bus/pci/devices/b/modalias", "pci:x\n");
        assert_eq!(
            modaliases(sys.path()),
            ["pci:x", "virtio:d00000001v00001AF4"]
        );
        write(sys.path(), "list", "ext4\n# comment\n bridge # why\n\n");
        assert_eq!(
            read_list(&sys.path().join("list")).unwrap(),
            ["ext4", "bridge"]
        );
        assert!(read_list(&sys.path().join("absent")).unwrap().is_empty());
    }
}
