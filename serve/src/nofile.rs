//! The file-descriptor limit of the process: every connection holds one.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Used when the hard limit reads as unlimited (Linux caps it at
/// `fs.nr_open`, 1 Mi by default).
const UNLIMITED: u64 = 1 << 20;

/// Raises the soft limit of open files to the hard limit; returns the
/// soft limit now in force. Children inherit it.
pub fn raise() -> std::io::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(UNLIMITED);
    let soft = limit.current.unwrap_or(UNLIMITED);
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    )?;
    Ok(hard)
}
