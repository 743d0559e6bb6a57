//! The kernel: Debian's `linux-image-<release>` package, the one
//! `linux-image-amd64` depends on, fetched with `apt-get download` (so from
//! whatever archive the machine's apt sources name), unpacked with
//! `dpkg-deb -x`, indexed with `depmod -b` (the package ships no
//! modules.dep), and cached under the cache dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot run {cmd}: {reason}")]
    Run { cmd: String, reason: String },
    #[error(
        "no kernel package found: `apt-cache depends linux-image-amd64` names none (run apt-get update?)"
    )]
    NoPackage,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no kernel (boot/vmlinuz-* and lib/modules/*)")]
    Empty(PathBuf),
}

/// An unpacked kernel package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub package: String,
    pub version: String,
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String, KernelError> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| KernelError::Run {
        cmd: name.clone(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(KernelError::Run {
            cmd: name,
            reason: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `linux-image-<release>` package in `apt-cache depends` output.
pub fn parse_depends(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let dep = l.trim().strip_prefix("Depends:")?.trim();
        dep.strip_prefix("linux-image-")
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            .map(|_| dep.to_string())
    })
}

/// Finds the kernel package (`package`, else what `linux-image-amd64`
/// depends on) and returns it unpacked under `cache`, fetching it once.
pub fn fetch(cache: &Path, package: Option<&str>) -> Result<Kernel, KernelError> {
    let package = match package {
        Some(p) => p.to_string(),
        None => parse_depends(&run(
            Command::new("apt-cache").args(["depends", "linux-image-amd64"])
        )?)
        .ok_or(KernelError::NoPackage)?,
    };
    let version = run(Command::new("apt-cache").args(["show", "--no-all-versions", &package]))?
        .lines()
        .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let dir = cache.join(format!("{package}_{version}"));
    let root = dir.join("root");
    if let Ok(k) = unpacked(&root, &package, &version) {
        return Ok(k);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KernelError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    run(Command::new("apt-get")
        .args(["download", "-q", &format!("{package}={version}")])
        .current_dir(&dir))?;
    let deb = fs::read_dir(&dir)
        .map_err(io(&dir))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| KernelError::Empty(dir.clone()))?;
    let tmp = dir.join("root.tmp");
    let _ = fs::remove_dir_all(&tmp);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    let release = only_entry(&tmp.join("lib/modules"))?;
    run(Command::new("depmod").arg("-b").arg(&tmp).arg(&release))?;
    let _ = fs::remove_dir_all(&root);
    fs::rename(&tmp, &root).map_err(io(&root))?;
    let _ = fs::remove_file(&deb);
    unpacked(&root, &package, &version)
}

fn only_entry(dir: &Path) -> Result<String, KernelError> {
    fs::read_dir(dir)
        .map_err(|source| KernelError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| KernelError::Empty(dir.to_path_buf()))
}

fn unpacked(root: &Path, package: &str, version: &str) -> Result<Kernel, KernelError> {
    let release = only_entry(&root.join("lib/modules"))?;
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules = root.join("lib/modules").join(&release);
    if !vmlinuz.exists() || !modules.join("modules.dep").exists() {
        return Err(KernelError::Empty(root.to_path_buf()));
    }
    Ok(Kernel {
        package: package.to_string(),
        version: version.to_string(),
        release,
        vmlinuz,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meta_package_names_the_kernel() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            parse_depends("linux-image-amd64\n  Depends: linux-image-amd64-signed\n"),
            None
        );
    }

    #[test]
    fn an_empty_cache_is_not_a_kernel() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpacked(d.path(), "p", "1"),
            Err(KernelError::Io { .. })
        ));
        fs::create_dir_all(d.path().join("lib/modules/6.1.0-9-amd64")).unwrap();
        assert!(matches!(
            unpacked(d.path(), "p", "1"),
            Err(KernelError::Empty(_))
        ));
    }
}
