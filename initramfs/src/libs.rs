//! The shared libraries a program needs, as the host's dynamic loader
//! resolves them (`ldd`), plus the ones it loads with dlopen per
//! `[dlopen]` in bundle.conf.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum LibsError {
    #[error("cannot run ldd on {path}: {reason}")]
    Ldd { path: PathBuf, reason: String },
    #[error("{path} needs {lib}, which the host does not have")]
    NotFound { path: PathBuf, lib: String },
    #[error("{path} links {lib}, which loads {extra} at run time, but no {extra} is next to {lib}")]
    Dlopen {
        path: PathBuf,
        lib: String,
        extra: String,
    },
}

/// Parses `ldd` output into library paths (the loader included, the vDSO
/// left out). Libraries that were not found are returned as `Err(name)`.
pub fn parse_ldd(text: &str) -> Vec<Result<PathBuf, String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((name, rest)) = line.split_once("=>") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                out.push(Err(name.trim().to_string()));
            } else if let Some(path) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                out.push(Ok(PathBuf::from(path)));
            }
        } else if line.starts_with('/')
            && let Some(path) = line.split_whitespace().next()
        {
            out.push(Ok(PathBuf::from(path)));
        }
    }
    out
}

/// The libraries `program` needs, with the dlopen extras of `dlopen`
/// (library file name -> extra file names) and their own libraries.
/// A statically linked program needs none.
pub fn needed(
    program: &Path,
    dlopen: &[(String, Vec<String>)],
) -> Result<BTreeSet<PathBuf>, LibsError> {
    let mut libs = ldd(program)?;
    let mut extras = Vec::new();
    for lib in &libs {
        let Some(file) = lib.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            continue;
        };
        for (linked, extra) in dlopen {
            if *linked != file {
                continue;
            }
            for e in extra {
                let path = lib.with_file_name(e);
                if !path.exists() {
                    return Err(LibsError::Dlopen {
                        path: program.to_path_buf(),
                        lib: file.clone(),
                        extra: e.clone(),
                    });
                }
                extras.push(path);
            }
        }
    }
    for extra in extras {
        libs.extend(ldd(&extra)?);
        libs.insert(extra);
    }
    Ok(libs)
}

fn ldd(path: &Path) -> Result<BTreeSet<PathBuf>, LibsError> {
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| LibsError::Ldd {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // ldd fails on static binaries ("not a dynamic executable").
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(BTreeSet::new());
        }
        return Err(LibsError::Ldd {
            path: path.to_path_buf(),
            reason: err.trim().to_string(),
        });
    }
    let mut libs = BTreeSet::new();
    for entry in parse_ldd(&text) {
        match entry {
            Ok(p) => {
                libs.insert(p);
            }
            Err(lib) => {
                return Err(LibsError::NotFound {
                    path: path.to_path_buf(),
                    lib,
                });
            }
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f9e)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9e)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f9e)\n\
                    \tlibgone.so.3 => not found\n";
        assert_eq!(
            parse_ldd(text),
            [
                Ok(PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1")),
                Ok(PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")),
                Ok(PathBuf::from("/lib64/ld-linux-x86-64.so.2")),
                Err("libgone.so.3".to_string()),
            ]
        );
    }

    #[test]
    fn a_real_program_needs_libc_and_the_loader() {
        // The test binary itself is a dynamically linked glibc program.
        let me = std::env::current_exe().unwrap();
        let libs = needed(&me, &[]).unwrap();
        assert!(libs.iter().any(|l| l.ends_with("libc.so.6")), "{libs:?}");
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
    }

    #[test]
    fn dlopen_extras_must_exist() {
        let me = std::env::current_exe().unwrap();
        let dl = [(
            "libc.so.6".to_string(),
            vec!["libkeel-nonexistent.so.9".to_string()],
        )];
        let e = needed(&me, &dl).unwrap_err();
        assert!(
            e.to_string()
                .contains("loads libkeel-nonexistent.so.9 at run time"),
            "{e}"
        );
    }
}
