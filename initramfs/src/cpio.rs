//! A reproducible cpio archive in the kernel's `newc` format
//! (Documentation/driver-api/early-userspace/buffer-format.rst), built in
//! memory: entries sorted by path, owned by root, one fixed mtime, inode
//! numbers in order. Device nodes need no privileges, since nothing is
//! created on the host.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("archive path {0:?} is not relative and normalised")]
    BadPath(String),
    #[error("archive path {path:?} added twice with different contents")]
    Conflict { path: String },
    #[error("parent {parent:?} of {path:?} is not a directory")]
    NotADirectory { path: String, parent: String },
}

/// What a path in the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDev { mode: u32, major: u32, minor: u32 },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An archive being assembled. Parent directories are added as needed.
#[derive(Debug, Clone, Default)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
    mtime: u32,
}

impl Archive {
    /// An empty archive whose entries all carry `mtime` (SOURCE_DATE_EPOCH).
    pub fn new(mtime: u32) -> Self {
        Archive {
            nodes: BTreeMap::new(),
            mtime,
        }
    }

    /// Adds `node` at `path` (`usr/bin/x`, no leading slash), creating the
    /// parent directories (0755). Adding the same thing twice is fine.
    pub fn add(&mut self, path: &str, node: Node) -> Result<(), CpioError> {
        if path.is_empty()
            || path.starts_with('/')
            || path.ends_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(CpioError::BadPath(path.to_string()));
        }
        let mut parent = String::new();
        for comp in path.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(CpioError::NotADirectory {
                        path: path.to_string(),
                        parent,
                    });
                }
            }
        }
        match self.nodes.get(path) {
            Some(existing) if *existing == node => Ok(()),
            // A directory made as a parent may get its own mode later.
            Some(Node::Dir { .. }) if matches!(node, Node::Dir { .. }) => {
                self.nodes.insert(path.to_string(), node);
                Ok(())
            }
            Some(_) => Err(CpioError::Conflict {
                path: path.to_string(),
            }),
            None => {
                self.nodes.insert(path.to_string(), node);
                Ok(())
            }
        }
    }

    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), CpioError> {
        self.add(path, Node::File { mode, data })
    }

    pub fn dir(&mut self, path: &str) -> Result<(), CpioError> {
        self.add(path, Node::Dir { mode: 0o755 })
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.add(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        )
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Total size of the regular files' contents.
    pub fn content_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// The archive in `newc` format, ending with the `TRAILER!!!` entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content_bytes() as usize + 64 * 1024);
        for (ino, (path, node)) in self.nodes.iter().enumerate() {
            let (mode, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match node {
                Node::Dir { mode } => (S_IFDIR | mode, &[], 2, (0, 0)),
                Node::File { mode, data } => (S_IFREG | mode, data, 1, (0, 0)),
                Node::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), 1, (0, 0)),
                Node::CharDev { mode, major, minor } => (S_IFCHR | mode, &[], 1, (*major, *minor)),
            };
            entry(
                &mut out,
                ino as u32 + 1,
                path,
                mode,
                nlink,
                self.mtime,
                data,
                rdev,
            );
        }
        entry(&mut out, 0, "TRAILER!!!", 0, 1, 0, &[], (0, 0));
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    out: &mut Vec<u8>,
    ino: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    mtime: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        mtime,
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Reads a `newc` archive back into (path, mode, data) entries, without the
/// trailer. For tests and for checking built bundles.
pub fn read(bytes: &[u8]) -> Option<Vec<(String, u32, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let header = bytes.get(pos..pos + 110)?;
        if &header[..6] != b"070701" {
            return None;
        }
        let field = |i: usize| {
            let s = std::str::from_utf8(&header[6 + i * 8..14 + i * 8]).ok()?;
            u32::from_str_radix(s, 16).ok()
        };
        let (mode, size, namesize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let name_start = pos + 110;
        let name = bytes.get(name_start..name_start + namesize - 1)?;
        let name = String::from_utf8(name.to_vec()).ok()?;
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = bytes.get(data_start..data_start + size)?.to_vec();
        pos = (data_start + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return Some(out);
        }
        out.push((name, mode, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_parents_sorted() {
        let mut a = Archive::new(0);
        a.file("usr/bin/keel-agent", 0o755, b"ELF...".to_vec())
            .unwrap();
        a.symlink("init", "usr/bin/keel-init").unwrap();
        a.add(
            "dev/console",
            Node::CharDev {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        )
        .unwrap();
        let entries = read(&a.to_bytes()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "init",
                "usr",
                "usr/bin",
                "usr/bin/keel-agent"
            ]
        );
        assert_eq!(entries[5].1, 0o100755);
        assert_eq!(entries[5].2, b"ELF...");
        assert_eq!(entries[2].1, 0o120777);
        assert_eq!(entries[2].2, b"usr/bin/keel-init");
        assert_eq!(entries[1].1, 0o020600);
        assert_eq!(entries[0].1, 0o040755);
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let build = |order: &[&str]| {
            let mut a = Archive::new(1_700_000_000);
            for p in order {
                a.file(p, 0o644, p.as_bytes().to_vec()).unwrap();
            }
            a.to_bytes()
        };
        assert_eq!(build(&["b/x", "a", "b/y"]), build(&["b/y", "a", "b/x"]));
    }

    #[test]
    fn header_layout_is_newc() {
        let mut a = Archive::new(0x10);
        a.file("x", 0o644, b"abcde".to_vec()).unwrap();
        let b = a.to_bytes();
        // magic, ino 1, mode 0x81a4, uid, gid, nlink 1, mtime 0x10, size 5
        let expect = [
            "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000010",
            "00000005",
        ]
        .concat();
        assert_eq!(&b[..62], expect.as_bytes());
        // name "x\0" ends at 112, padded to 112; data at 112..117, padded to 120
        assert_eq!(&b[110..112], b"x\0");
        assert_eq!(&b[112..117], b"abcde");
        assert_eq!(&b[120..126], b"070701");
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn bad_paths_and_conflicts() {
        let mut a = Archive::new(0);
        for p in ["/abs", "a/../b", "a//b", "", "a/"] {
            assert_eq!(a.dir(p), Err(CpioError::BadPath(p.into())));
        }
        a.file("f", 0o644, b"1".to_vec()).unwrap();
        a.file("f", 0o644, b"1".to_vec()).unwrap();
        assert_eq!(
            a.file("f", 0o644, b"2".to_vec()),
            Err(CpioError::Conflict { path: "f".into() })
        );
        assert_eq!(
            a.file("f/g", 0o644, vec![]),
            Err(CpioError::NotADirectory {
                path: "f/g".into(),
                parent: "f".into()
            })
        );
    }
}
