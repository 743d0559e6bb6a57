//! The TPM's fixed properties (`TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES)`,
//! TPM 2.0 Part 2 §6.13) turned into the inventory's fields. Pure.

use keel_api::inventory::TpmInfo;

pub const PT_FAMILY_INDICATOR: u32 = 0x100;
pub const PT_LEVEL: u32 = 0x101;
pub const PT_REVISION: u32 = 0x102;
pub const PT_MANUFACTURER: u32 = 0x105;
pub const PT_VENDOR_STRING_1: u32 = 0x106;
pub const PT_VENDOR_STRING_4: u32 = 0x109;
pub const PT_FIRMWARE_VERSION_1: u32 = 0x10b;
pub const PT_FIRMWARE_VERSION_2: u32 = 0x10c;

/// The first property read and how many: `TPM_PT_FAMILY_INDICATOR` to
/// `TPM_PT_FIRMWARE_VERSION_2`, which every TPM 2.0 has.
pub const FIRST: u32 = PT_FAMILY_INDICATOR;
pub const COUNT: u32 = PT_FIRMWARE_VERSION_2 - PT_FAMILY_INDICATOR + 1;

/// Fills `info` from `(tag, value)` pairs; unknown tags are ignored and
/// missing ones leave their field unset.
pub fn apply(props: &[(u32, u32)], info: &mut TpmInfo) {
    let get = |tag: u32| props.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    info.family = get(PT_FAMILY_INDICATOR)
        .map(ascii)
        .filter(|s| !s.is_empty());
    info.level = get(PT_LEVEL);
    info.revision = get(PT_REVISION).map(|r| format!("{}.{:02}", r / 100, r % 100));
    info.manufacturer = get(PT_MANUFACTURER).map(ascii).filter(|s| !s.is_empty());
    let vendor: String = (PT_VENDOR_STRING_1..=PT_VENDOR_STRING_4)
        .filter_map(get)
        .map(ascii_untrimmed)
        .collect();
    let vendor = vendor.trim();
    info.vendor = (!vendor.is_empty()).then(|| vendor.to_string());
    info.firmware_version = get(PT_FIRMWARE_VERSION_1).map(|v1| {
        let v2 = get(PT_FIRMWARE_VERSION_2).unwrap_or(0);
        format!("{}.{}.{}.{}", v1 >> 16, v1 & 0xffff, v2 >> 16, v2 & 0xffff)
    });
}

/// A property holding up to four ASCII characters, most significant byte
/// first, as the TPM packs them; NULs dropped, anything unprintable shown
/// as `?`, trailing spaces trimmed (`IBM`, `INTC`).
fn ascii(v: u32) -> String {
    ascii_untrimmed(v).trim_end().to_string()
}

fn ascii_untrimmed(v: u32) -> String {
    v.to_be_bytes()
        .iter()
        .filter(|b| **b != 0)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::discovery::tpm::fake::swtpm_properties as swtpm;

    fn chars(s: &[u8; 4]) -> u32 {
        u32::from_be_bytes(*s)
    }

    #[test]
    fn swtpm_properties() {
        let mut info = TpmInfo::default();
        apply(&swtpm(), &mut info);
        assert_eq!(info.family.as_deref(), Some("2.0"));
        assert_eq!(info.level, Some(0));
        assert_eq!(info.revision.as_deref(), Some("1.64"));
        assert_eq!(info.manufacturer.as_deref(), Some("IBM"));
        assert_eq!(info.vendor.as_deref(), Some("SW   TPM"));
        assert_eq!(info.firmware_version.as_deref(), Some("8217.4131.22.13878"));
    }

    #[test]
    fn intel_ptt_style_values() {
        let mut info = TpmInfo::default();
        apply(
            &[
                (PT_MANUFACTURER, chars(b"INTC")),
                (0x106, chars(b"Inte")),
                (0x107, chars(b"l\0\0\0")),
                (PT_FIRMWARE_VERSION_1, (600 << 16) | 18),
                (PT_FIRMWARE_VERSION_2, 0),
                (PT_REVISION, 138),
            ],
            &mut info,
        );
        assert_eq!(info.manufacturer.as_deref(), Some("INTC"));
        assert_eq!(info.vendor.as_deref(), Some("Intel"));
        assert_eq!(info.firmware_version.as_deref(), Some("600.18.0.0"));
        assert_eq!(info.revision.as_deref(), Some("1.38"));
        assert_eq!(info.family, None);
    }

    #[test]
    fn missing_and_odd_values() {
        let mut info = TpmInfo::default();
        apply(&[], &mut info);
        assert_eq!(info, TpmInfo::default());

        apply(
            &[
                (PT_MANUFACTURER, 0x0141_4200),
                (PT_FIRMWARE_VERSION_1, 0x0001_0002),
            ],
            &mut info,
        );
        assert_eq!(info.manufacturer.as_deref(), Some("?AB"));
        assert_eq!(info.firmware_version.as_deref(), Some("1.2.0.0"));
        assert_eq!(info.vendor, None);
    }

    #[test]
    fn the_read_covers_every_property_used() {
        for tag in [
            PT_FAMILY_INDICATOR,
            PT_MANUFACTURER,
            PT_VENDOR_STRING_4,
            PT_FIRMWARE_VERSION_2,
        ] {
            assert!((FIRST..FIRST + COUNT).contains(&tag));
        }
    }
}
