//! The TPM 2.0 source: is there a TPM, what is it, and which endorsement
//! key (EK) does it have.
//!
//! Three steps, only the last touching the chip:
//! 1. [`detect`]: `<root>/sys/class/tpm/tpmN` and its `tpm_version_major`.
//!    No TPM there is normal and reads as [`TpmInfo::absent`]
//!    (`{"present": false}`); a TPM 1.2 is reported as present and not read.
//! 2. The device: `<root>/dev/tpmrmN` (the kernel's resource manager), or
//!    `<root>/dev/tpmN` when that is missing or cannot be opened, through
//!    a [`TpmConnector`] with TCTI `device:<path>`. The real one is
//!    [`Esapi`] (tss-esapi over tpm2-tss); tests use a fake.
//! 3. [`read_session`]: the fixed properties (family, level, revision,
//!    manufacturer, vendor strings, firmware; parsed by [`props`]) and the
//!    EK made from the TCG default RSA-2048 template in the endorsement
//!    hierarchy (ECC P-256 when RSA fails), identified by the SHA-256 of
//!    its public key ([`ek`]). The template is deterministic over the
//!    hierarchy's seed, so the fingerprint is the same on every boot until
//!    the TPM is cleared.
//!
//! Talking to a present TPM never fails discovery: what went wrong is kept
//! in [`TpmInfo::error`] next to whatever was read before it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_api::inventory::{EndorsementKey, TpmInfo};

use super::DiscoveryError;
use super::cpu::is_numbered;
use super::sysfs::{attr_u64, list_dir};

pub mod ek;
mod esapi;
#[cfg(test)]
mod fake;
pub mod props;

pub use ek::EkPublic;
pub use esapi::Esapi;

/// Relative path of the kernel's TPM class directory.
pub const CLASS_DIR: &str = "sys/class/tpm";

/// How long the agent waits for the TPM at boot: creating an RSA primary
/// key takes a discrete TPM several seconds, a slow one tens of seconds.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("cannot open the tpm at {tcti}: {reason}")]
    Open { tcti: String, reason: String },
    #[error("reading the tpm properties: {0}")]
    Properties(String),
    #[error("endorsement key: {0}")]
    EndorsementKey(String),
}

/// The endorsement key templates of the TCG EK Credential Profile (2.3,
/// B.3.3 and B.3.4) that are tried, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkAlgorithm {
    Rsa2048,
    EccP256,
}

impl EkAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            EkAlgorithm::Rsa2048 => "rsa2048",
            EkAlgorithm::EccP256 => "ecc_nist_p256",
        }
    }
}

/// Opens a TPM: the hardware edge. `tcti` is a tpm2-tss TCTI string,
/// `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
pub trait TpmConnector {
    fn connect(&self, tcti: &str) -> Result<Box<dyn TpmSession>, TpmError>;
}

/// An open TPM.
pub trait TpmSession {
    /// `(tag, value)` of the properties [`props::FIRST`] and the
    /// [`props::COUNT`] - 1 after it.
    fn fixed_properties(&mut self) -> Result<Vec<(u32, u32)>, TpmError>;
    /// Creates the EK from the default template of `alg` in the
    /// endorsement hierarchy, returns its public part and flushes it.
    fn endorsement_key(&mut self, alg: EkAlgorithm) -> Result<EkPublic, TpmError>;
}

/// The TPM the kernel found, from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// `tpm0` -> "tpm0".
    pub name: String,
    /// `tpm_version_major` (kernel 5.5+); `None` on older kernels.
    pub major: Option<u64>,
}

/// The first TPM under `<root>/sys/class/tpm`, if any.
pub fn detect(root: &Path) -> Result<Option<Detected>, DiscoveryError> {
    let dir = root.join(CLASS_DIR);
    let name = list_dir(&dir)?
        .into_iter()
        .filter(|n| is_numbered(n, "tpm"))
        .min_by_key(|n| n[3..].parse::<u32>().unwrap_or(u32::MAX));
    Ok(name.map(|name| Detected {
        major: attr_u64(&dir.join(&name).join("tpm_version_major")),
        name,
    }))
}

/// Detects the TPM under `root` and reads it through `connector`.
pub fn read(root: &Path, connector: &dyn TpmConnector) -> Result<TpmInfo, DiscoveryError> {
    Ok(match detect(root)? {
        None => TpmInfo::absent(),
        Some(found) => read_device(root, &found, connector),
    })
}

/// Reads a TPM [`detect`] found: its resource-manager node first, then
/// the raw one.
pub fn read_device(root: &Path, found: &Detected, connector: &dyn TpmConnector) -> TpmInfo {
    if found.major == Some(1) {
        return TpmInfo {
            present: true,
            family: Some("1.2".into()),
            error: Some(format!("{} is a TPM 1.2, which is not read", found.name)),
            ..TpmInfo::default()
        };
    }
    let n = &found.name[3..];
    let mut errors = Vec::new();
    for dev in [format!("dev/tpmrm{n}"), format!("dev/tpm{n}")] {
        let path: PathBuf = root.join(&dev);
        if !path.exists() {
            errors.push(format!("no {}", path.display()));
            continue;
        }
        match connector.connect(&format!("device:{}", path.display())) {
            Ok(mut session) => {
                let mut info = read_session(session.as_mut());
                info.device = Some(path.display().to_string());
                return info;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    TpmInfo {
        present: true,
        error: Some(errors.join("; ")),
        ..TpmInfo::default()
    }
}

/// Reads an open TPM: properties, then the EK.
pub fn read_session(session: &mut dyn TpmSession) -> TpmInfo {
    let mut info = TpmInfo {
        present: true,
        ..TpmInfo::default()
    };
    match session.fixed_properties() {
        Ok(p) => props::apply(&p, &mut info),
        Err(e) => {
            info.error = Some(e.to_string());
            return info;
        }
    }
    match endorsement_key(session) {
        Ok(k) => info.ek = Some(k),
        Err(e) => info.error = Some(e.to_string()),
    }
    info
}

fn endorsement_key(session: &mut dyn TpmSession) -> Result<EndorsementKey, TpmError> {
    let (alg, public) = match session.endorsement_key(EkAlgorithm::Rsa2048) {
        Ok(public) => (EkAlgorithm::Rsa2048, public),
        Err(rsa) => match session.endorsement_key(EkAlgorithm::EccP256) {
            Ok(public) => (EkAlgorithm::EccP256, public),
            Err(_) => return Err(rsa),
        },
    };
    Ok(EndorsementKey {
        algorithm: alg.as_str().to_string(),
        sha256: ek::fingerprint(&public)?,
    })
}

/// Live discovery: [`read`] with the real TPM, off the async threads and
/// bounded by `timeout`; the outcome is logged. Never fails: `None`
/// (unknown) when sysfs cannot be read.
pub async fn read_live(root: &Path, timeout: Duration) -> Option<TpmInfo> {
    let found = match detect(root) {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::info!("no TPM");
            return Some(TpmInfo::absent());
        }
        Err(e) => {
            tracing::warn!("TPM unknown: {e}");
            return None;
        }
    };
    // A thread of its own rather than spawn_blocking: a TPM that never
    // answers must hold up neither discovery nor the runtime's shutdown.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (task_root, task_found) = (root.to_path_buf(), found.clone());
    let spawned = std::thread::Builder::new()
        .name("tpm".into())
        .spawn(move || {
            let _ = tx.send(read_device(&task_root, &task_found, &Esapi));
        });
    let info = match spawned {
        Err(e) => failed(format!("cannot start the tpm thread: {e}")),
        Ok(_) => match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(info)) => info,
            Ok(Err(_)) => failed(format!("reading {} ended without an answer", found.name)),
            Err(_) => failed(format!(
                "{} did not answer within {}s",
                found.name,
                timeout.as_secs()
            )),
        },
    };
    match &info.error {
        Some(e) => tracing::warn!("TPM {}: {e}", found.name),
        None => tracing::info!(
            "TPM {}: {} firmware {}, EK {} sha256:{}",
            found.name,
            info.manufacturer.as_deref().unwrap_or("?"),
            info.firmware_version.as_deref().unwrap_or("?"),
            info.ek.as_ref().map_or("?", |k| k.algorithm.as_str()),
            info.ek.as_ref().map_or("?", |k| k.sha256.as_str()),
        ),
    }
    Some(info)
}

fn failed(error: String) -> TpmInfo {
    TpmInfo {
        present: true,
        error: Some(error),
        ..TpmInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeTpm, swtpm_properties};
    use super::*;
    use crate::discovery::sysfs::test_support::write;

    fn tree(major: Option<&str>, nodes: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        match major {
            Some(m) => write(root.path(), "sys/class/tpm/tpm0/tpm_version_major", m),
            None => write(root.path(), "sys/class/tpm/tpm0/dev", "10:224\n"),
        }
        for n in nodes {
            write(root.path(), &format!("dev/{n}"), "");
        }
        root
    }

    #[test]
    fn no_tpm_is_absent_and_not_opened() {
        let root = tempfile::tempdir().unwrap();
        let fake = FakeTpm::working();
        assert_eq!(read(root.path(), &fake).unwrap(), TpmInfo::absent());
        assert!(fake.opened().is_empty());
    }

    #[test]
    fn a_working_tpm_is_read_through_the_resource_manager() {
        let root = tree(Some("2\n"), &["tpmrm0", "tpm0"]);
        let fake = FakeTpm::working();
        let info = read(root.path(), &fake).unwrap();
        let dev = root.path().join("dev/tpmrm0").display().to_string();
        assert_eq!(fake.opened(), [format!("device:{dev}")]);
        assert_eq!(info.device, Some(dev));
        assert!(info.present);
        assert_eq!(info.error, None);
        assert_eq!(info.manufacturer.as_deref(), Some("IBM"));
        assert_eq!(info.family.as_deref(), Some("2.0"));
        let ek = info.ek.unwrap();
        assert_eq!(ek.algorithm, "rsa2048");
        assert_eq!(ek.sha256, ek::fingerprint(&FakeTpm::rsa_key()).unwrap());
    }

    #[test]
    fn falls_back_to_the_raw_device() {
        // No tpmrm0 node (an old kernel), and on a second machine a
        // tpmrm0 that cannot be opened.
        let root = tree(None, &["tpm0"]);
        let fake = FakeTpm::working();
        let info = read(root.path(), &fake).unwrap();
        assert_eq!(info.error, None);
        assert!(info.device.unwrap().ends_with("dev/tpm0"));

        let root = tree(Some("2"), &["tpmrm0", "tpm0"]);
        let fake = FakeTpm::working().refusing("tpmrm0");
        let info = read(root.path(), &fake).unwrap();
        assert_eq!(fake.opened().len(), 2);
        assert!(info.device.unwrap().ends_with("dev/tpm0"));
    }

    #[test]
    fn a_tpm_that_cannot_be_opened_is_present_with_an_error() {
        let root = tree(Some("2"), &["tpmrm0"]);
        let fake = FakeTpm::working().refusing("tpm");
        let info = read(root.path(), &fake).unwrap();
        assert!(info.present);
        assert_eq!(info.manufacturer, None);
        let error = info.error.unwrap();
        assert!(error.contains("cannot open the tpm at device:"), "{error}");
        assert!(error.contains("dev/tpm0"), "{error}");
    }

    #[test]
    fn tpm_1_2_is_present_but_not_read() {
        let root = tree(Some("1"), &["tpm0"]);
        let fake = FakeTpm::working();
        let info = read(root.path(), &fake).unwrap();
        assert!(fake.opened().is_empty());
        assert_eq!(info.family.as_deref(), Some("1.2"));
        assert!(info.present && info.error.is_some());
    }

    #[test]
    fn ek_failures_keep_the_properties() {
        let mut fake = FakeTpm::working().without_ek(EkAlgorithm::Rsa2048);
        let info = read_session(&mut fake);
        assert_eq!(info.error, None);
        assert_eq!(info.ek.unwrap().algorithm, "ecc_nist_p256");

        let mut fake = FakeTpm::working()
            .without_ek(EkAlgorithm::Rsa2048)
            .without_ek(EkAlgorithm::EccP256);
        let info = read_session(&mut fake);
        assert_eq!(info.manufacturer.as_deref(), Some("IBM"));
        assert_eq!(info.ek, None);
        assert_eq!(
            info.error.as_deref(),
            Some("endorsement key: no rsa2048 template")
        );
    }

    #[test]
    fn property_failures_are_reported() {
        let mut fake = FakeTpm::working().without_properties();
        let info = read_session(&mut fake);
        assert!(info.present);
        assert_eq!(info.ek, None);
        assert!(
            info.error
                .unwrap()
                .starts_with("reading the tpm properties")
        );
        assert!(!swtpm_properties().is_empty());
    }

    #[tokio::test]
    async fn live_reading_without_device_nodes_reports_instead_of_failing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            read_live(root.path(), LIVE_TIMEOUT).await,
            Some(TpmInfo::absent())
        );
        // sysfs lists a TPM, but there is no /dev under this root: the real
        // connector is never asked.
        let root = tree(Some("2"), &[]);
        let info = read_live(root.path(), LIVE_TIMEOUT).await.unwrap();
        assert!(info.present);
        assert!(info.error.unwrap().contains("dev/tpmrm0"));
        // An unreadable class directory: unknown, not an error.
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "sys/class/tpm", "not a directory");
        assert_eq!(read_live(root.path(), LIVE_TIMEOUT).await, None);
    }

    #[test]
    fn the_lowest_numbered_tpm_wins() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "sys/class/tpm/tpm10/tpm_version_major", "2");
        write(root.path(), "sys/class/tpm/tpm2/tpm_version_major", "2");
        write(root.path(), "sys/class/tpm/tpmx/tpm_version_major", "2");
        let found = detect(root.path()).unwrap().unwrap();
        assert_eq!(found.name, "tpm2");
        assert_eq!(found.major, Some(2));
    }
}
