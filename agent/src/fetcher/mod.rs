//! The fetcher: `CommandInfo.uris` into the sandbox before the task
//! starts, as Mesos' fetcher does. The appliance has no userland of its
//! own, so tasks bring their binaries this way.
//!
//! - `http://`, `https://` (rustls, bundled web roots), `file://` and plain
//!   absolute paths;
//! - `output_file` names the file in the sandbox (a relative path, no `..`),
//!   else the URI's last path segment;
//! - `executable` makes it `0755`; `extract` unpacks `.tar`, `.tar.gz`/`.tgz`,
//!   `.tar.xz`/`.txz`, `.tar.zst`/`.tzst`, `.zip` and plain `.gz` into the
//!   sandbox ([`extract`]), keeping the archive, as Mesos does;
//! - `cache: true` keeps a copy under `<work_dir>/cache/fetcher/<sha256 of
//!   the URI>/` and serves later fetches of the same URI from it.
//!
//! What it does is appended to the sandbox's `stderr`. A failure fails the
//! task (TASK_FAILED, `REASON_FETCHER_FAILED`, `Failed to fetch 'URI': ...`).

pub mod extract;

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use keel_api::mesos::CommandUri;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub const REASON_FETCHER_FAILED: &str = "REASON_FETCHER_FAILED";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Failed to fetch '{uri}': {reason}")]
    Uri { uri: String, reason: String },
    #[error("cannot build the http client: {0}")]
    Client(String),
}

fn uri_err(uri: &str) -> impl Fn(String) -> FetchError + '_ {
    move |reason| FetchError::Uri {
        uri: uri.to_string(),
        reason,
    }
}

pub struct Fetcher {
    http: reqwest::Client,
    cache: PathBuf,
}

/// Where a URI's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

pub fn source(uri: &str) -> Result<Source, String> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(Source::Http(uri.to_string()));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(Source::File(PathBuf::from(path)));
    }
    if uri.starts_with('/') {
        return Ok(Source::File(PathBuf::from(uri)));
    }
    Err("unsupported URI scheme (http, https, file or an absolute path)".into())
}

/// The file's path in the sandbox: `output_file`, else the URI's basename.
pub fn destination(uri: &CommandUri) -> Result<PathBuf, String> {
    let name = match &uri.output_file {
        Some(out) => PathBuf::from(out),
        None => {
            let path = uri.value.split(['?', '#']).next().unwrap_or("");
            let base = path.rsplit('/').next().unwrap_or("");
            PathBuf::from(base)
        }
    };
    let safe = !name.as_os_str().is_empty()
        && name.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(format!(
            "{} is not a file name inside the sandbox",
            name.display()
        ));
    }
    Ok(name)
}

fn note(sandbox: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sandbox.join("stderr"))
    {
        let _ = writeln!(f, "{line}");
    }
}

impl Fetcher {
    /// `cache` is `<work_dir>/cache/fetcher`.
    pub fn new(cache: PathBuf) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher { http, cache })
    }

    /// Fetches every URI into `sandbox`, in order.
    pub async fn fetch_all(&self, uris: &[CommandUri], sandbox: &Path) -> Result<(), FetchError> {
        for uri in uris {
            note(sandbox, &format!("Fetching URI '{}'", uri.value));
            let path = self
                .fetch(uri, sandbox)
                .await
                .inspect_err(|e| note(sandbox, &e.to_string()))?;
            note(
                sandbox,
                &format!("Fetched '{}' to '{}'", uri.value, path.display()),
            );
        }
        Ok(())
    }

    async fn fetch(&self, uri: &CommandUri, sandbox: &Path) -> Result<PathBuf, FetchError> {
        let err = uri_err(&uri.value);
        let src = source(&uri.value).map_err(&err)?;
        let dest = sandbox.join(destination(uri).map_err(&err)?);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| err(e.to_string()))?;
        }
        if uri.cache == Some(true) {
            let cached = self.cached(&uri.value, &src).await?;
            copy(&cached, &dest).await.map_err(&err)?;
        } else {
            self.get(&src, &dest).await.map_err(&err)?;
        }
        if uri.executable == Some(true) {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(|e| err(e.to_string()))?;
        }
        if uri.extract.unwrap_or(true) && extract::kind(&dest).is_some() {
            let (archive, into) = (dest.clone(), sandbox.to_path_buf());
            tokio::task::spawn_blocking(move || extract::extract(&archive, &into))
                .await
                .map_err(|e| err(e.to_string()))?
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(dest)
    }

    /// The cached copy of `uri`, fetched now if there is none.
    async fn cached(&self, uri: &str, src: &Source) -> Result<PathBuf, FetchError> {
        let err = uri_err(uri);
        let key = hex(&Sha256::digest(uri.as_bytes()));
        let dir = self.cache.join(key);
        let file = dir.join("file");
        if tokio::fs::metadata(&file).await.is_ok() {
            return Ok(file);
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| err(e.to_string()))?;
        // Two tasks may fetch the same URI at once: each into its own temp
        // file, the last rename wins with identical bytes.
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        self.get(src, &tmp).await.map_err(&err)?;
        tokio::fs::rename(&tmp, &file)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(file)
    }

    /// Writes the source's bytes to `dest` (through a temp file).
    async fn get(&self, src: &Source, dest: &Path) -> Result<(), String> {
        match src {
            Source::File(path) => copy(path, dest).await,
            Source::Http(url) => {
                let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                let tmp = dest.with_extension("keel-part");
                let mut out = tokio::fs::File::create(&tmp)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut body = resp.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| e.to_string())?;
                    out.write_all(&chunk).await.map_err(|e| e.to_string())?;
                }
                out.flush().await.map_err(|e| e.to_string())?;
                drop(out);
                tokio::fs::rename(&tmp, dest)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

async fn copy(from: &Path, to: &Path) -> Result<(), String> {
    tokio::fs::copy(from, to)
        .await
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", from.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str, out: Option<&str>) -> CommandUri {
        CommandUri {
            value: value.into(),
            output_file: out.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn sources_and_names() {
        assert_eq!(
            source("https://h/x.tgz"),
            Ok(Source::Http("https://h/x.tgz".into()))
        );
        assert_eq!(source("file:///opt/a"), Ok(Source::File("/opt/a".into())));
        assert_eq!(source("/opt/a"), Ok(Source::File("/opt/a".into())));
        assert!(source("ftp://h/a").is_err() && source("hdfs://x").is_err());
        assert_eq!(
            destination(&uri("http://h/d/probe?x=1", None)),
            Ok("probe".into())
        );
        assert_eq!(
            destination(&uri("http://h/p", Some("bin/tool"))),
            Ok("bin/tool".into())
        );
        for bad in [Some("../x"), Some("/etc/x"), Some("a/../../b"), None] {
            let u = uri(
                if bad.is_none() {
                    "http://h/"
                } else {
                    "http://h/x"
                },
                bad,
            );
            assert!(destination(&u).is_err(), "{bad:?}");
        }
    }
}
