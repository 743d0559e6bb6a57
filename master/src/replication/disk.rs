//! The stores' writes that can fail: positional writes and fsyncs of the
//! single master's command log ([`super::local`]) and of the Raft log's
//! segments ([`super::raft::wal`]).
//!
//! Each store keeps one rule for them (`docs/design/0003-raft-store.md`,
//! "A write that fails"): a failed write leaves the file as it was before
//! the next write is made, the caller gets the error, and the store takes
//! writes again once the disk does. In tests a [`Disk`] can be told to fail
//! them the ways a real disk does where filling a real one is awkward: a
//! write cut short by a full disk, an fsync that fails. (`tests::Tmpfs`
//! fills a real one.)

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Writes and fsyncs of a store's files; cheap to clone (clones share the
/// faults a test sets).
#[derive(Clone, Default)]
pub(crate) struct Disk {
    #[cfg(test)]
    faults: std::sync::Arc<std::sync::Mutex<tests::Faults>>,
}

impl Disk {
    /// Writes all of `buf` at `at`.
    pub(crate) fn write_all_at(&self, file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.faults().short_write.take() {
            file.write_all_at(&buf[..n.min(buf.len())], at)?;
            return Err(rustix::io::Errno::NOSPC.into());
        }
        file.write_all_at(buf, at)
    }

    /// `fdatasync`.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        self.sync_fault()?;
        file.sync_data()
    }

    /// `fsync`, for a change of the file's size.
    pub(crate) fn sync_all(&self, file: &File) -> io::Result<()> {
        self.sync_fault()?;
        file.sync_all()
    }

    fn sync_fault(&self) -> io::Result<()> {
        #[cfg(test)]
        {
            let mut faults = self.faults();
            if faults.failing_syncs > 0 {
                faults.failing_syncs -= 1;
                return Err(rustix::io::Errno::IO.into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::MutexGuard;

    use super::*;

    /// What the next writes and fsyncs do wrong.
    #[derive(Debug, Default)]
    pub(crate) struct Faults {
        /// The next write puts only this many bytes, then fails with
        /// `ENOSPC`, as a write that runs into a full disk.
        pub short_write: Option<usize>,
        /// This many of the next fsyncs fail with `EIO` (after which the
        /// state of the pages they were to write is unknown).
        pub failing_syncs: usize,
    }

    impl Disk {
        pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
            self.faults.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// The next write stops after `n` bytes and fails with `ENOSPC`.
        pub(crate) fn cut_next_write(&self, n: usize) {
            self.faults().short_write = Some(n);
        }

        /// The next `n` fsyncs fail with `EIO`.
        pub(crate) fn fail_syncs(&self, n: usize) {
            self.faults().failing_syncs = n;
        }
    }

    pub(crate) use keel_hardware_tests::tmpfs::Tmpfs;
}
