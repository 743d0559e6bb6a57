//! What the fetcher may do (`--fetcher-*` flags): which host paths
//! `file://` URIs may name, and how big a download and an unpacked archive
//! may get.

use std::path::{Component, Path, PathBuf};

/// `--fetcher-max-download-bytes` default: 2 GiB.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 2 << 30;
/// `--fetcher-max-extract-bytes` default: 8 GiB.
pub const DEFAULT_MAX_EXTRACT_BYTES: u64 = 8 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// `--fetcher-allowed-paths`: absolute directories (or files) that
    /// `file://` URIs and absolute paths may name. Empty: none.
    pub allowed_paths: Vec<PathBuf>,
    /// `--fetcher-max-download-bytes`: one URI's bytes (HTTP body or host file).
    pub max_download_bytes: u64,
    /// `--fetcher-max-extract-bytes`: what one archive unpacks to.
    pub max_extract_bytes: u64,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        FetcherConfig {
            allowed_paths: Vec::new(),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            max_extract_bytes: DEFAULT_MAX_EXTRACT_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0:?} is not a size (bytes, or with KiB, MiB, GiB or TiB: 2GiB)")]
    Size(String),
    #[error("{0:?} is not an absolute path without '..'")]
    Path(String),
}

/// A size: bytes, or a number with `KiB`, `MiB`, `GiB`, `TiB` (also `K`,
/// `M`, `G`, `T`; powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::Size(text.to_string());
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

/// One `--fetcher-allowed-paths` entry.
pub fn parse_allowed_path(text: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(text.trim());
    let plain = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !path.is_absolute() || !plain {
        return Err(ConfigError::Path(text.to_string()));
    }
    Ok(path)
}

impl FetcherConfig {
    /// The allowed entry that holds `path`, and the rest of `path` below
    /// it (empty when `path` is the entry). The comparison is on the text:
    /// the kernel then resolves the rest below the entry, following no
    /// symlink.
    pub fn allowed(&self, path: &Path) -> Option<(&Path, PathBuf)> {
        let plain = path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain {
            return None;
        }
        self.allowed_paths.iter().find_map(|base| {
            path.strip_prefix(base)
                .ok()
                .map(|rest| (base.as_path(), rest.to_path_buf()))
        })
    }

    /// The allow-list as a flag would show it.
    pub fn allowed_text(&self) -> String {
        if self.allowed_paths.is_empty() {
            return "empty".into();
        }
        let all: Vec<String> = self
            .allowed_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        all.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("2GiB"), Ok(DEFAULT_MAX_DOWNLOAD_BYTES));
        assert_eq!(parse_size("8G"), Ok(DEFAULT_MAX_EXTRACT_BYTES));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        for bad in ["", "x", "1.5G", "-1", "1PB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_paths_below_an_allowed_entry_are_allowed() {
        let config = FetcherConfig {
            allowed_paths: vec!["/srv/artifacts".into(), "/opt/tool.tgz".into()],
            ..FetcherConfig::default()
        };
        assert_eq!(
            config.allowed(Path::new("/srv/artifacts/a/b.tgz")),
            Some((Path::new("/srv/artifacts"), PathBuf::from("a/b.tgz")))
        );
        assert_eq!(
            config.allowed(Path::new("/opt/tool.tgz")),
            Some((Path::new("/opt/tool.tgz"), PathBuf::new()))
        );
        for no in [
            "/etc/shadow",
            "/srv/artifacts/../../etc/shadow",
            "/srv/artifactsX/a",
            "srv/artifacts/a",
        ] {
            assert_eq!(config.allowed(Path::new(no)), None, "{no}");
        }
        assert_eq!(FetcherConfig::default().allowed(Path::new("/x")), None);
        assert!(parse_allowed_path("/srv/a").is_ok());
        assert!(parse_allowed_path("srv").is_err() && parse_allowed_path("/a/../b").is_err());
    }
}
