//! ATTACH_CONTAINER_OUTPUT of a task's own container: a Keel task writes
//! its stdout and stderr to files in its sandbox (it has no I/O switchboard
//! to attach to), so attaching follows those files from their current end,
//! as `tail -f` would, until the task ends.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_api::agent::containers::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::process::Chunk;

/// How often the files are read for more.
const POLL: Duration = Duration::from_millis(100);
/// The most read from one file at a time.
const READ: u64 = 64 << 10;

/// A task's output, followed.
pub struct Follow {
    rx: mpsc::Receiver<Chunk>,
}

impl Follow {
    /// Follows `stdout` and `stderr` from their current ends while
    /// `running()` says the task runs.
    pub async fn start<F, Fut>(stdout: PathBuf, stderr: PathBuf, running: F) -> Follow
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut files = [
            (Stream::Stdout, size(&stdout), stdout),
            (Stream::Stderr, size(&stderr), stderr),
        ];
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut ticks = 0u32;
            loop {
                let alive = !ticks.is_multiple_of(10) || running().await;
                ticks = ticks.wrapping_add(1);
                for (stream, offset, path) in files.iter_mut() {
                    while let Some(bytes) = read_more(path, offset).await {
                        if tx.send(Chunk::Data(*stream, bytes)).await.is_err() {
                            return;
                        }
                    }
                }
                if !alive {
                    let _ = tx.send(Chunk::End).await;
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Follow { rx }
    }

    pub async fn next(&mut self) -> Option<Chunk> {
        self.rx.recv().await
    }
}

/// What `path` has past `offset` (at most [`READ`] bytes), moving it on.
async fn read_more(path: &PathBuf, offset: &mut u64) -> Option<Arc<[u8]>> {
    let mut f = tokio::fs::File::open(path).await.ok()?;
    let len = f.metadata().await.ok()?.len();
    if len < *offset {
        // Rotated or truncated: start over.
        *offset = 0;
    }
    if len == *offset {
        return None;
    }
    f.seek(std::io::SeekFrom::Start(*offset)).await.ok()?;
    let mut buf = Vec::new();
    f.take(READ).read_to_end(&mut buf).await.ok()?;
    if buf.is_empty() {
        return None;
    }
    *offset += buf.len() as u64;
    Some(Arc::from(buf))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn output_written_after_attaching_arrives_and_ends_with_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        std::fs::write(&out, "before\n").unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let a = alive.clone();
        let mut f = Follow::start(out.clone(), err.clone(), move || {
            let a = a.clone();
            async move { a.load(Ordering::SeqCst) }
        })
        .await;
        std::fs::write(&out, "before\nafter\n").unwrap();
        std::fs::write(&err, "oops\n").unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            match f.next().await.unwrap() {
                Chunk::Data(s, b) => got.push((s, String::from_utf8_lossy(&b).into_owned())),
                Chunk::End => panic!("ended early"),
            }
        }
        assert!(got.contains(&(Stream::Stdout, "after\n".into())), "{got:?}");
        assert!(got.contains(&(Stream::Stderr, "oops\n".into())), "{got:?}");
        alive.store(false, Ordering::SeqCst);
        assert_eq!(f.next().await, Some(Chunk::End));
    }
}
