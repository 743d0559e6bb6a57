//! `initramfs/bundle.conf`: which modules, programs and files the bundle
//! carries. An INI-like list: `[section]` headers, one entry per line, `#`
//! comments.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleConf {
    /// Modules loaded at every boot.
    pub load: Vec<String>,
    /// Modules shipped for hardware and on-demand loading.
    pub ship: Vec<String>,
    /// (library a binary links, libraries it loads with dlopen).
    pub dlopen: Vec<(String, Vec<String>)>,
    /// Absolute paths of host programs.
    pub programs: Vec<PathBuf>,
    /// Absolute paths of host files.
    pub files: Vec<PathBuf>,
}

impl BundleConf {
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfError> {
        let mut conf = BundleConf::default();
        let mut section: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| ConfError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.to_string());
                continue;
            }
            let absolute = |p: &str| {
                if p.starts_with('/') {
                    Ok(PathBuf::from(p))
                } else {
                    Err(err(format!("{p:?} is not an absolute path")))
                }
            };
            match section.as_deref() {
                Some("load") => conf.load.push(one_word(line).map_err(&err)?),
                Some("ship") => conf.ship.push(one_word(line).map_err(&err)?),
                Some("dlopen") => {
                    let mut words = line.split_whitespace().map(str::to_string);
                    let lib = words.next().unwrap_or_default();
                    let extra: Vec<String> = words.collect();
                    if extra.is_empty() {
                        return Err(err(format!("{lib:?} names no library to add")));
                    }
                    conf.dlopen.push((lib, extra));
                }
                Some("programs") => conf.programs.push(absolute(line)?),
                Some("files") => conf.files.push(absolute(line)?),
                Some(other) => return Err(err(format!("unknown section [{other}]"))),
                None => return Err(err("entry before any [section]".into())),
            }
        }
        Ok(conf)
    }

    /// Every module name or alias the bundle needs, load list first.
    pub fn modules(&self) -> Vec<&str> {
        self.load
            .iter()
            .chain(&self.ship)
            .map(String::as_str)
            .collect()
    }
}

fn one_word(line: &str) -> Result<String, String> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next()) {
        (Some(word), None) => Ok(word.to_string()),
        _ => Err(format!("{line:?} is not one module name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundle.conf");
        let conf = BundleConf::load(&path).unwrap();
        assert!(conf.load.contains(&"ext4".to_string()));
        assert!(conf.ship.contains(&"virtio_net".to_string()));
        assert_eq!(conf.programs, [PathBuf::from("/usr/sbin/mke2fs")]);
        assert_eq!(conf.modules()[0], "ext4");
    }

    #[test]
    fn sections_and_errors() {
        let p = Path::new("b.conf");
        let conf = BundleConf::parse(
            p,
            "[load]\next4 # fs\n[dlopen]\nlibA.so.1 libB.so.1 libC.so.1\n[files]\n/etc/x\n",
        )
        .unwrap();
        assert_eq!(conf.load, ["ext4"]);
        assert_eq!(
            conf.dlopen,
            [(
                "libA.so.1".to_string(),
                vec!["libB.so.1".to_string(), "libC.so.1".to_string()]
            )]
        );
        assert_eq!(conf.files, [PathBuf::from("/etc/x")]);
        for (text, msg) in [
            ("ext4\n", "b.conf line 1: entry before any [section]"),
            (
                "[load]\next4 xfs\n",
                "b.conf line 2: \"ext4 xfs\" is not one module name",
            ),
            (
                "[files]\netc/x\n",
                "b.conf line 2: \"etc/x\" is not an absolute path",
            ),
            ("[boot]\nx\n", "b.conf line 2: unknown section [boot]"),
            (
                "[dlopen]\nlibA\n",
                "b.conf line 2: \"libA\" names no library to add",
            ),
        ] {
            assert_eq!(BundleConf::parse(p, text).unwrap_err().to_string(), msg);
        }
    }
}
