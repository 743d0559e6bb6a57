//! Keel's PXE boot bundle: `vmlinuz`, `initramfs.img` and `boot.ipxe`.
//!
//! [`build`] takes Debian's kernel package ([`kernel`]), the closure of the
//! modules in `initramfs/bundle.conf` ([`conf`], [`modset`]), keel-init as
//! `/init` and `/sbin/modprobe`, keel-agent and keel-master (stripped), the
//! libraries they link ([`libs`]), and packs them as a reproducible `newc`
//! cpio ([`cpio`]) compressed with zstd. `cargo xtask pxe` and the hardware
//! tests both come through here.
//!
//! Layout of the initramfs:
//!
//! ```text
//! /init -> usr/bin/keel-init          /sbin/modprobe -> ../usr/bin/keel-init
//! /usr/bin/keel-{init,agent,master}   /usr/sbin/mke2fs, /etc/mke2fs.conf
//! /lib/x86_64-linux-gnu/*.so*, /lib64/ld-linux-x86-64.so.2
//! /lib/modules/<release>/{kernel/...,modules.dep,.alias,.softdep,.builtin}
//! /etc/keel/modules-load              /etc/keel/missing-nic-drivers.alias
//! /etc/keel/bundle                    what went in (kernel, modules, versions)
//! /dev/console, /dev/null             (the kernel opens the console before /init)
//! ```

pub mod conf;
pub mod cpio;
pub mod ipxe;
pub mod kernel;
pub mod libs;
pub mod modset;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::conf::BundleConf;
use crate::cpio::{Archive, Node};
use crate::ipxe::BootDefaults;
use crate::kernel::Kernel;
use crate::modset::{IndexTexts, ModuleSet};

/// The bundle's file names in the output dir (the interface other tools use).
pub const VMLINUZ: &str = "vmlinuz";
pub const INITRAMFS: &str = "initramfs.img";
pub const BOOT_SCRIPT: &str = "boot.ipxe";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Conf(#[from] conf::ConfError),
    #[error(transparent)]
    Kernel(#[from] kernel::KernelError),
    #[error(transparent)]
    Modules(#[from] modset::ModSetError),
    #[error(transparent)]
    Libs(#[from] libs::LibsError),
    #[error(transparent)]
    Cpio(#[from] cpio::CpioError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {cmd}: {reason}")]
    Run { cmd: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Inputs of a build.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// `initramfs/bundle.conf`.
    pub conf: PathBuf,
    /// Downloads and unpacked kernels (`target/keel-cache`).
    pub cache: PathBuf,
    /// Where the bundle goes (`target/pxe`).
    pub out: PathBuf,
    pub init: PathBuf,
    pub agent: PathBuf,
    pub master: PathBuf,
    /// A kernel package other than the one `linux-image-amd64` names.
    pub kernel_package: Option<String>,
    pub boot: BootDefaults,
    pub zstd_level: u32,
    /// mtime of every archive entry (SOURCE_DATE_EPOCH).
    pub mtime: u32,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub kernel: Kernel,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    pub boot_script: PathBuf,
    pub vmlinuz_bytes: u64,
    pub initramfs_bytes: u64,
    pub uncompressed_bytes: u64,
    pub module_count: usize,
    pub module_bytes: u64,
    pub binary_bytes: u64,
    pub library_bytes: u64,
}

/// Builds the bundle into `cfg.out`.
pub fn build(cfg: &BuildConfig) -> Result<Report, BuildError> {
    let conf = BundleConf::load(&cfg.conf)?;
    let kernel = kernel::fetch(&cfg.cache.join("kernel"), cfg.kernel_package.as_deref())?;
    let read = |name: &str| -> Result<String, BuildError> {
        let p = kernel.modules.join(name);
        match fs::read_to_string(&p) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name != "modules.dep" => {
                Ok(String::new())
            }
            Err(e) => Err(io(&p)(e)),
        }
    };
    let texts = IndexTexts {
        dep: read("modules.dep")?,
        alias: read("modules.alias")?,
        softdep: read("modules.softdep")?,
        builtin: read("modules.builtin")?,
    };
    let set = modset::select(&texts, &conf.modules())?;

    let mut ar = Archive::new(cfg.mtime);
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "var/lib/keel",
        "etc/keel",
    ] {
        ar.dir(d)?;
    }
    ar.add("tmp", Node::Dir { mode: 0o1777 })?;
    ar.add("root", Node::Dir { mode: 0o700 })?;
    ar.add(
        "dev/console",
        Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    )?;
    ar.add(
        "dev/null",
        Node::CharDev {
            mode: 0o666,
            major: 1,
            minor: 3,
        },
    )?;

    // Binaries, stripped.
    let stripped = cfg.cache.join("stripped");
    fs::create_dir_all(&stripped).map_err(io(&stripped))?;
    let mut binary_bytes = 0;
    let mut programs: Vec<PathBuf> = Vec::new();
    for (src, name) in [
        (&cfg.init, "keel-init"),
        (&cfg.agent, "keel-agent"),
        (&cfg.master, "keel-master"),
    ] {
        let dst = stripped.join(name);
        strip(src, &dst)?;
        let data = fs::read(&dst).map_err(io(&dst))?;
        binary_bytes += data.len() as u64;
        ar.file(&format!("usr/bin/{name}"), 0o755, data)?;
        programs.push(dst);
    }
    ar.symlink("init", "usr/bin/keel-init")?;
    ar.symlink("sbin/modprobe", "../usr/bin/keel-init")?;
    for p in &conf.programs {
        let data = fs::read(p).map_err(io(p))?;
        binary_bytes += data.len() as u64;
        ar.file(rel(p), 0o755, data)?;
        programs.push(p.clone());
    }
    for f in &conf.files {
        ar.file(rel(f), 0o644, fs::read(f).map_err(io(f))?)?;
    }

    // Their libraries, at the paths the loader looks in.
    let mut library_bytes = 0;
    let mut libs = std::collections::BTreeSet::new();
    for p in &programs {
        libs.extend(libs::needed(p, &conf.dlopen)?);
    }
    for lib in &libs {
        let data = fs::read(lib).map_err(io(lib))?;
        library_bytes += data.len() as u64;
        ar.file(rel(lib), 0o755, data)?;
    }

    // Modules and their index.
    let module_bytes = add_modules(&mut ar, &kernel, &set)?;
    ar.file("etc/keel/modules-load", 0o644, lines(&conf.load))?;
    ar.file(
        "etc/keel/missing-nic-drivers.alias",
        0o644,
        set.missing_nic_aliases.clone().into_bytes(),
    )?;
    ar.file("etc/nsswitch.conf", 0o644, b"hosts: files dns\n".to_vec())?;
    ar.file(
        "etc/keel/bundle",
        0o644,
        manifest(&kernel, &set, &libs).into_bytes(),
    )?;

    let cpio = ar.to_bytes();
    fs::create_dir_all(&cfg.out).map_err(io(&cfg.out))?;
    let initramfs = cfg.out.join(INITRAMFS);
    let compressed = zstd(&cpio, cfg.zstd_level)?;
    write_atomic(&initramfs, &compressed)?;
    let vmlinuz = cfg.out.join(VMLINUZ);
    let kernel_image = fs::read(&kernel.vmlinuz).map_err(io(&kernel.vmlinuz))?;
    write_atomic(&vmlinuz, &kernel_image)?;
    let boot_script = cfg.out.join(BOOT_SCRIPT);
    write_atomic(&boot_script, ipxe::script(&cfg.boot).as_bytes())?;
    Ok(Report {
        vmlinuz_bytes: kernel_image.len() as u64,
        initramfs_bytes: compressed.len() as u64,
        uncompressed_bytes: cpio.len() as u64,
        module_count: set.modules.len(),
        module_bytes,
        binary_bytes,
        library_bytes,
        kernel,
        vmlinuz,
        initramfs,
        boot_script,
    })
}

fn add_modules(ar: &mut Archive, kernel: &Kernel, set: &ModuleSet) -> Result<u64, BuildError> {
    let base = format!("lib/modules/{}", kernel.release);
    let mut bytes = 0;
    for f in &set.files {
        let src = kernel.modules.join(f);
        let data = fs::read(&src).map_err(io(&src))?;
        // Debian 6.1 ships plain .ko; init's finit_module wants them so.
        if f.ends_with(".ko.xz") || f.ends_with(".ko.zst") || f.ends_with(".ko.gz") {
            return Err(BuildError::Run {
                cmd: format!("add {f}"),
                reason: "compressed modules are not supported; the kernel cannot decompress them in finit_module".into(),
            });
        }
        bytes += data.len() as u64;
        ar.file(&format!("{base}/{f}"), 0o644, data)?;
    }
    for (name, text) in [
        ("modules.dep", &set.dep),
        ("modules.alias", &set.alias),
        ("modules.softdep", &set.softdep),
        ("modules.builtin", &set.builtin),
    ] {
        ar.file(&format!("{base}/{name}"), 0o644, text.clone().into_bytes())?;
    }
    Ok(bytes)
}

fn rel(p: &Path) -> &str {
    p.to_str().unwrap_or_default().trim_start_matches('/')
}

fn lines(items: &[String]) -> Vec<u8> {
    items
        .iter()
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

fn manifest(
    kernel: &Kernel,
    set: &ModuleSet,
    libs: &std::collections::BTreeSet<PathBuf>,
) -> String {
    let mut m = format!(
        "keel {}\nkernel {} {} ({})\n",
        env!("CARGO_PKG_VERSION"),
        kernel.package,
        kernel.version,
        kernel.release
    );
    m.push_str(&format!(
        "modules {}\n",
        set.modules.iter().cloned().collect::<Vec<_>>().join(" ")
    ));
    for l in libs {
        m.push_str(&format!("library {}\n", l.display()));
    }
    m
}

/// `strip --strip-all` into `dst`.
fn strip(src: &Path, dst: &Path) -> Result<(), BuildError> {
    let out = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(dst)
        .arg(src)
        .output()
        .map_err(|e| BuildError::Run {
            cmd: format!("strip {}", src.display()),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BuildError::Run {
            cmd: format!("strip {}", src.display()),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Compresses with the zstd tool (multithreaded; the output does not depend
/// on the thread count).
pub fn zstd(data: &[u8], level: u32) -> Result<Vec<u8>, BuildError> {
    let cmd = format!("zstd -{level} -T0");
    let err = |reason: String| BuildError::Run {
        cmd: cmd.clone(),
        reason,
    };
    let mut child = Command::new("zstd")
        .args([format!("-{level}").as_str(), "-T0", "-q", "-c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| err("no stdin".into()))?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    writer
        .join()
        .map_err(|_| err("writer thread panicked".into()))?
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

/// Writes via a temp file and rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_round_trips() {
        let data = b"keel ".repeat(1000);
        let z = zstd(&data, 3).unwrap();
        assert!(z.len() < data.len() / 10);
        let out = Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&z)?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(out.stdout, data);
    }
}
