//! Unpacking fetched archives into the sandbox. Entries that would land
//! outside it (`..`, absolute paths) are refused by the tar and zip crates'
//! own checks; the kind is chosen by the file name, as Mesos' fetcher does.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    TarGz,
    TarXz,
    TarZst,
    Zip,
    /// A single gzipped file (`x.gz` -> `x`).
    Gz,
}

pub fn kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let ends = |s: &str| name.ends_with(s);
    Some(if ends(".tar") {
        Kind::Tar
    } else if ends(".tar.gz") || ends(".tgz") {
        Kind::TarGz
    } else if ends(".tar.xz") || ends(".txz") {
        Kind::TarXz
    } else if ends(".tar.zst") || ends(".tzst") {
        Kind::TarZst
    } else if ends(".zip") {
        Kind::Zip
    } else if ends(".gz") {
        Kind::Gz
    } else {
        return None;
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot extract {path}: {reason}")]
    Failed { path: String, reason: String },
}

fn untar(reader: impl Read, into: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(into)
}

/// Extracts `archive` (of a [`kind`]) into the directory `into`.
pub fn extract(archive: &Path, into: &Path) -> Result<(), ExtractError> {
    let fail = |reason: String| ExtractError::Failed {
        path: archive.display().to_string(),
        reason,
    };
    let k = kind(archive).ok_or_else(|| fail("not an archive".into()))?;
    let file = File::open(archive).map_err(|e| fail(e.to_string()))?;
    let io = |e: std::io::Error| fail(e.to_string());
    match k {
        Kind::Tar => untar(file, into).map_err(io),
        Kind::TarGz => untar(flate2::read::GzDecoder::new(file), into).map_err(io),
        Kind::TarXz => {
            // lzma-rs decodes whole streams into a writer.
            let mut tar = Vec::new();
            lzma_rs::xz_decompress(&mut BufReader::new(file), &mut tar)
                .map_err(|e| fail(e.to_string()))?;
            untar(tar.as_slice(), into).map_err(io)
        }
        Kind::TarZst => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
                .map_err(|e| fail(e.to_string()))?;
            untar(decoder, into).map_err(io)
        }
        Kind::Zip => {
            let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(e.to_string()))?;
            zip.extract(into).map_err(|e| fail(e.to_string()))
        }
        Kind::Gz => {
            let stem = archive
                .file_stem()
                .ok_or_else(|| fail("no file name".into()))?;
            let mut out = File::create(into.join(stem)).map_err(io)?;
            std::io::copy(&mut flate2::read::GzDecoder::new(file), &mut out)
                .map(|_| ())
                .map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar with `bin/hello` (0755) and `data.txt`.
    pub(crate) fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, body) in [
            (
                "bin/hello",
                0o755,
                &b"#!/bin/sh\necho hello from the archive\n"[..],
            ),
            ("data.txt", 0o644, &b"data\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            b.append_data(&mut h, path, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn check(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let hello = dir.join("bin/hello");
        assert!(std::fs::read_to_string(&hello).unwrap().contains("hello"));
        assert_eq!(
            std::fs::metadata(&hello).unwrap().permissions().mode() & 0o777,
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
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut tar.as_slice(), &mut xz).unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            tar.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
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
            let archive = dir.path().join(name);
            std::fs::write(&archive, bytes).unwrap();
            extract(&archive, dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
            check(dir.path());
        }
        let dir = tempfile::tempdir().unwrap();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        one.write_all(b"plain\n").unwrap();
        std::fs::write(dir.path().join("notes.txt.gz"), one.finish().unwrap()).unwrap();
        extract(&dir.path().join("notes.txt.gz"), dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "plain\n"
        );
    }

    #[test]
    fn entries_cannot_escape_and_garbage_is_an_error() {
        let outer = tempfile::tempdir().unwrap();
        let into = outer.path().join("sandbox");
        std::fs::create_dir(&into).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        // `append_data` refuses `..`; write the name the way an attacker would.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        let archive = into.join("evil.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let _ = extract(&archive, &into);
        assert!(!outer.path().join("escape").exists());
        std::fs::write(into.join("junk.tar.gz"), b"not gzip").unwrap();
        assert!(extract(&into.join("junk.tar.gz"), &into).is_err());
        assert_eq!(kind(Path::new("x.bin")), None);
        assert_eq!(kind(Path::new("X.TGZ")), Some(Kind::TarGz));
    }
}
