//! keelctl's config file: where the masters are, the TLS material and the
//! credentials, so that they need not be given every time.
//!
//! `$KEEL_CONFIG`, else `$XDG_CONFIG_HOME/keel/keelctl.toml`, else
//! `~/.config/keel/keelctl.toml`; a missing file is no error. Flags and
//! `KEEL_*` environment variables win over it. Relative paths in it are
//! taken from the file's directory.
//!
//! ```toml
//! master = "10.0.0.1:5050,10.0.0.2:5050,10.0.0.3:5050"
//! tls_ca = "pki/ca.crt"
//! tls_cert = "pki/admin.crt"
//! tls_key = "pki/admin.key"
//! token = "keel1...."            # or principal + secret
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The most bytes of a config file.
const MAX_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub master: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub principal: Option<String>,
    pub secret: Option<String>,
    pub token: Option<String>,
}

/// Where the config file is looked for.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEEL_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("keel").join("keelctl.toml"))
}

/// The config at `path`; empty when there is no such file.
pub fn load(path: Option<&Path>) -> Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(e).with_context(|| format!("config file {}", path.display())),
    };
    anyhow::ensure!(
        meta.len() <= MAX_BYTES,
        "config file {}: larger than {MAX_BYTES} bytes",
        path.display()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config file {}", path.display()))?;
    let mut config: Config =
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for p in [
        &mut config.tls_ca,
        &mut config.tls_cert,
        &mut config.tls_key,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_file_and_typos_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("keelctl.toml");
        std::fs::write(
            &file,
            "master = \"m:1\"\ntls_ca = \"pki/ca.crt\"\ntoken = \"t\"\n",
        )
        .unwrap();
        let c = load(Some(&file)).unwrap();
        assert_eq!(c.master.as_deref(), Some("m:1"));
        assert_eq!(c.tls_ca, Some(tmp.path().join("pki/ca.crt")));
        assert_eq!(c.token.as_deref(), Some("t"));
        std::fs::write(&file, "mastr = \"m:1\"\n").unwrap();
        let err = format!("{:#}", load(Some(&file)).unwrap_err());
        assert!(err.contains("mastr"), "{err}");
        assert_eq!(
            load(Some(&tmp.path().join("none.toml"))).unwrap(),
            Config::default()
        );
        std::fs::write(&file, vec![b'#'; (MAX_BYTES + 1) as usize]).unwrap();
        assert!(load(Some(&file)).is_err());
    }
}
