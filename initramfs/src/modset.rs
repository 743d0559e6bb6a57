//! The modules the bundle ships: the closure of bundle.conf's `[load]` and
//! `[ship]` over the kernel's index, and the index files cut down to them,
//! so init needs no depmod at boot.

use std::collections::BTreeSet;

use keel_init::kmod::{KmodError, ModuleIndex, module_name, normalize};

#[derive(Debug, thiserror::Error)]
pub enum ModSetError {
    #[error("bundle.conf names a module the kernel does not have: {0}")]
    Index(#[from] KmodError),
}

/// The full index files of a kernel, as text.
#[derive(Debug, Clone, Default)]
pub struct IndexTexts {
    pub dep: String,
    pub alias: String,
    pub softdep: String,
    pub builtin: String,
}

/// What to ship.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSet {
    /// Module names, sorted.
    pub modules: BTreeSet<String>,
    /// Paths relative to the modules dir, sorted.
    pub files: Vec<String>,
    pub dep: String,
    pub alias: String,
    pub softdep: String,
    pub builtin: String,
    /// PCI alias lines of the kernel's network drivers left out, so init
    /// can name the module an undriven NIC needs.
    pub missing_nic_aliases: String,
}

/// Network drivers under these directories are named when missing; the
/// rest of drivers/net (wireless, USB, CAN) is not what servers boot from.
const NIC_DIRS: &[&str] = &["kernel/drivers/net/"];
const NOT_NIC_DIRS: &[&str] = &[
    "kernel/drivers/net/wireless/",
    "kernel/drivers/net/usb/",
    "kernel/drivers/net/can/",
    "kernel/drivers/net/wwan/",
];

pub fn select(texts: &IndexTexts, wanted: &[&str]) -> Result<ModuleSet, ModSetError> {
    let index = ModuleIndex::parse(&texts.dep, &texts.alias, &texts.softdep, &texts.builtin)?;
    let modules: BTreeSet<String> = index.load_order(wanted)?.into_iter().collect();
    let mut files: Vec<String> = modules
        .iter()
        .filter_map(|m| index.path(m).map(str::to_string))
        .collect();
    files.sort();
    let keep = |line: &str, module_word: usize| {
        line.split_whitespace()
            .nth(module_word)
            .is_some_and(|m| modules.contains(&normalize(m)))
    };
    let dep = texts
        .dep
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(p, _)| modules.contains(&module_name(p)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let alias = texts
        .alias
        .lines()
        .filter(|l| keep(l, 2))
        .map(|l| format!("{l}\n"))
        .collect();
    let softdep = texts
        .softdep
        .lines()
        .filter(|l| keep(l, 1))
        .map(|l| format!("{l}\n"))
        .collect();
    let nic_modules: BTreeSet<String> = texts
        .dep
        .lines()
        .filter_map(|l| l.split_once(':').map(|(p, _)| p))
        .filter(|p| {
            NIC_DIRS.iter().any(|d| p.starts_with(d))
                && !NOT_NIC_DIRS.iter().any(|d| p.starts_with(d))
        })
        .map(module_name)
        .filter(|m| !modules.contains(m))
        .collect();
    let missing_nic_aliases = texts
        .alias
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("alias")
                && w.next().is_some_and(|p| p.starts_with("pci:"))
                && w.next()
                    .is_some_and(|m| nic_modules.contains(&normalize(m)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(ModuleSet {
        modules,
        files,
        dep,
        alias,
        softdep,
        builtin: texts.builtin.clone(),
        missing_nic_aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> IndexTexts {
        IndexTexts {
            dep: "\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/ethernet/realtek/8139too.ko: kernel/drivers/net/mii.ko
kernel/drivers/net/mii.ko:
kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
"
            .into(),
            alias: "\
alias virtio:d00000001v* virtio_net
alias pci:v000010ECd00008139sv*sd*bc*sc*i* 8139too
alias pci:v00008086d00002723sv*sd*bc*sc*i* iwlwifi
alias crypto-crc32c crc32c_generic
alias fs-ext4 ext4
"
            .into(),
            softdep: "softdep ext4 pre: crypto-crc32c\nsoftdep iwlwifi pre: x\n".into(),
            builtin: "kernel/drivers/virtio/virtio_pci.ko\n".into(),
        }
    }

    #[test]
    fn the_closure_and_its_index() {
        let set = select(&texts(), &["ext4", "virtio_net", "virtio_pci"]).unwrap();
        assert_eq!(
            set.modules.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "crc32c_generic",
                "ext4",
                "failover",
                "jbd2",
                "net_failover",
                "virtio_net"
            ]
        );
        assert_eq!(set.files.len(), 6);
        assert_eq!(set.dep.lines().count(), 6);
        assert_eq!(
            set.alias,
            "alias virtio:d00000001v* virtio_net\nalias crypto-crc32c crc32c_generic\nalias fs-ext4 ext4\n"
        );
        assert_eq!(set.softdep, "softdep ext4 pre: crypto-crc32c\n");
        // 8139too is a NIC driver left out; iwlwifi is wireless.
        assert_eq!(
            set.missing_nic_aliases,
            "alias pci:v000010ECd00008139sv*sd*bc*sc*i* 8139too\n"
        );
        // The cut-down index is a valid index that resolves the same way.
        let small = ModuleIndex::parse(&set.dep, &set.alias, &set.softdep, &set.builtin).unwrap();
        assert_eq!(
            small.load_order(&["ext4"]).unwrap(),
            ["crc32c_generic", "jbd2", "ext4"]
        );
    }

    #[test]
    fn unknown_modules_are_errors() {
        let e = select(&texts(), &["nosuch"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bundle.conf names a module the kernel does not have: module or alias \"nosuch\" is not in modules.dep, modules.alias or modules.builtin"
        );
    }
}
