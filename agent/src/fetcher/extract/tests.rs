use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;

use super::*;

/// A tar of `(path, mode, body)` files, names written as given (even
/// `..`, as an attacker would).
pub(crate) fn tar_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, *body).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar with `bin/hello` (0755) and `data.txt`.
fn tar_bytes() -> Vec<u8> {
    tar_of(&[
        (
            "bin/hello",
            0o755,
            b"#!/bin/sh\necho hello from the archive\n",
        ),
        ("data.txt", 0o644, b"data\n"),
    ])
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub(crate) fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut opts = lzma_rust2::XzOptions::with_preset(0);
    opts.set_check_sum_type(lzma_rust2::CheckType::Crc32);
    let mut w = lzma_rust2::XzWriter::new(Vec::new(), opts).unwrap();
    w.write_all(bytes).unwrap();
    w.finish().unwrap()
}

fn unpack(name: &str, bytes: &[u8], into: &Path, limit: u64) -> Result<Extracted, ExtractError> {
    let k = kind(Path::new(name)).unwrap();
    extract(Cursor::new(bytes), k, Path::new(name), into, limit)
}

fn check(dir: &Path) {
    let hello = dir.join("bin/hello");
    assert!(std::fs::read_to_string(&hello).unwrap().contains("hello"));
    assert_eq!(
        std::fs::metadata(&hello).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("data.txt")).unwrap(),
        "data\n"
    );
}

#[test]
fn every_kind_unpacks() {
    let tar = tar_bytes();
    let gz = gz(&tar);
    let xz = xz(&tar);
    let zst = ruzstd::encoding::compress_to_vec(
        tar.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    zip.start_file("bin/hello", opts).unwrap();
    zip.write_all(b"#!/bin/sh\necho hello\n").unwrap();
    zip.start_file("data.txt", opts.unix_permissions(0o644))
        .unwrap();
    zip.write_all(b"data\n").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    for (name, bytes) in [
        ("a.tar", &tar),
        ("a.tar.gz", &gz),
        ("a.tgz", &gz),
        ("a.tar.xz", &xz),
        ("a.tar.zst", &zst),
        ("a.zip", &zip),
    ] {
        let dir = tempfile::tempdir().unwrap();
        unpack(name, bytes, dir.path(), 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(dir.path());
    }
    let dir = tempfile::tempdir().unwrap();
    let one = self::gz(b"plain\n");
    unpack("notes.txt.gz", &one, dir.path(), 1 << 20).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "plain\n"
    );
    assert_eq!(kind(Path::new("x.bin")), None);
    assert_eq!(kind(Path::new("X.TGZ")), Some(Kind::TarGz));
}

#[test]
fn dot_dot_and_absolute_entries_are_refused() {
    for evil in ["../escape", "a/../../escape", "/tmp/keel-extract-escape"] {
        let outer = tempfile::tempdir().unwrap();
        let into = outer.path().join("sandbox");
        std::fs::create_dir(&into).unwrap();
        let tar = tar_of(&[(evil, 0o644, b"evil")]);
        let err = unpack("evil.tar", &tar, &into, 1 << 20).unwrap_err();
        assert!(matches!(err, ExtractError::Refused { .. }), "{evil}: {err}");
        assert!(!outer.path().join("escape").exists());
        assert!(!Path::new("/tmp/keel-extract-escape").exists());
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(unpack("junk.tar.gz", b"not gzip", dir.path(), 1 << 20).is_err());
    assert_eq!(
        target::shown(&[b'a'; 5000]).len(),
        203,
        "names in messages are cut"
    );
}

#[test]
fn setuid_and_setgid_bits_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let tar = tar_of(&[("suid", 0o6755, b"x"), ("sticky", 0o1777, b"y")]);
    unpack("m.tar", &tar, dir.path(), 1 << 20).unwrap();
    let mode = |n: &str| {
        std::fs::metadata(dir.path().join(n))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode("suid") & 0o7777, 0o755);
    assert_eq!(mode("sticky") & 0o7777, 0o777);
}

/// Appends an entry with any type, name and link name.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
}

#[test]
fn links_stay_inside_and_devices_are_not_made() {
    use tar::EntryType as E;
    for (name, target) in [
        ("up", ".."),
        ("abs", "/etc"),
        ("d/far", "../../x"),
        ("d/zig", "x/../../.."),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, E::Symlink, name, target);
        let tar = b.into_inner().unwrap();
        let err = unpack("l.tar", &tar, dir.path(), 1 << 20).unwrap_err();
        assert!(matches!(err, ExtractError::Refused { .. }), "{name}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outside"), "secret").unwrap();
    let into = dir.path().join("s");
    std::fs::create_dir(&into).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, E::Directory, "d/", "");
    raw_entry(&mut b, E::Symlink, "d/ok", "../f");
    raw_entry(&mut b, E::Char, "null", "");
    raw_entry(&mut b, E::Fifo, "fifo", "");
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "f", &b"file"[..]).unwrap();
    raw_entry(&mut b, E::Link, "hard", "f");
    let tar = b.into_inner().unwrap();
    let done = unpack("ok.tar", &tar, &into, 1 << 20).unwrap();

    assert_eq!(
        std::fs::read_link(into.join("d/ok")).unwrap(),
        Path::new("../f")
    );
    assert!(!into.join("null").exists() && !into.join("fifo").exists());
    assert_eq!(done.skipped.len(), 2, "{:?}", done.skipped);
    let hard = std::fs::metadata(into.join("hard")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&hard), 1, "a copy");
    assert_eq!(std::fs::read(into.join("hard")).unwrap(), b"file");
    // A link planted earlier is not written through.
    std::os::unix::fs::symlink(dir.path(), into.join("planted")).unwrap();
    let tar = tar_of(&[("planted/outside", 0o644, b"overwritten")]);
    assert!(unpack("p.tar", &tar, &into, 1 << 20).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("outside")).unwrap(),
        b"secret"
    );
}

/// Counts what was read from the archive.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn xz_streams_and_stops_at_the_extract_limit() {
    // 4 MiB that does not compress: the archive is as big as its contents.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let body: Vec<u8> = (0..4 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let archive = xz(&tar_of(&[("big", 0o644, &body)]));
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let counting = Counting {
        inner: Cursor::new(&archive),
        read: read.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 << 10;
    let err = extract(
        counting,
        Kind::TarXz,
        Path::new("b.tar.xz"),
        dir.path(),
        limit,
    );
    assert!(
        matches!(err, Err(ExtractError::TooLarge { limit: 262144 })),
        "{err:?}"
    );
    assert!(
        read.get() < archive.len() as u64 / 4,
        "read {} of {} bytes before failing",
        read.get(),
        archive.len()
    );
    assert!(
        !dir.path().join("big").exists(),
        "the partial file is removed"
    );
}

#[test]
fn bombs_stop_at_the_extract_limit() {
    let zeros = vec![0u8; 8 << 20];
    let tgz = gz(&tar_of(&[("a", 0o644, &zeros)]));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for name in ["a", "b"] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&zeros).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    let gz1 = gz(&zeros);
    for (name, bytes) in [("b.tgz", &tgz), ("b.zip", &zip), ("b.gz", &gz1)] {
        assert!(bytes.len() < 1 << 20, "{name} is small: {}", bytes.len());
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(name, bytes, dir.path(), 4 << 20).unwrap_err();
        assert!(
            matches!(err, ExtractError::TooLarge { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("--fetcher-max-extract-bytes"));
    }
}

#[test]
fn tar_metadata_is_bounded() {
    // A GNU long name of 4 MiB (the tar crate would hold it in memory).
    let mut b = tar::Builder::new(Vec::new());
    let long = vec![b'a'; 4 << 20];
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(long.len() as u64);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    b.append(&h, long.as_slice()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_cksum();
    b.append_data(&mut h, "short", &b"x"[..]).unwrap();
    let tgz = gz(&b.into_inner().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let err = unpack("long.tgz", &tgz, dir.path(), 64 << 20).unwrap_err();
    assert!(matches!(err, ExtractError::Metadata { .. }), "{err}");
}

#[test]
fn data_not_written_still_counts() {
    // A FIFO entry that claims 8 MiB of data: skipped, but read and counted.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(8 << 20);
    h.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"fifo");
    h.set_cksum();
    b.append(&h, vec![0u8; 8 << 20].as_slice()).unwrap();
    let tgz = gz(&b.into_inner().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let err = unpack("f.tgz", &tgz, dir.path(), 1 << 20).unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge { .. }), "{err}");
}
