//! `LIST_FILES` and `READ_FILE` (`master.proto`'s `ListFiles`, `ReadFile`
//! and their responses). On a Keel master the paths are
//! `/agents/<agent-id>/frameworks/<framework-id>/...` (an agent's sandbox,
//! read through the master; `docs/design/0011-files-and-volumes.md`).

use serde::{Deserialize, Serialize};

use crate::lenient;
use crate::mesos::Nanos;

/// `list_files`: the directory (or file) to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFiles {
    pub path: String,
}

/// `read_file`: `length` bytes (at most 64 KiB) of `path` from `offset`.
/// Signed, so that a negative number is refused with a reason rather than
/// as a number of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFile {
    pub path: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub offset: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_i64"
    )]
    pub length: Option<i64>,
}

fn opt_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient::i64(d).map(Some)
}

/// Mesos' `FileInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlink: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<Nanos>,
    /// `st_mode`: the file type and permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

/// `list_files`' answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListFilesAnswer {
    #[serde(default)]
    pub file_infos: Vec<FileInfo>,
}

/// `read_file`'s answer: the file's size and the bytes read (base64).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadFileAnswer {
    #[serde(deserialize_with = "lenient::u64")]
    pub size: u64,
    #[serde(default)]
    pub data: String,
}

impl ReadFileAnswer {
    /// The bytes `data` carries (`None` if it is not base64).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        crate::mesos::base64_decode(&self.data)
    }
}

/// `st_mode` from `ls -l` text (`drwxr-xr-x`), as an agent's
/// `/files/browse` gives it; `None` for anything else.
pub fn mode_bits(text: &str) -> Option<u32> {
    let mut chars = text.chars();
    let kind = match chars.next()? {
        'd' => 0o040000,
        '-' => 0o100000,
        'l' => 0o120000,
        'c' => 0o020000,
        'b' => 0o060000,
        'p' => 0o010000,
        's' => 0o140000,
        _ => return None,
    };
    let rest: Vec<char> = chars.collect();
    if rest.len() != 9 {
        return None;
    }
    let mut bits = 0u32;
    for (i, c) in rest.iter().enumerate() {
        let want = ['r', 'w', 'x'][i % 3];
        match *c {
            '-' => {}
            c if c == want => bits |= 1 << (8 - i),
            _ => return None,
        }
    }
    Some(kind | bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes_read_back() {
        assert_eq!(mode_bits("drwxr-xr-x"), Some(0o040755));
        assert_eq!(mode_bits("-rw-r-----"), Some(0o100640));
        assert_eq!(mode_bits("lrwxrwxrwx"), Some(0o120777));
        for bad in [
            "",
            "d",
            "xrwxrwxrwx",
            "drwxr-xr-",
            "drwxr-xr-xx",
            "dxwxr-xr-x",
        ] {
            assert_eq!(mode_bits(bad), None, "{bad}");
        }
    }

    #[test]
    fn read_file_takes_numbers_and_strings() {
        let r: ReadFile =
            serde_json::from_value(json!({"path": "/p", "offset": "5", "length": 10})).unwrap();
        assert_eq!((r.offset, r.length), (5, Some(10)));
        let r: ReadFile = serde_json::from_value(json!({"path": "/p", "offset": -3})).unwrap();
        assert_eq!((r.offset, r.length), (-3, None));
        let a = ReadFileAnswer {
            size: 3,
            data: crate::mesos::base64_encode(b"a\0\xff"),
        };
        assert_eq!(a.bytes().unwrap(), b"a\0\xff");
    }
}
