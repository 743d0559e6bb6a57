//! [`Trust`]: who a request is, and what it may do.

use axum::http::{HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;

fn headers(auth: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(a) = auth {
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
    }
    h
}

fn basic(p: &str, s: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{p}:{s}")))
}

fn trust(acls: &str) -> Trust {
    let creds = Credentials::from_pairs(&[("fw", "s1"), ("ops", "s2")]).unwrap();
    Trust::new(Some(creds), Acls::parse(acls).unwrap(), false)
}

fn bearer_record(minted: &tokens::Minted, expires_at: Option<f64>) -> TokenRecord {
    TokenRecord {
        id: minted.id.clone(),
        kind: TokenKind::Bearer,
        principal: "robot".into(),
        secret_sha256: minted.secret_sha256.clone(),
        created_at: 0.0,
        expires_at,
        uses_left: None,
    }
}

fn no_tokens(_: &str) -> Option<TokenRecord> {
    None
}

#[test]
fn basic_credentials() {
    let t = trust("{}");
    assert!(t.required());
    let who = t
        .authenticate(&headers(Some(&basic("fw", "s1"))), None, no_tokens, 0.0)
        .unwrap();
    assert_eq!(who.name(), Some("fw"));
    assert_eq!(
        t.authenticate(&headers(Some(&basic("fw", "s2"))), None, no_tokens, 0.0),
        Err(AuthnError::BadSecret("fw".into()))
    );
    assert_eq!(
        t.authenticate(&headers(None), None, no_tokens, 0.0),
        Err(AuthnError::Missing)
    );
}

#[test]
fn an_open_master_takes_anyone_but_checks_what_is_presented() {
    let t = Trust::open();
    assert!(!t.required());
    assert_eq!(
        t.authenticate(&headers(None), None, no_tokens, 0.0),
        Ok(Caller(None))
    );
    // Credentials presented to an open master are still checked.
    assert!(matches!(
        t.authenticate(&headers(Some(&basic("fw", "s1"))), None, no_tokens, 0.0),
        Err(AuthnError::BadSecret(_))
    ));
    assert!(t.allowed(&Caller(None), Action::ManageTokens, None));
}

#[test]
fn bearer_tokens() {
    let t = trust("{}");
    let m = tokens::mint().unwrap();
    let record = bearer_record(&m, Some(100.0));
    let lookup = |id: &str| (id == record.id).then(|| record.clone());
    let h = headers(Some(&format!("Bearer {}", m.text)));
    let who = t.authenticate(&h, None, lookup, 50.0).unwrap();
    assert_eq!(who.name(), Some("robot"));
    assert_eq!(
        who.0.unwrap().method,
        Method::Bearer {
            token_id: m.id.clone()
        }
    );
    assert_eq!(
        t.authenticate(&h, None, lookup, 100.0),
        Err(AuthnError::Refused(TokenRefusal::Expired(m.id.clone())))
    );
    assert_eq!(
        t.authenticate(&h, None, no_tokens, 50.0),
        Err(AuthnError::Refused(TokenRefusal::Unknown(m.id.clone())))
    );
    let join = TokenRecord {
        kind: TokenKind::Join,
        ..record.clone()
    };
    assert!(matches!(
        t.authenticate(&h, None, |_| Some(join.clone()), 50.0),
        Err(AuthnError::Refused(TokenRefusal::WrongKind { .. }))
    ));
    let other = tokens::mint().unwrap();
    let forged = format!(
        "Bearer keel1.{}.{}",
        m.id,
        other.text.rsplit('.').next().unwrap()
    );
    assert!(matches!(
        t.authenticate(&headers(Some(&forged)), None, lookup, 50.0),
        Err(AuthnError::Refused(TokenRefusal::WrongSecret(_)))
    ));
    assert_eq!(
        t.authenticate(&headers(Some("Bearer nope")), None, lookup, 50.0),
        Err(AuthnError::Token(tokens::TokenError::Malformed))
    );
}

#[test]
fn certificates_and_their_roles() {
    let t = trust(
        r#"{"run_tasks": [{"principals": {"values": ["op-cert"]}, "users": {"type": "NONE"}}]}"#,
    );
    let cert = |role| PeerIdentity {
        name: "op-cert".into(),
        role,
        uris: Vec::new(),
    };
    let as_cert = |role| {
        t.authenticate(&headers(None), Some(&cert(role)), no_tokens, 0.0)
            .unwrap()
    };
    // The header, when there is one, decides.
    let both = t
        .authenticate(
            &headers(Some(&basic("ops", "s2"))),
            Some(&cert(Role::Admin)),
            no_tokens,
            0.0,
        )
        .unwrap();
    assert_eq!(both.name(), Some("ops"));

    let admin = as_cert(Role::Admin);
    assert!(t.allowed(&admin, Action::ManageTokens, None));
    assert!(
        t.allowed(&admin, Action::RunTask, Some("root")),
        "admin skips the ACLs"
    );
    let operator = as_cert(Role::Operator);
    assert!(t.allowed(&operator, Action::TeardownFramework, None));
    assert!(!t.allowed(&operator, Action::ManageMasters, None));
    assert!(!t.allowed(&operator, Action::ManageTokens, None));
    assert!(
        !t.allowed(&operator, Action::RunTask, Some("root")),
        "the ACLs still apply"
    );
    let reader = as_cert(Role::Reader);
    assert!(t.allowed(&reader, Action::ViewFramework, Some("u")));
    assert!(!t.allowed(&reader, Action::UpdateWeight, Some("r")));
    for role in [Role::Agent, Role::Master] {
        let c = as_cert(role);
        assert!(!t.admits(&c));
        assert!(!t.allowed(&c, Action::ViewFramework, Some("u")));
    }
    assert!(t.admits(&reader));
}

#[test]
fn refusals_name_the_action() {
    let t = trust(
        r#"{"permissive": false,
            "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["eng"]}}]}"#,
    );
    let fw = t
        .authenticate(&headers(Some(&basic("fw", "s1"))), None, no_tokens, 0.0)
        .unwrap();
    let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        t.check_each(&fw, Action::RegisterFramework, &roles(&["eng"]))
            .is_ok()
    );
    let denied = t
        .check_each(&fw, Action::RegisterFramework, &roles(&["eng", "ops"]))
        .unwrap_err();
    assert_eq!(
        denied.to_string(),
        "principal 'fw' is not authorized to register a framework with role 'ops'"
    );
    // No roles at all: `permissive` decides, as in Mesos.
    assert!(t.check_each(&fw, Action::RegisterFramework, &[]).is_err());
    assert_eq!(
        t.check(&Caller(None), Action::TeardownFramework, Some("fw"))
            .unwrap_err()
            .to_string(),
        "an unauthenticated request is not authorized to tear down frameworks of principal 'fw'"
    );
}
