//! Memory totals and huge pages.
//!
//! - `MemTotal`, `MemAvailable`, `SwapTotal` from `proc/meminfo` (kB there).
//! - one [`HugePages`] per `sys/kernel/mm/hugepages/hugepages-<size>kB`
//!   directory: `nr_hugepages` (total) and `free_hugepages`, sorted by size.

use std::path::Path;

use keel_api::inventory::{HugePages, MemoryInfo};

use super::DiscoveryError;
use super::sysfs::{attr_u64, list_dir, read_string};

pub(crate) const MEMINFO: &str = "proc/meminfo";
pub(crate) const HUGEPAGES_DIR: &str = "sys/kernel/mm/hugepages";
pub(crate) const MEMORY_BLOCKS_DIR: &str = "sys/devices/system/memory";

/// Reads memory and huge page counts of the machine under `root`.
pub fn read(root: &Path) -> Result<MemoryInfo, DiscoveryError> {
    let path = root.join(MEMINFO);
    let text = read_string(&path)?;
    let field = |name: &str| -> Result<u64, DiscoveryError> {
        meminfo_kib(&text, name)
            .map(|kib| kib * 1024)
            .ok_or_else(|| DiscoveryError::parse(&path, format!("no {name} line")))
    };
    Ok(MemoryInfo {
        total_bytes: field("MemTotal")?,
        physical_bytes: physical(root),
        // Kernels before 3.14 lack MemAvailable; SwapTotal is always there.
        available_bytes: meminfo_kib(&text, "MemAvailable").map_or(0, |kib| kib * 1024),
        swap_total_bytes: field("SwapTotal")?,
        hugepages: hugepages(root)?,
    })
}

/// Installed RAM: the online memory blocks times the block size
/// (`block_size_bytes` is hex). `None` without memory-block sysfs.
fn physical(root: &Path) -> Option<u64> {
    let dir = root.join(MEMORY_BLOCKS_DIR);
    let size = read_string(&dir.join("block_size_bytes")).ok()?;
    let size = u64::from_str_radix(size.trim().trim_start_matches("0x"), 16).ok()?;
    let online = list_dir(&dir)
        .ok()?
        .into_iter()
        .filter(|name| {
            name.strip_prefix("memory")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|name| read_string(&dir.join(name).join("online")).is_ok_and(|s| s.trim() == "1"))
        .count() as u64;
    (online > 0).then_some(online * size)
}

/// The value of a `Name:   123 kB` line of /proc/meminfo, in KiB.
fn meminfo_kib(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        if key != name {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Huge page pools, one per supported page size.
fn hugepages(root: &Path) -> Result<Vec<HugePages>, DiscoveryError> {
    let dir = root.join(HUGEPAGES_DIR);
    let mut pools = Vec::new();
    for name in list_dir(&dir)? {
        let Some(kib) = page_size_kib(&name) else {
            continue;
        };
        pools.push(HugePages {
            page_size_bytes: kib * 1024,
            total: attr_u64(&dir.join(&name).join("nr_hugepages")).unwrap_or(0),
            free: attr_u64(&dir.join(&name).join("free_hugepages")).unwrap_or(0),
        });
    }
    pools.sort_by_key(|p| p.page_size_bytes);
    Ok(pools)
}

/// `hugepages-2048kB` -> 2048.
fn page_size_kib(dir_name: &str) -> Option<u64> {
    dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO_TEXT: &str = "MemTotal:        2035136 kB\nMemFree:         1900000 kB\n\
        MemAvailable:    1874200 kB\nSwapCached:            0 kB\nSwapTotal:       1048572 kB\n\
        SwapFree:        1048572 kB\nHugePages_Total:      16\nHugepagesize:       2048 kB\n";

    use crate::discovery::sysfs::test_support::write;

    #[test]
    fn meminfo_and_hugepages() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, MEMINFO, MEMINFO_TEXT);
        let hp = "sys/kernel/mm/hugepages";
        write(r, &format!("{hp}/hugepages-2048kB/nr_hugepages"), "16\n");
        write(r, &format!("{hp}/hugepages-2048kB/free_hugepages"), "15\n");
        write(r, &format!("{hp}/hugepages-1048576kB/nr_hugepages"), "0\n");
        write(
            r,
            &format!("{hp}/hugepages-1048576kB/free_hugepages"),
            "0\n",
        );
        write(r, &format!("{hp}/README"), "not a pool\n");
        let mem = read(r).unwrap();
        assert_eq!(mem.total_bytes, 2035136 * 1024);
        assert_eq!(mem.available_bytes, 1874200 * 1024);
        assert_eq!(mem.swap_total_bytes, 1048572 * 1024);
        assert_eq!(
            mem.hugepages,
            [
                HugePages {
                    page_size_bytes: 2 << 20,
                    total: 16,
                    free: 15
                },
                HugePages {
                    page_size_bytes: 1 << 30,
                    total: 0,
                    free: 0
                },
            ]
        );
    }

    #[test]
    fn no_hugepages_dir_and_old_kernel() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), MEMINFO, "MemTotal: 1024 kB\nSwapTotal: 0 kB\n");
        let mem = read(dir.path()).unwrap();
        assert_eq!((mem.total_bytes, mem.available_bytes), (1 << 20, 0));
        assert!(mem.hugepages.is_empty());
    }

    #[test]
    fn missing_total_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), MEMINFO, "MemFree: 1 kB\n");
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("proc/meminfo") && err.contains("MemTotal"),
            "{err}"
        );
    }

    #[test]
    fn installed_memory_counts_online_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "sys/devices/system/memory/block_size_bytes",
            "8000000\n",
        );
        for (i, online) in ["1", "1", "0", "1"].iter().enumerate() {
            write(
                root,
                &format!("sys/devices/system/memory/memory{i}/online"),
                online,
            );
        }
        write(
            root,
            "sys/devices/system/memory/auto_online_blocks",
            "online\n",
        );
        // 3 online blocks of 128 MiB.
        assert_eq!(physical(root), Some(3 * (128 << 20)));
        assert_eq!(physical(&root.join("nowhere")), None);
    }
}
