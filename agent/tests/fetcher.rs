//! The fetcher with real tasks and a local HTTP server on 127.0.0.1:
//! archives unpacked, executables run, `file://` copies, the cache, and
//! failures reported as REASON_FETCHER_FAILED.

mod support;

use std::io::Write;
use std::sync::atomic::Ordering;

use keel_agent::fetcher::FetcherConfig;
use keel_agent::isolation::{Feature, HostSupport, Isolation};
use serde_json::json;
use support::fetch::{Files, agent, server};

fn tools_tgz() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let body = b"#!/bin/sh\necho hello from the archive\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "bin/hello", &body[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[tokio::test]
async fn tasks_run_what_was_fetched() {
    let files = Files::default();
    files
        .files
        .lock()
        .unwrap()
        .insert("tools.tar.gz".into(), tools_tgz());
    files
        .files
        .lock()
        .unwrap()
        .insert("script.sh".into(), b"#!/bin/sh\necho script ran\n".to_vec());
    let base = server(files.clone()).await;
    let artifacts = tempfile::tempdir().unwrap();
    let local = artifacts.path().join("local.txt");
    std::fs::write(&local, "from a file URI\n").unwrap();
    let allowed = FetcherConfig {
        allowed_paths: vec![artifacts.path().to_path_buf()],
        ..FetcherConfig::default()
    };
    let mut a = agent(Isolation::none(), HostSupport::default(), allowed);
    let uris = json!([
        {"value": format!("{base}/tools.tar.gz")},
        {"value": format!("{base}/script.sh"), "executable": true},
        {"value": format!("file://{}", local.display()), "output_file": "conf/local.txt"},
    ]);
    a.launch(
        "t",
        "./bin/hello && ./script.sh && cat conf/local.txt",
        uris,
    );
    let end = a.end().await;
    assert_eq!(end.state, "TASK_FINISHED", "{end:?}");
    assert_eq!(
        a.stdout("t"),
        "hello from the archive\nscript ran\nfrom a file URI\n"
    );
}

#[tokio::test]
async fn cached_uris_are_fetched_once() {
    let files = Files::default();
    files
        .files
        .lock()
        .unwrap()
        .insert("tool".into(), b"#!/bin/sh\necho cached tool\n".to_vec());
    let base = server(files.clone()).await;
    let mut a = agent(
        Isolation::none(),
        HostSupport::default(),
        FetcherConfig::default(),
    );
    let uris = json!([{"value": format!("{base}/tool"), "cache": true, "executable": true}]);
    for id in ["one", "two"] {
        a.launch(id, "./tool", uris.clone());
        assert_eq!(a.end().await.state, "TASK_FINISHED");
        assert_eq!(a.stdout(id), "cached tool\n");
    }
    assert_eq!(files.hits.load(Ordering::SeqCst), 1);
    // Gone from the server: still served from the cache.
    files.files.lock().unwrap().clear();
    a.launch("three", "./tool", uris);
    assert_eq!(a.end().await.state, "TASK_FINISHED");
    assert_eq!(files.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_fetch_fails_the_task_with_the_fetcher_reason() {
    let base = server(Files::default()).await;
    let mut a = agent(
        Isolation::none(),
        HostSupport::default(),
        FetcherConfig::default(),
    );
    for (id, uri, text) in [
        ("missing", format!("{base}/nothing"), "404".to_string()),
        (
            "scheme",
            "hdfs://nn/x".to_string(),
            "unsupported URI scheme".to_string(),
        ),
        (
            "escape",
            format!("{base}/x"),
            "not a file name inside the sandbox".to_string(),
        ),
    ] {
        let mut u = json!({"value": uri});
        if id == "escape" {
            u["output_file"] = json!("../../x");
        }
        a.launch(id, "true", json!([u]));
        let end = a.end().await;
        assert_eq!(
            (end.state.as_str(), end.reason.as_str()),
            ("TASK_FAILED", "REASON_FETCHER_FAILED"),
            "{id}"
        );
        assert!(end.message.starts_with("Failed to fetch '"), "{end:?}");
        assert!(end.message.contains(&text), "{end:?}");
    }
}

#[tokio::test]
async fn fetched_binaries_run_inside_a_container() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let files = Files::default();
    files
        .files
        .lock()
        .unwrap()
        .insert("tools.tar.gz".into(), tools_tgz());
    let base = server(files).await;
    let features = [Feature::PidNs, Feature::MountNs];
    let mut a = agent(
        Isolation::Only(features.into()),
        HostSupport {
            namespaces: features.into(),
            ..HostSupport::default()
        },
        FetcherConfig::default(),
    );
    a.launch(
        "c",
        "$MESOS_SANDBOX/bin/hello; pwd",
        json!([{"value": format!("{base}/tools.tar.gz")}]),
    );
    assert_eq!(a.end().await.state, "TASK_FINISHED");
    assert_eq!(
        a.stdout("c"),
        "hello from the archive\n/mnt/mesos/sandbox\n"
    );
}
