//! The fetcher's confinement and limits, with real tasks and a local HTTP
//! server on 127.0.0.1: host files only from `--fetcher-allowed-paths` and
//! no symlink out of it, downloads and unpacked archives capped (nothing
//! partial left), archive entries kept inside the sandbox without setuid
//! bits.

mod support;

use std::io::Write;
use std::path::Path;

use keel_agent::fetcher::FetcherConfig;
use keel_agent::isolation::{HostSupport, Isolation};
use serde_json::json;
use support::fetch::{Agent, Files, agent, server};

fn with(config: FetcherConfig) -> Agent {
    agent(Isolation::none(), HostSupport::default(), config)
}

/// A tar of `(name, mode, body)` files and `(name, target)` symlinks, names
/// written as given (`..` and absolute ones too, as an attacker would).
fn tar_of(files: &[(&str, u32, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, mode, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *body).unwrap();
    }
    for (name, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// What the fetch left in a sandbox besides the task's own logs.
fn left_in(sandbox: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sandbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "stdout" && n != "stderr")
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn host_files_are_refused_without_the_allow_list() {
    let mut a = with(FetcherConfig::default());
    for (id, uri) in [("shadow", "file:///etc/shadow"), ("plain", "/etc/passwd")] {
        a.fetch_fails(id, json!([{"value": uri}]), "--fetcher-allowed-paths")
            .await;
        assert_eq!(left_in(&a.sandbox(id)), Vec::<String>::new());
    }
}

#[tokio::test]
async fn allow_listed_files_are_fetched_without_following_links_out() {
    let artifacts = tempfile::tempdir().unwrap();
    let dir = artifacts.path();
    std::fs::write(dir.join("tool.sh"), "#!/bin/sh\necho allowed tool\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.join("shadow")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
    let mut a = with(FetcherConfig {
        allowed_paths: vec![dir.to_path_buf()],
        ..FetcherConfig::default()
    });
    let tool = format!("file://{}/tool.sh", dir.display());
    a.launch(
        "ok",
        "./tool.sh",
        json!([{"value": tool, "executable": true}]),
    );
    let end = a.end().await;
    assert_eq!(end.state, "TASK_FINISHED", "{end:?}");
    assert_eq!(a.stdout("ok"), "allowed tool\n");
    for (id, uri, cache) in [
        ("link", format!("file://{}/shadow", dir.display()), false),
        ("dirlink", format!("{}/etc/passwd", dir.display()), false),
        ("cached", format!("file://{}/shadow", dir.display()), true),
    ] {
        a.fetch_fails(id, json!([{"value": uri, "cache": cache}]), "symlink")
            .await;
        assert_eq!(left_in(&a.sandbox(id)), Vec::<String>::new());
    }
    let up = format!("file://{}/../../etc/passwd", dir.display());
    a.fetch_fails("up", json!([{"value": up}]), "--fetcher-allowed-paths")
        .await;
}

#[tokio::test]
async fn downloads_over_the_limit_fail_and_leave_nothing() {
    let files = Files::default();
    files.put("big", vec![7u8; 2 << 20]);
    let base = server(files).await;
    let mut a = with(FetcherConfig {
        max_download_bytes: 1 << 20,
        ..FetcherConfig::default()
    });
    for (id, uri, cache) in [
        ("length", format!("{base}/big"), false),
        ("chunked", format!("{base}/chunked/2097152"), false),
        ("cached", format!("{base}/chunked/2097152"), true),
    ] {
        a.fetch_fails(
            id,
            json!([{"value": uri, "cache": cache}]),
            "--fetcher-max-download-bytes",
        )
        .await;
        assert_eq!(left_in(&a.sandbox(id)), Vec::<String>::new(), "{id}");
    }
    let cache = a.dir.path().join("cache/fetcher");
    for dir in std::fs::read_dir(&cache).into_iter().flatten() {
        let dir = dir.unwrap().path();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{dir:?}");
    }
    a.launch(
        "small",
        "wc -c < 1000",
        json!([{"value": format!("{base}/chunked/1000")}]),
    );
    assert_eq!(a.end().await.state, "TASK_FINISHED");
    assert_eq!(a.stdout("small").trim(), "1000");
}

#[tokio::test]
async fn archives_that_unpack_past_the_limit_fail() {
    let zeros = vec![0u8; 8 << 20];
    let tar = tar_of(&[("zeros", 0o644, &zeros)], &[]);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("zeros", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&zeros).unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let mut xz =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(0)).unwrap();
    xz.write_all(&tar).unwrap();
    let xz = xz.finish().unwrap();
    let files = Files::default();
    files.put("bomb.tar.gz", gz(&tar));
    files.put("bomb.zip", zip);
    files.put("bomb.tar.xz", xz);
    let base = server(files.clone()).await;
    let mut a = with(FetcherConfig {
        max_extract_bytes: 1 << 20,
        ..FetcherConfig::default()
    });
    for name in ["bomb.tar.gz", "bomb.zip", "bomb.tar.xz"] {
        let small = files.files.lock().unwrap()[name].len();
        assert!(small < 1 << 20, "{name}: {small} bytes");
        a.fetch_fails(
            name,
            json!([{"value": format!("{base}/{name}")}]),
            "--fetcher-max-extract-bytes",
        )
        .await;
        // The archive stays (as Mesos keeps it); the cut-off file does not.
        assert_eq!(left_in(&a.sandbox(name)), [name], "{name}");
    }
}

#[tokio::test]
async fn extraction_drops_setuid_bits_and_refuses_escapes() {
    let script = b"#!/bin/sh\necho ok\n";
    let files = Files::default();
    files.put(
        "modes.tgz",
        gz(&tar_of(
            &[("suid", 0o4755, script), ("sgid", 0o2755, script)],
            &[],
        )),
    );
    files.put("up.tgz", gz(&tar_of(&[("../escape", 0o644, b"x")], &[])));
    files.put(
        "abs.tgz",
        gz(&tar_of(&[("/tmp/keel-fetcher-escape", 0o644, b"x")], &[])),
    );
    files.put("link.tgz", gz(&tar_of(&[], &[("etc", "/etc")])));
    files.put("uplink.tgz", gz(&tar_of(&[], &[("up", "../../..")])));
    let base = server(files).await;
    let mut a = with(FetcherConfig::default());
    a.launch(
        "modes",
        "stat -c %a suid sgid",
        json!([{"value": format!("{base}/modes.tgz")}]),
    );
    assert_eq!(a.end().await.state, "TASK_FINISHED");
    assert_eq!(a.stdout("modes"), "755\n755\n");
    for (id, why) in [
        ("up", "'..'"),
        ("abs", "absolute"),
        ("link", "pointing outside"),
        ("uplink", "pointing outside"),
    ] {
        let uri = format!("{base}/{id}.tgz");
        a.fetch_fails(id, json!([{"value": uri}]), why).await;
        let run = a.sandbox(id);
        assert!(!run.join("../escape").exists() && !run.join("etc").exists());
        assert!(!run.join("up").exists());
    }
    assert!(!Path::new("/tmp/keel-fetcher-escape").exists());
}
