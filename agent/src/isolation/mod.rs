//! The kernel surfaces task isolation needs, each behind a small trait with
//! a real implementation and a recording fake. Readers of kernel file
//! systems take their root as a path and are tested on temp trees.
//!
//! - [`procfs`]: `/proc/<pid>/stat` (process identity after a restart).

pub mod procfs;
