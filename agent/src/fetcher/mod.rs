//! The fetcher: `CommandInfo.uris` into the sandbox before the task
//! starts, as Mesos' fetcher does. The appliance has no userland of its
//! own, so tasks bring their binaries this way.
//!
//! - `http://`, `https://` (rustls, bundled web roots); `file://` and plain
//!   absolute paths only below `--fetcher-allowed-paths` (default: none),
//!   resolved below the allowed directory without following symlinks;
//! - at most `--fetcher-max-download-bytes` per URI (default 2 GiB): a
//!   larger download fails and its partial file is removed;
//! - `output_file` names the file in the sandbox (a relative path, no `..`),
//!   else the URI's last path segment; it is written through a temporary
//!   file, and no symlink in the sandbox is followed on the way;
//! - `executable` makes it `0755`; `extract` unpacks `.tar`, `.tar.gz`/`.tgz`,
//!   `.tar.xz`/`.txz`, `.tar.zst`/`.tzst`, `.zip` and plain `.gz` into the
//!   sandbox ([`extract`]: streaming, at most `--fetcher-max-extract-bytes`,
//!   default 8 GiB), keeping the archive, as Mesos does;
//! - `cache: true` keeps a copy under `<work_dir>/cache/fetcher/<sha256 of
//!   the URI>/` and serves later fetches of the same URI from it (a host
//!   file is checked against the allow-list first, cached or not).
//!
//! What it does is appended to the sandbox's `stderr`. A failure fails the
//! task (TASK_FAILED, `REASON_FETCHER_FAILED`, `Failed to fetch 'URI': ...`).

pub mod config;
pub mod extract;
pub mod sink;
pub mod uri;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use keel_api::mesos::CommandUri;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::files::beneath as files_beneath;
pub use config::FetcherConfig;
use sink::{Budget, PartFile, SinkError};
pub use uri::{Source, destination, source};

pub const REASON_FETCHER_FAILED: &str = "REASON_FETCHER_FAILED";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("Failed to fetch '{uri}': {reason}")]
    Uri { uri: String, reason: Failure },
    #[error("cannot build the http client: {0}")]
    Client(String),
}

/// Why one URI was not fetched.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("unsupported URI scheme (http, https, file or an absolute path)")]
    Scheme,
    #[error("{0} is not a file name inside the sandbox")]
    Destination(String),
    #[error(
        "{path} is not below --fetcher-allowed-paths ({allowed}); host files are fetched only from there"
    )]
    NotAllowed { path: String, allowed: String },
    #[error("{path}: {reason}")]
    HostFile { path: String, reason: String },
    #[error("it is larger than --fetcher-max-download-bytes ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot extract {name}: {source}")]
    Extract {
        name: String,
        source: extract::ExtractError,
    },
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Failure {
    let what = what.to_string();
    move |source| Failure::Io { what, source }
}

pub struct Fetcher {
    http: reqwest::Client,
    cache: PathBuf,
    config: FetcherConfig,
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io("fetcher thread")(std::io::Error::other(e)))?
}

impl Fetcher {
    /// `cache` is `<work_dir>/cache/fetcher`.
    pub fn new(cache: PathBuf, config: FetcherConfig) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            http,
            cache,
            config,
        })
    }

    /// Fetches every URI into `sandbox`, in order.
    pub async fn fetch_all(&self, uris: &[CommandUri], sandbox: &Path) -> Result<(), FetchError> {
        for uri in uris {
            note(sandbox, &format!("Fetching URI '{}'", uri.value));
            let path = self
                .fetch(uri, sandbox)
                .await
                .map_err(|reason| FetchError::Uri {
                    uri: uri.value.clone(),
                    reason,
                })
                .inspect_err(|e| note(sandbox, &e.to_string()))?;
            note(
                sandbox,
                &format!("Fetched '{}' to '{}'", uri.value, path.display()),
            );
        }
        Ok(())
    }

    async fn fetch(&self, uri: &CommandUri, sandbox: &Path) -> Result<PathBuf, Failure> {
        let src = source(&uri.value)?;
        if let Source::File(path) = &src {
            self.allowed(path)?;
        }
        let rel = destination(uri)?;
        let mode = (uri.executable == Some(true)).then_some(0o755);
        if uri.cache == Some(true) {
            let cached = self.cached(&uri.value, &src).await?;
            let file = File::open(&cached).map_err(io(cached.display()))?;
            self.write_from(file, sandbox, &rel, mode).await?;
        } else {
            self.get(&src, sandbox, &rel, mode).await?;
        }
        let dest = sandbox.join(&rel);
        if uri.extract.unwrap_or(true)
            && let Some(kind) = extract::kind(&rel)
        {
            let (into, limit) = (sandbox.to_path_buf(), self.config.max_extract_bytes);
            let done = blocking(move || {
                let failed = |source| Failure::Extract {
                    name: rel.display().to_string(),
                    source,
                };
                let archive = open_below(&into, &rel).map_err(io(rel.display()))?;
                extract::extract(archive, kind, &rel, &into, limit).map_err(failed)
            })
            .await?;
            if !done.skipped.is_empty() {
                note(
                    sandbox,
                    &format!("Skipped (not extracted): {}", done.skipped.join(", ")),
                );
            }
        }
        Ok(dest)
    }

    /// The allowed directory holding `path`, or the refusal naming the flag.
    fn allowed(&self, path: &Path) -> Result<(&Path, PathBuf), Failure> {
        self.config
            .allowed(path)
            .ok_or_else(|| Failure::NotAllowed {
                path: path.display().to_string(),
                allowed: self.config.allowed_text(),
            })
    }

    /// Opens an allowed host file for reading: resolved below its allowed
    /// directory with no symlink followed, a regular file, not too large.
    fn open_host(&self, path: &Path) -> Result<File, Failure> {
        let (base, rel) = self.allowed(path)?;
        let host = |reason: String| Failure::HostFile {
            path: path.display().to_string(),
            reason,
        };
        let found = if rel.as_os_str().is_empty() {
            let flags = OFlags::PATH | OFlags::CLOEXEC;
            rustix::fs::open(base, flags, Mode::empty())
                .map_err(std::io::Error::from)
                .and_then(|fd| Ok((rustix::fs::fstat(&fd)?, fd)))
                .map(|(st, fd)| (fd, st))
        } else {
            sink::open_dir(base).and_then(|dir| files_beneath::locate(dir.as_fd(), &rel))
        };
        let (fd, stat) = found.map_err(|e| match e.raw_os_error() {
            Some(c) if c == Errno::LOOP.raw_os_error() || c == Errno::XDEV.raw_os_error() => host(
                "the path goes through a symlink (not followed below --fetcher-allowed-paths)"
                    .into(),
            ),
            _ => host(e.to_string()),
        })?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(host(format!(
                "it is {}, not a regular file",
                files_beneath::kind_name(stat.st_mode)
            )));
        }
        let limit = self.config.max_download_bytes;
        if u64::try_from(stat.st_size).unwrap_or(0) > limit {
            return Err(Failure::TooLarge { limit });
        }
        files_beneath::reopen_file(&fd, &stat).map_err(|e| host(e.to_string()))
    }

    /// The cached copy of `uri`, fetched now if there is none.
    async fn cached(&self, uri: &str, src: &Source) -> Result<PathBuf, Failure> {
        let key = hex(&Sha256::digest(uri.as_bytes()));
        let dir = self.cache.join(key);
        let file = dir.join("file");
        if tokio::fs::metadata(&file).await.is_ok() {
            return Ok(file);
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io(dir.display()))?;
        // Two tasks may fetch the same URI at once: each writes its own
        // temporary file, the last rename wins with identical bytes.
        self.get(src, &dir, Path::new("file"), None).await?;
        Ok(file)
    }

    /// Writes the source's bytes to `rel` below `root`.
    async fn get(
        &self,
        src: &Source,
        root: &Path,
        rel: &Path,
        mode: Option<u32>,
    ) -> Result<(), Failure> {
        match src {
            Source::File(path) => {
                let file = self.open_host(path)?;
                self.write_from(file, root, rel, mode).await
            }
            Source::Http(url) => self.download(url, root, rel, mode).await,
        }
    }

    async fn download(
        &self,
        url: &str,
        root: &Path,
        rel: &Path,
        mode: Option<u32>,
    ) -> Result<(), Failure> {
        let limit = self.config.max_download_bytes;
        let resp = self.http.get(url).send().await.map_err(Failure::Http)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Failure::Status(status));
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge { limit });
        }
        let mut part = PartFile::create(root, rel).map_err(io(rel.display()))?;
        let dup = part.file().try_clone().map_err(io(rel.display()))?;
        let mut out = tokio::fs::File::from_std(dup);
        let mut budget = Budget::new(limit);
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Failure::Http)?;
            budget
                .take(chunk.len() as u64)
                .map_err(|_| Failure::TooLarge { limit })?;
            out.write_all(&chunk).await.map_err(io(rel.display()))?;
        }
        out.flush().await.map_err(io(rel.display()))?;
        drop(out);
        part.commit(mode).map_err(io(rel.display()))
    }

    /// Copies `file` to `rel` below `root`, within the download limit.
    async fn write_from(
        &self,
        mut file: File,
        root: &Path,
        rel: &Path,
        mode: Option<u32>,
    ) -> Result<(), Failure> {
        let (root, rel) = (root.to_path_buf(), rel.to_path_buf());
        let limit = self.config.max_download_bytes;
        blocking(move || {
            let mut part = PartFile::create(&root, &rel).map_err(io(rel.display()))?;
            match Budget::new(limit).copy(&mut file, part.file()) {
                Ok(_) => {}
                Err(SinkError::Over { limit }) => return Err(Failure::TooLarge { limit }),
                Err(SinkError::Read(e) | SinkError::Write(e)) => {
                    return Err(io(rel.display())(e));
                }
            }
            part.commit(mode).map_err(io(rel.display()))
        })
        .await
    }
}

/// `rel` below `dir`, opened for reading without following a symlink.
fn open_below(dir: &Path, rel: &Path) -> std::io::Result<File> {
    let root = sink::open_dir(dir)?;
    let (fd, stat) = files_beneath::locate(root.as_fd(), rel)?;
    files_beneath::reopen_file(&fd, &stat)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
