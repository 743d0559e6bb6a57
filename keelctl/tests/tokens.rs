//! keelctl against a master that requires authentication: credentials
//! from the environment, `tokens create` printing the token alone, the
//! token used as `KEEL_TOKEN`, listed, revoked.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{bin, free_port, spawn, text};

fn keelctl(master: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    support::keelctl_env(master, env, args)
}

#[test]
fn tokens_are_created_used_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, "ops ops-secret\n").unwrap();
    let port = free_port();
    let master = format!("127.0.0.1:{port}");
    let _m = spawn(
        Command::new(bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .arg("--work-dir")
            .arg(dir.path().join("master"))
            .arg("--credentials")
            .arg(&creds),
        dir.path().join("master.log"),
    );
    let ops = [("KEEL_PRINCIPAL", "ops"), ("KEEL_SECRET", "ops-secret")];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !keelctl(&master, &ops, &["masters"]).status.success() {
        assert!(Instant::now() < deadline, "the master never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    let anonymous = keelctl(&master, &[], &["frameworks"]);
    assert!(!anonymous.status.success());
    assert!(text(&anonymous).contains("401"), "{}", text(&anonymous));
    let flags = keelctl(
        &master,
        &[],
        &["--principal", "ops", "--secret", "ops-secret", "frameworks"],
    );
    assert!(flags.status.success(), "{}", text(&flags));

    let created = keelctl(
        &master,
        &ops,
        &[
            "tokens",
            "create",
            "--bearer",
            "--principal",
            "robot",
            "--ttl",
            "1h",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let stdout = String::from_utf8(created.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert!(
        token.starts_with("keel1.") && !token.contains('\n'),
        "{stdout:?}"
    );

    let as_robot = keelctl(
        &master,
        &[("KEEL_TOKEN", token)],
        &["frameworks", "-o", "json"],
    );
    assert!(as_robot.status.success(), "{}", text(&as_robot));

    let join = keelctl(&master, &ops, &["tokens", "create", "--uses", "2"]);
    assert!(join.status.success(), "{}", text(&join));
    let list = keelctl(&master, &ops, &["tokens", "list"]);
    let table = text(&list);
    let id = token.split('.').nth(1).unwrap();
    assert!(
        table.contains(id) && table.contains("robot") && table.contains("bearer"),
        "{table}"
    );
    assert!(
        table.contains("keel-agent") && table.contains("join"),
        "{table}"
    );
    assert!(
        !table.contains(token.rsplit('.').next().unwrap()),
        "no secrets: {table}"
    );

    let revoked = keelctl(&master, &ops, &["tokens", "revoke", id]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    let refused = keelctl(&master, &[("KEEL_TOKEN", token)], &["frameworks"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("unknown token"),
        "{}",
        text(&refused)
    );

    let both = keelctl(
        &master,
        &[("KEEL_TOKEN", token), ops[0], ops[1]],
        &["frameworks"],
    );
    assert!(text(&both).contains("not both"), "{}", text(&both));
}
