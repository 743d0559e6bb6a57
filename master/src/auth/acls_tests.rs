//! ACL parsing and evaluation, with the cases of Mesos' authorizer tests.

use super::*;

fn acls(text: &str) -> Acls {
    Acls::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn no_acls_allow_everything() {
    let a = Acls::default();
    for action in Action::ALL {
        assert!(a.authorized(Some("p"), action, Some("x")));
        assert!(a.authorized(None, action, None));
    }
}

#[test]
fn the_first_matching_rule_decides() {
    let a = acls(
        r#"{"run_tasks": [
            {"principals": {"values": ["fw"]}, "users": {"values": ["alice"]}},
            {"principals": {"values": ["fw"]}, "users": {"type": "NONE"}},
            {"principals": {"type": "ANY"}, "users": {"values": ["guest"]}}
        ]}"#,
    );
    let run = |p, u| a.authorized(p, Action::RunTask, u);
    assert!(run(Some("fw"), Some("alice")));
    // The second rule matches fw with any other user, and NONE refuses it.
    assert!(!run(Some("fw"), Some("root")));
    assert!(!run(Some("fw"), Some("guest")));
    assert!(run(Some("other"), Some("guest")));
    // Nothing matches: permissive (the default).
    assert!(run(Some("other"), Some("root")));
}

#[test]
fn permissive_false_refuses_what_no_rule_matches() {
    let a = acls(
        r#"{"permissive": false,
            "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["eng"]}}]}"#,
    );
    assert!(a.authorized(Some("fw"), Action::RegisterFramework, Some("eng")));
    assert!(!a.authorized(Some("fw"), Action::RegisterFramework, Some("ops")));
    assert!(!a.authorized(Some("x"), Action::RegisterFramework, Some("eng")));
    assert!(!a.authorized(Some("fw"), Action::RunTask, Some("u")));
    assert!(!a.permissive());
}

#[test]
fn requests_without_a_principal_are_any() {
    // Mesos' match matrix: an ANY request matches only ANY or NONE rules.
    let a = acls(
        r#"{"permissive": false, "teardown_frameworks": [
            {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "framework_principals": {"values": ["fw"]}}
        ]}"#,
    );
    let teardown = |p, o| a.authorized(p, Action::TeardownFramework, o);
    assert!(teardown(Some("ops"), Some("fw")));
    assert!(teardown(Some("ops"), None));
    assert!(teardown(None, Some("fw")));
    // ANY object against a SOME rule: no match, then not permissive.
    assert!(!teardown(None, None));
    assert!(!teardown(Some("x"), Some("other")));
    let none = acls(
        r#"{"teardown_frameworks": [{"principals": {"type": "NONE"}, "framework_principals": {"type": "ANY"}}]}"#,
    );
    // A NONE subject rule matches every principal and allows none.
    assert!(!none.authorized(Some("ops"), Action::TeardownFramework, Some("fw")));
    assert!(!none.authorized(None, Action::TeardownFramework, None));
}

#[test]
fn roles_are_hierarchical() {
    let a = acls(
        r#"{"permissive": false, "register_frameworks": [
            {"principals": {"values": ["fw"]}, "roles": {"values": ["eng/%", "ops"]}},
            {"principals": {"type": "ANY"}, "roles": {"values": ["eng/secret/%"]}}
        ]}"#,
    );
    let reg = |p, r| a.authorized(Some(p), Action::RegisterFramework, Some(r));
    assert!(reg("fw", "eng/dev"));
    assert!(reg("fw", "eng/dev/team"));
    assert!(reg("fw", "ops"));
    // `eng/%` is below eng, not eng itself.
    assert!(!reg("fw", "eng"));
    assert!(!reg("fw", "engine"));
    assert!(!reg("fw", "ops/x"));
    assert!(reg("x", "eng/secret/a"));
    assert!(!reg("x", "eng/dev"));
    // Users are not hierarchical.
    let users = acls(
        r#"{"permissive": false, "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["a/%"]}}]}"#,
    );
    assert!(!users.authorized(Some("p"), Action::RunTask, Some("a/b")));
    assert!(users.authorized(Some("p"), Action::RunTask, Some("a/%")));
}

#[test]
fn keel_actions_and_mesos_only_keys() {
    let a = acls(
        r#"{"manage_tokens": [{"principals": {"values": ["admin"]}, "tokens": {"type": "ANY"}},
                              {"principals": {"type": "ANY"}, "tokens": {"type": "NONE"}}],
            "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
            "get_endpoints": []}"#,
    );
    assert!(a.authorized(Some("admin"), Action::ManageTokens, None));
    assert!(!a.authorized(Some("ops"), Action::ManageTokens, None));
    assert_eq!(a.ignored(), ["get_endpoints", "view_executors"]);
}

#[test]
fn bad_files_name_the_problem() {
    for (text, needle) in [
        ("[]", "must be a JSON object"),
        ("{", "not JSON"),
        (
            r#"{"permissive": "no"}"#,
            "'permissive' must be true or false",
        ),
        (
            r#"{"register_framework": []}"#,
            "unknown ACL 'register_framework'",
        ),
        (
            r#"{"run_tasks": {}}"#,
            "'run_tasks' must be a list of rules",
        ),
        (
            r#"{"run_tasks": [7]}"#,
            "run_tasks[0]: a rule must be an object",
        ),
        (
            r#"{"run_tasks": [{"principals": {"type": "ANY"}}]}"#,
            "run_tasks[0]: 'users' is required",
        ),
        (
            r#"{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}"#,
            "run_tasks[0]: unknown field 'roles' (expected 'principals' and 'users')",
        ),
        (
            r#"{"run_tasks": [{"principals": {"type": "ALL"}, "users": {"type": "ANY"}}]}"#,
            "'principals': 'type' must be SOME, ANY or NONE",
        ),
        (
            r#"{"run_tasks": [{"principals": {"values": [1]}, "users": {"type": "ANY"}}]}"#,
            "'values' must be strings",
        ),
        (
            r#"{"run_tasks": [{"principals": {"value": ["a"]}, "users": {"type": "ANY"}}]}"#,
            "unknown entity field 'value'",
        ),
    ] {
        let err = Acls::parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn files_are_read_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acls.json");
    std::fs::write(&path, r#"{"permissive": false}"#).unwrap();
    assert!(!Acls::load(&path).unwrap().permissive());
    let url = format!("file://{}", path.display());
    assert!(!Acls::load(Path::new(&url)).unwrap().permissive());
    std::fs::write(&path, r#"{"run_task": []}"#).unwrap();
    let err = Acls::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "ACL file {}: unknown ACL 'run_task'",
            path.display()
        )),
        "{err}"
    );
    std::fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(matches!(Acls::load(&path), Err(AclError::TooLarge { .. })));
    assert!(matches!(
        Acls::load(&dir.path().join("missing")),
        Err(AclError::Read { .. })
    ));
    let many = format!(
        r#"{{"run_tasks": [{}]}}"#,
        vec![r#"{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}"#; MAX_RULES + 1]
            .join(",")
    );
    assert!(
        Acls::parse(&many)
            .unwrap_err()
            .to_string()
            .contains("more than")
    );
}
