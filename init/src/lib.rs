//! Keel's early userspace.
