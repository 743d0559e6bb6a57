//! Python virtual environments for tests that run real Python clients
//! (pymesos, the Mesos CLI, prometheus_client's parser): made once under
//! `target/<name>` (PyPI must be reachable the first time), marked complete
//! only when `fill` succeeded, and made at most once per test binary
//! (its tests run in parallel threads and may all need it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{bin, run_output};

/// Runs `cmd`; its stdout, or a panic with both outputs.
pub fn sh(cmd: &mut Command) -> String {
    let out = run_output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The python of venv `target/<name>`, made with `python3 -m venv` and then
/// `fill(python, venv)` the first time.
pub fn python(name: &str, fill: impl FnOnce(&Path, &Path)) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(python) = made.get(name) {
        return python.clone();
    }
    let target = bin("keel-master")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let venv = target.join(name);
    let python = venv.join("bin/python");
    let marker = venv.join(".complete");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        sh(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        fill(&python, &venv);
        std::fs::write(&marker, "").unwrap();
    }
    made.insert(name.to_string(), python.clone());
    python
}

/// `pip install -q ARGS` into the venv of `python`.
pub fn pip(python: &Path, args: &[&str]) {
    sh(Command::new(python)
        .args(["-m", "pip", "install", "-q"])
        .args(args));
}

/// The python of a venv with pymesos (PyPI, unmodified). Its dependency
/// http-parser does not build on Python >= 3.11, so the environment is
/// pymesos `--no-deps` plus six and addict, and the pure-Python
/// `http_parser` package taken from the http-parser sdist; made once under
/// `target/pymesos-venv` (PyPI must be reachable the first time).
pub fn pymesos_python() -> PathBuf {
    python("pymesos-venv", |python, venv| {
        pip(python, &["--no-deps", "pymesos==0.3.15", "six", "addict"]);
        let sdist = venv.join("sdist");
        sh(Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "http-parser==0.9.0",
                "-d",
            ])
            .arg(&sdist));
        let site = sh(Command::new(python).args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ]));
        let site = Path::new(site.trim());
        sh(Command::new("tar")
            .arg("xzf")
            .arg(sdist.join("http-parser-0.9.0.tar.gz"))
            .arg("-C")
            .arg(&sdist));
        let pkg = site.join("http_parser");
        std::fs::create_dir_all(&pkg).unwrap();
        for entry in std::fs::read_dir(sdist.join("http-parser-0.9.0/http_parser")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "py") {
                std::fs::copy(&p, pkg.join(p.file_name().unwrap())).unwrap();
            }
        }
        sh(Command::new(python).args(["-c", "import pymesos, http_parser.http"]));
    })
}
