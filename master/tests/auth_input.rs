//! Tokens end to end (create, use, expire, revoke), and bad input: files
//! the master refuses to start with (naming the file and the problem),
//! malformed `Authorization` headers and oversized tokens (401 with a
//! reason, the master serving on).

mod support;

use std::process::Command;
use std::time::Duration;

use keel_api::keel::{CreateToken, TokenKind};
use keel_client::Credentials;
use support::auth::*;
use support::*;

fn create(
    m: &Master,
    kind: TokenKind,
    principal: Option<&str>,
    ttl: u64,
    uses: Option<u32>,
) -> String {
    let request = CreateToken {
        kind,
        principal: principal.map(str::to_string),
        ttl_seconds: Some(ttl),
        uses,
    };
    client(m.port, creds(OPS))
        .create_token(&request)
        .expect("token")
        .token
}

fn flags_as(m: &Master, token: &str) -> Reply {
    let header = format!("Bearer {token}");
    operator(m.port, As::Header(&header), r#"{"type": "GET_FLAGS"}"#)
}

#[test]
fn bearer_tokens_are_created_used_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    // A bearer token authenticates as its principal, whose ACLs apply.
    let ops = create(&m, TokenKind::Bearer, Some("ops"), 3600, None);
    assert!(ops.starts_with("keel1."), "{ops}");
    assert_eq!(flags_as(&m, &ops).0, 200);
    let as_token = client(m.port, Some(Credentials::bearer(&ops)));
    assert!(!as_token.get_flags().unwrap().flags.is_empty());
    let fw = create(&m, TokenKind::Bearer, Some("fw"), 3600, None);
    let refused = flags_as(&m, &fw);
    assert_eq!(refused.0, 403, "{refused:?}");
    assert!(
        refused
            .2
            .contains("principal 'fw' is not authorized to view the flags")
    );

    // Listed without secrets; only ops may manage them.
    let list = client(m.port, creds(OPS)).tokens().unwrap();
    assert_eq!(list.tokens.len(), 2);
    let listed = serde_json::to_string(&list).unwrap();
    assert!(
        !listed.contains(ops.rsplit('.').next().unwrap()),
        "{listed}"
    );
    assert!(client(m.port, creds(FW)).tokens().is_err());

    // Revoked: 401.
    let id = ops.split('.').nth(1).unwrap();
    let left = client(m.port, creds(OPS)).revoke_token(id).unwrap();
    assert_eq!(left.tokens.len(), 1);
    let revoked = flags_as(&m, &ops);
    assert_eq!(revoked.0, 401, "{revoked:?}");
    assert_eq!(revoked.2, format!("unknown token {id}"));

    // Expired: 401.
    let short = create(&m, TokenKind::Bearer, Some("ops"), 1, None);
    assert_eq!(flags_as(&m, &short).0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let expired = flags_as(&m, &short);
    assert_eq!(expired.0, 401, "{expired:?}");
    assert!(expired.2.ends_with("has expired"), "{}", expired.2);

    // A join token admits agents, nothing else.
    let join = create(&m, TokenKind::Join, None, 3600, Some(2));
    let wrong_kind = flags_as(&m, &join);
    assert_eq!(wrong_kind.0, 401);
    assert!(wrong_kind.2.contains("is a join token"), "{}", wrong_kind.2);
    let joins = client(m.port, creds(OPS)).tokens().unwrap();
    let listed = joins
        .tokens
        .iter()
        .find(|t| t.kind == TokenKind::Join)
        .unwrap();
    assert_eq!(
        (listed.principal.as_str(), listed.uses_left),
        ("keel-agent", Some(2))
    );
}

#[test]
fn malformed_authorization_is_401_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());
    let long_token = format!("Bearer keel1.{}", "a".repeat(400));
    let huge = format!("Basic {}", "A".repeat(5000));
    for (header, reason) in [
        ("Basic", "Basic without credentials"),
        ("Basic !!notbase64", "not base64"),
        ("Basic Zm9v", "lack the ':'"),
        ("Bearer", "Bearer without a token"),
        ("Bearer keel1.nope.nope", "malformed token"),
        (long_token.as_str(), "token longer than 256 bytes"),
        (huge.as_str(), "longer than 4096 bytes"),
        (
            "Negotiate abc",
            "unsupported authorization scheme 'Negotiate'",
        ),
    ] {
        let reply = operator(m.port, As::Header(header), r#"{"type": "GET_HEALTH"}"#);
        assert_eq!(reply.0, 401, "{header}: {reply:?}");
        assert!(reply.2.contains(reason), "{header}: {}", reply.2);
    }
    // Still serving.
    let ok = operator(m.port, As::Basic(OPS), r#"{"type": "GET_HEALTH"}"#);
    assert_eq!(ok.0, 200, "{ok:?}");
}

/// Starts a master with `flags`; its exit status and stderr.
fn refused_start(dir: &std::path::Path, flags: &[&str]) -> String {
    let out = run_output(
        Command::new(bin("keel-master"))
            .args(["--ip", "127.0.0.1", "--port", &free_port().to_string()])
            .arg("--work-dir")
            .arg(dir.join("master"))
            .args(flags)
            .env("KEEL_LOG_STDERR", "1"),
    );
    assert!(!out.status.success(), "started with {flags:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unusable_files_stop_the_master_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let missing = dir.path().join("missing.json").display().to_string();
    let big = vec![b' '; (1 << 20) + 1];
    for (flag, path, reason) in [
        (
            "--credentials",
            file(
                "creds-bad.json",
                b"{\"credentials\": [{\"principal\": \"a\"}]}",
            ),
            "missing field `secret`",
        ),
        (
            "--credentials",
            file("creds-lines", b"a b c\n"),
            "line 1: expected 'principal secret'",
        ),
        (
            "--credentials",
            file("creds-big", &big),
            "larger than 1048576 bytes",
        ),
        (
            "--credentials",
            missing.clone(),
            "cannot read credentials file",
        ),
        (
            "--acls",
            file("acls-typo.json", b"{\"register_framework\": []}"),
            "unknown ACL 'register_framework'",
        ),
        (
            "--acls",
            file(
                "acls-bad.json",
                b"{\"run_tasks\": [{\"principals\": {\"type\": \"ANY\"}}]}",
            ),
            "run_tasks[0]: 'users' is required",
        ),
        (
            "--acls",
            file("acls-big.json", &big),
            "larger than 1048576 bytes",
        ),
        ("--acls", missing, "cannot read ACL file"),
    ] {
        let stderr = refused_start(dir.path(), &[flag, &path]);
        assert!(
            stderr.contains(&path) && stderr.contains(reason),
            "{flag} {path}: {stderr}"
        );
    }
}
