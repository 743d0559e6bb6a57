//! The update log's writes that can fail: positional writes and fsyncs. A
//! failed one is undone before the next ([`super::log`]); in tests a
//! [`Disk`] fails them the ways a real disk does where filling a real one
//! is awkward (a write cut short by a full disk, an fsync that fails), and
//! `tests::Tmpfs` fills a real one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Writes and fsyncs of a checkpoint file.
#[derive(Debug, Default)]
pub(crate) struct Disk {
    #[cfg(test)]
    faults: tests::Faults,
}

impl Disk {
    /// Writes all of `buf` at `at`.
    pub(crate) fn write_all_at(&mut self, file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.faults.short_write.take() {
            file.write_all_at(&buf[..n.min(buf.len())], at)?;
            return Err(rustix::io::Errno::NOSPC.into());
        }
        file.write_all_at(buf, at)
    }

    /// `fdatasync`.
    pub(crate) fn sync_data(&mut self, file: &File) -> io::Result<()> {
        self.sync_fault()?;
        file.sync_data()
    }

    /// `fsync`, for a change of the file's size.
    pub(crate) fn sync_all(&mut self, file: &File) -> io::Result<()> {
        self.sync_fault()?;
        file.sync_all()
    }

    fn sync_fault(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.failing_syncs > 0 {
            self.faults.failing_syncs -= 1;
            return Err(rustix::io::Errno::IO.into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {

    use super::*;

    /// What the next writes and fsyncs do wrong.
    #[derive(Debug, Default)]
    pub(crate) struct Faults {
        /// The next write puts only this many bytes, then fails with
        /// `ENOSPC`.
        pub short_write: Option<usize>,
        /// This many of the next fsyncs fail with `EIO`.
        pub failing_syncs: usize,
    }

    impl Disk {
        /// The next write stops after `n` bytes and fails with `ENOSPC`.
        pub(crate) fn cut_next_write(&mut self, n: usize) {
            self.faults.short_write = Some(n);
        }

        /// The next `n` fsyncs fail with `EIO`.
        pub(crate) fn fail_syncs(&mut self, n: usize) {
            self.faults.failing_syncs = n;
        }
    }

    pub(crate) use keel_hardware_tests::tmpfs::Tmpfs;
}
