//! `boot.ipxe`: the iPXE script served next to `vmlinuz` and
//! `initramfs.img`. Its URLs are relative, so it works from any TFTP or HTTP
//! location; its settings have defaults that a site script can override
//! before chaining to it (`set keel-masters ...` then `chain .../boot.ipxe`),
//! or that iPXE may already hold (from DHCP options or the iPXE shell).

/// Defaults written into the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDefaults {
    pub role: String,
    pub masters: String,
    pub console: String,
    /// Further kernel parameters (`quiet`, `keel.workdisk=...`).
    pub extra: String,
}

impl Default for BootDefaults {
    fn default() -> Self {
        BootDefaults {
            role: "agent".into(),
            // The host as QEMU user networking shows it to a guest.
            masters: "10.0.2.2:5050".into(),
            console: "ttyS0".into(),
            extra: "quiet".into(),
        }
    }
}

/// The script. `BOOTIF` tells init which NIC booted, so it runs DHCP there.
pub fn script(d: &BootDefaults) -> String {
    format!(
        "#!ipxe
# Keel PXE boot (written by `cargo xtask pxe`). Serve this file next to
# vmlinuz and initramfs.img; the URLs below are relative to it. Override the
# settings before chaining here, e.g. from a site script:
#   set keel-masters 10.0.0.10:5050,10.0.0.11:5050
#   chain http://boot.example/keel/boot.ipxe
isset ${{keel-role}} || set keel-role {role}
isset ${{keel-masters}} || set keel-masters {masters}
isset ${{keel-console}} || set keel-console {console}
isset ${{keel-extra}} || set keel-extra {extra}
echo Keel: booting ${{keel-role}} for masters ${{keel-masters}} from ${{netX/mac}}
kernel vmlinuz initrd=initramfs.img console=${{keel-console}} keel.role=${{keel-role}} keel.masters=${{keel-masters}} BOOTIF=01-${{netX/mac:hexhyp}} ${{keel-extra}}
initrd initramfs.img
boot
",
        role = d.role,
        masters = d.masters,
        console = d.console,
        extra = if d.extra.is_empty() { "quiet" } else { &d.extra },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_settings_and_urls_are_relative() {
        let s = script(&BootDefaults {
            masters: "192.168.1.10:5050".into(),
            ..BootDefaults::default()
        });
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("isset ${keel-masters} || set keel-masters 192.168.1.10:5050\n"));
        assert!(s.contains("\nkernel vmlinuz initrd=initramfs.img console=${keel-console} keel.role=${keel-role} keel.masters=${keel-masters} BOOTIF=01-${netX/mac:hexhyp} ${keel-extra}\n"));
        assert!(s.contains("\ninitrd initramfs.img\nboot\n"));
        assert!(!s.contains("http://10") && !s.contains("tftp://"));
    }
}
