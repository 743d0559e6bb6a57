//! The web UI behind authentication: a browser without credentials gets a
//! page pointing at the login form; `/ui/login?token=` stores a bearer
//! token in the `keel_token` cookie, which the UI's GETs accept and
//! nothing else does; the token's principal's ACLs apply.

mod support;

use keel_api::keel::{CreateToken, TokenKind};
use support::auth::*;
use support::*;

fn token(m: &Master, principal: &str) -> String {
    let request = CreateToken {
        kind: TokenKind::Bearer,
        principal: Some(principal.to_string()),
        ttl_seconds: Some(3600),
        uses: None,
    };
    client(m.port, creds(OPS))
        .create_token(&request)
        .expect("token")
        .token
}

fn get(m: &Master, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie.map(|t| format!("keel_token={t}"));
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
    http(m.port, "GET", path, &headers, b"").expect("request")
}

#[test]
fn a_browser_logs_in_with_a_token_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let m = secured_master(dir.path());

    // No credentials: 401, as a page that leads to the login form.
    let (status, _, body) = get(&m, "/", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("href=\"/ui/login\""), "{body}");
    let (status, _, body) = get(&m, "/ui/login", None);
    assert_eq!(status, 200);
    assert!(body.contains("name=\"token\""), "{body}");

    // Logging in sets the cookie and goes to the overview.
    let viewer = token(&m, VIEWER.0);
    let reply = get(&m, &format!("/ui/login?token={viewer}"), None);
    assert_eq!(reply.0, 303, "{reply:?}");
    let cookie = header_values(&reply, "set-cookie").join("; ");
    assert!(
        cookie.starts_with(&format!("keel_token={viewer};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(header_values(&reply, "location"), ["/"]);
    let (status, _, body) = get(&m, "/", Some(&viewer));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<h1>Overview</h1>"), "{body}");
    let (status, _, body) = get(&m, "/ui/agents", Some(&viewer));
    assert_eq!(status, 200, "{body}");

    // A principal without view_agents sees the frameworks, not the agents.
    let fw = token(&m, FW.0);
    assert_eq!(get(&m, "/ui/frameworks", Some(&fw)).0, 200);
    let (status, _, body) = get(&m, "/ui/agents", Some(&fw));
    assert_eq!(status, 403, "{body}");

    // A wrong token is refused; a malformed one is not even stored.
    assert_eq!(get(&m, "/", Some("keel1.nope.nope")).0, 401);
    assert_eq!(get(&m, "/ui/login?token=a%3Bb", None).0, 400);

    // The cookie is for the UI's reads only: the APIs want a header.
    assert_eq!(get(&m, "/master/state", Some(&viewer)).0, 401);
    let cookie = format!("keel_token={viewer}");
    let headers = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = http(
        m.port,
        "POST",
        "/api/v1",
        &headers,
        br#"{"type": "GET_FLAGS"}"#,
    )
    .unwrap();
    assert_eq!(status, 401, "{body}");
}
