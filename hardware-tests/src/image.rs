//! Booting the mkosi image (`cargo xtask image`: target/image/out): a
//! per-guest copy of the disk, grown to the shape's size; the UKI's
//! embedded command line; a systemd-boot loader entry written into the
//! copy's ESP (vfat, outside dm-verity) so a disk boot gets extra kernel
//! parameters such as `keel.masters`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {cmd}: {reason}")]
    Run { cmd: String, reason: String },
    #[error("{0} has no EFI system partition")]
    NoEsp(PathBuf),
    #[error("no UKI in the ESP of {0}")]
    NoUki(PathBuf),
}

/// OVMF from Debian's `ovmf` package.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, ImageError> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| ImageError::Run {
        cmd: name.clone(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ImageError::Run {
            cmd: name,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Copies `image` to `dest` (sparse) and grows it to `size` bytes, as when
/// the image is written to a larger disk.
pub fn copy_disk(image: &Path, dest: &Path, size: u64) -> Result<(), ImageError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(image)
        .arg(dest))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dest)
        .map_err(io(dest))?;
    if f.metadata().map_err(io(dest))?.len() < size {
        f.set_len(size).map_err(io(dest))?;
    }
    Ok(())
}

/// The command line embedded in a UKI's `.cmdline` section.
pub fn uki_cmdline(uki: &Path, scratch: &Path) -> Result<String, ImageError> {
    let out = scratch.join("uki-cmdline");
    run(Command::new("objcopy")
        .args(["-O", "binary", "--only-section=.cmdline"])
        .arg(uki)
        .arg(&out))?;
    let text = std::fs::read(&out).map_err(io(&out))?;
    Ok(String::from_utf8_lossy(&text)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string())
}

/// The byte offset of the ESP in `disk`, from `sfdisk -J`.
pub fn esp_offset(disk: &Path) -> Result<u64, ImageError> {
    let json = run(Command::new("sfdisk").arg("-J").arg(disk))?;
    let v: serde_json::Value = serde_json::from_slice(&json).map_err(|e| ImageError::Run {
        cmd: "sfdisk -J".into(),
        reason: e.to_string(),
    })?;
    let table = &v["partitiontable"];
    let sector = table["sectorsize"].as_u64().unwrap_or(512);
    table["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(ESP_TYPE))
        })
        .and_then(|p| p["start"].as_u64())
        .map(|start| start * sector)
        .ok_or_else(|| ImageError::NoEsp(disk.to_path_buf()))
}

/// Makes systemd-boot on `disk` boot the UKI with `options` (the UKI's own
/// command line plus extras): a loader entry and a loader.conf choosing it.
/// Without Secure Boot the UKI's stub takes the entry's options.
pub fn boot_entry(disk: &Path, options: &str, scratch: &Path) -> Result<(), ImageError> {
    let img = format!("{}@@{}", disk.display(), esp_offset(disk)?);
    let listing = run(Command::new("mdir").args(["-b", "-i", &img, "::/EFI/Linux"]))?;
    let uki = String::from_utf8_lossy(&listing)
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with(".efi"))
        .map(|l| l.trim_start_matches("::").to_string())
        .ok_or_else(|| ImageError::NoUki(disk.to_path_buf()))?;
    let entry = scratch.join("keel-lab.conf");
    std::fs::write(
        &entry,
        format!("title Keel (lab)\nefi {uki}\noptions {options}\n"),
    )
    .map_err(io(&entry))?;
    let loader = scratch.join("loader.conf");
    std::fs::write(&loader, "default keel-lab.conf\ntimeout 0\n").map_err(io(&loader))?;
    // The entries directory may not exist yet; mmd fails if it does.
    let _ = run(Command::new("mmd").args(["-i", &img, "::/loader/entries"]));
    run(Command::new("mcopy")
        .args(["-o", "-i", &img])
        .arg(&entry)
        .arg("::/loader/entries/keel-lab.conf"))?;
    run(Command::new("mcopy")
        .args(["-o", "-i", &img])
        .arg(&loader)
        .arg("::/loader/loader.conf"))?;
    Ok(())
}
