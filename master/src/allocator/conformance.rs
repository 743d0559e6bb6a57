//! The conformance suite every [`Allocator`] must pass, whatever its
//! fairness policy: offers only hand out free resources, once; reservations
//! go only to their role; filters, suppression, capabilities, activation and
//! quota limits are honoured; removals give resources back. Each check takes
//! a fresh allocator (with the default minimum allocatable resources) and
//! panics on failure.
//!
//! ```ignore
//! keel_master::allocator::conformance::run_all(&|| Box::new(MyAllocator::new()));
//! ```

use std::collections::BTreeSet;

use keel_api::resources::{Resources, UNRESERVED};

use super::{Allocation, Allocator, FrameworkSpec, Quota};

/// One check: takes a fresh allocator, panics on failure.
pub type Check = fn(&mut dyn Allocator);

/// Runs every check, each on a new allocator from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Allocator>) {
    let checks: &[(&str, Check)] = &[
        ("offers_free_resources_once", offers_free_resources_once),
        (
            "recovered_resources_are_offered_again",
            recovered_resources_are_offered_again,
        ),
        (
            "filters_hold_until_refuse_seconds",
            filters_hold_until_refuse_seconds,
        ),
        (
            "reservations_go_only_to_their_role",
            reservations_go_only_to_their_role,
        ),
        ("suppress_and_revive", suppress_and_revive),
        (
            "inactive_agents_and_frameworks_get_nothing",
            inactive_agents_and_frameworks_get_nothing,
        ),
        (
            "gpu_agents_only_to_gpu_frameworks",
            gpu_agents_only_to_gpu_frameworks,
        ),
        ("small_chunks_are_not_offered", small_chunks_are_not_offered),
        (
            "multi_role_offers_carry_their_role",
            multi_role_offers_carry_their_role,
        ),
        ("removals_give_resources_back", removals_give_resources_back),
        (
            "used_resources_are_not_offered",
            used_resources_are_not_offered,
        ),
        (
            "quota_limits_are_never_exceeded",
            quota_limits_are_never_exceeded,
        ),
    ];
    for (name, check) in checks {
        let mut allocator = make();
        eprintln!("allocator conformance ({}): {name}", allocator.name());
        check(allocator.as_mut());
    }
}

/// `text` in the agent `--resources` form; panics if invalid.
pub fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A framework spec in `roles`.
pub fn framework(id: &str, roles: &[&str]) -> FrameworkSpec {
    FrameworkSpec {
        id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        multi_role: roles.len() > 1,
        ..Default::default()
    }
}

/// Checks what any cycle's allocations must satisfy: non-empty, at most one
/// per (framework, agent, role), resources allocatable to the role.
pub fn check_cycle(allocations: &[Allocation]) {
    let mut seen = BTreeSet::new();
    for a in allocations {
        assert!(!a.resources.is_empty(), "empty allocation {a:?}");
        let key = (&a.framework_id, &a.agent_id, &a.role);
        assert!(seen.insert(key), "two allocations for {key:?}");
        for r in &a.resources {
            let ok = r.role == UNRESERVED
                || r.role == a.role
                || a.role.starts_with(&format!("{}/", r.role));
            assert!(
                ok,
                "{} reserved to {} offered in role {}",
                r.name, r.role, a.role
            );
        }
    }
}

/// One cycle, checked.
fn cycle(a: &mut dyn Allocator, now: f64) -> Vec<Allocation> {
    let out = a.allocate(now);
    check_cycle(&out);
    out
}

/// The sum of what `framework_id` got.
fn sum_for(out: &[Allocation], framework_id: &str) -> Resources {
    let mut sum = Resources::new();
    for a in out.iter().filter(|a| a.framework_id == framework_id) {
        sum.add(&a.resources);
    }
    sum
}

fn recover_all(a: &mut dyn Allocator, out: &[Allocation], refuse: Option<f64>, now: f64) {
    for o in out {
        a.recover(
            &o.framework_id,
            &o.agent_id,
            &o.role,
            &o.resources,
            refuse,
            now,
        );
    }
}

pub fn offers_free_resources_once(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024;ports:[31000-32000]"), &[]);
    a.add_agent("a2", res("cpus:1;mem:512"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    let out = cycle(a, 0.0);
    assert_eq!(out.len(), 2, "{out:?}");
    let on = |agent: &str| out.iter().find(|o| o.agent_id == agent).unwrap();
    assert_eq!(
        on("a1").resources,
        res("cpus:2;mem:1024;ports:[31000-32000]")
    );
    assert_eq!(on("a2").resources, res("cpus:1;mem:512"));
    assert!(
        out.iter()
            .all(|o| o.framework_id == "f1" && o.role == "web")
    );
    assert_eq!(cycle(a, 1.0), [], "offered resources count as allocated");
}

pub fn recovered_resources_are_offered_again(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    let out = cycle(a, 0.0);
    // Launch a task on half, decline the rest.
    a.recover("f1", "a1", "web", &res("cpus:1;mem:512"), None, 1.0);
    let again = cycle(a, 1.0);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].resources, res("cpus:1;mem:512"));
    recover_all(a, &again, None, 2.0);
    a.recover("f1", "a1", "web", &out[0].resources, None, 2.0);
    assert_eq!(sum_for(&cycle(a, 2.0), "f1"), res("cpus:2;mem:1024"));
}

pub fn filters_hold_until_refuse_seconds(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    let out = cycle(a, 0.0);
    recover_all(a, &out, Some(5.0), 0.0);
    assert_eq!(cycle(a, 1.0), [], "declined resources re-offered too soon");
    assert_eq!(cycle(a, 4.9), []);
    // Another framework is not filtered.
    a.add_framework(framework("f2", &["web"]), 4.9);
    let other = cycle(a, 4.9);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].framework_id, "f2");
    recover_all(a, &other, None, 4.9);
    a.remove_framework("f2");
    let back = cycle(a, 5.0);
    assert_eq!(back.len(), 1, "not re-offered after refuse_seconds");
    assert_eq!(back[0].framework_id, "f1");
    // A filter without seconds (or zero) is none.
    recover_all(a, &back, Some(0.0), 6.0);
    assert_eq!(cycle(a, 6.0).len(), 1);
}

pub fn reservations_go_only_to_their_role(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus(eng):2;mem(eng):512;cpus:1;mem:256"), &[]);
    a.add_agent("a2", res("cpus(eng):1;mem(eng):256"), &[]);
    a.add_framework(framework("ops", &["ops"]), 0.0);
    let out = cycle(a, 0.0);
    assert_eq!(sum_for(&out, "ops"), res("cpus:1;mem:256"));
    a.add_framework(framework("eng", &["eng/web"]), 0.0);
    let out = cycle(a, 1.0);
    assert_eq!(
        sum_for(&out, "eng"),
        res("cpus(eng):3;mem(eng):768"),
        "reservations to eng go to eng/web"
    );
    recover_all(a, &out, None, 2.0);
    // A dynamic reservation: a1's unreserved part is reserved to ops/x, out
    // of reach of ops.
    a.recover("ops", "a1", "ops", &res("cpus:1;mem:256"), None, 2.0);
    a.update_agent_total(
        "a1",
        res("cpus(eng):2;mem(eng):512;cpus(ops/x):1;mem(ops/x):256"),
    );
    let out = cycle(a, 3.0);
    assert_eq!(sum_for(&out, "ops"), Resources::new(), "{out:?}");
    assert_eq!(sum_for(&out, "eng"), res("cpus(eng):3;mem(eng):768"));
}

pub fn suppress_and_revive(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024"), &[]);
    let mut spec = framework("f1", &["web"]);
    spec.suppressed_roles.insert("web".into());
    a.add_framework(spec, 0.0);
    assert_eq!(cycle(a, 0.0), [], "suppressed at subscription");
    a.revive("f1", &[]);
    let out = cycle(a, 1.0);
    assert_eq!(out.len(), 1);
    recover_all(a, &out, Some(100.0), 1.0);
    a.suppress("f1", &["web".into()]);
    assert_eq!(cycle(a, 2.0), []);
    a.revive("f1", &["web".into()]);
    assert_eq!(cycle(a, 3.0).len(), 1, "revive clears filters");
}

pub fn inactive_agents_and_frameworks_get_nothing(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    a.deactivate_agent("a1");
    assert_eq!(cycle(a, 0.0), []);
    a.activate_agent("a1");
    a.deactivate_framework("f1");
    assert_eq!(cycle(a, 1.0), []);
    a.activate_framework("f1");
    assert_eq!(cycle(a, 2.0).len(), 1);
}

pub fn gpu_agents_only_to_gpu_frameworks(a: &mut dyn Allocator) {
    a.add_agent("gpu", res("cpus:8;mem:4096;gpus:2"), &[]);
    a.add_agent("plain", res("cpus:1;mem:512"), &[]);
    a.add_framework(framework("cpu-only", &["ml"]), 0.0);
    let out = cycle(a, 0.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].agent_id, "plain");
    let mut spec = framework("gpu-fw", &["ml"]);
    spec.gpu_resources = true;
    a.add_framework(spec, 1.0);
    let out = cycle(a, 1.0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (&*out[0].framework_id, &*out[0].agent_id),
        ("gpu-fw", "gpu")
    );
    assert_eq!(out[0].resources, res("cpus:8;mem:4096;gpus:2"));
}

pub fn small_chunks_are_not_offered(a: &mut dyn Allocator) {
    a.add_agent("disk-only", res("disk:1000"), &[]);
    a.add_agent("crumbs", res("cpus:0.005;mem:31"), &[]);
    a.add_agent("mem-only", res("mem:32"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    let out = cycle(a, 0.0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].agent_id, "mem-only");
}

pub fn multi_role_offers_carry_their_role(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus(b):1;mem(b):256"), &[]);
    a.add_agent("a2", res("cpus(a):1;mem(a):256"), &[]);
    a.add_framework(framework("f1", &["a", "b"]), 0.0);
    let mut out: Vec<(String, String)> = cycle(a, 0.0)
        .into_iter()
        .map(|o| (o.agent_id, o.role))
        .collect();
    out.sort();
    assert_eq!(out, [("a1".into(), "b".into()), ("a2".into(), "a".into())]);
    // Suppressing one role leaves the other.
    a.add_agent("a3", res("cpus:1;mem:256"), &[]);
    a.suppress("f1", &["a".into()]);
    let out = cycle(a, 1.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].role, "b");
}

pub fn removals_give_resources_back(a: &mut dyn Allocator) {
    a.add_agent("a1", res("cpus:2;mem:1024"), &[]);
    a.add_agent("a2", res("cpus:2;mem:1024"), &[]);
    a.add_framework(framework("f1", &["web"]), 0.0);
    assert_eq!(cycle(a, 0.0).len(), 2);
    a.add_framework(framework("f2", &["web"]), 1.0);
    assert_eq!(cycle(a, 1.0), []);
    a.remove_framework("f1");
    a.remove_agent("a2");
    let out = cycle(a, 2.0);
    assert_eq!(out.len(), 1);
    assert_eq!((&*out[0].framework_id, &*out[0].agent_id), ("f2", "a1"));
    // Recovering on a removed agent or for a removed framework is a no-op.
    a.recover("f1", "a1", "web", &res("cpus:2"), None, 3.0);
    a.recover("f2", "a2", "web", &res("cpus:2"), None, 3.0);
    assert_eq!(cycle(a, 3.0), []);
}

pub fn used_resources_are_not_offered(a: &mut dyn Allocator) {
    let used = [("f1".to_string(), "web".to_string(), res("cpus:1;mem:512"))];
    a.add_agent("a1", res("cpus:2;mem:1024"), &used);
    a.add_framework(framework("f2", &["web"]), 0.0);
    let out = cycle(a, 0.0);
    assert_eq!(sum_for(&out, "f2"), res("cpus:1;mem:512"));
    // f1's task ends after f1 re-subscribed: its resources are free again.
    a.add_framework(framework("f1", &["web"]), 1.0);
    a.recover("f1", "a1", "web", &res("cpus:1;mem:512"), None, 1.0);
    let out = cycle(a, 1.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resources, res("cpus:1;mem:512"));
    // Tasks reported later (an agent re-registering) are not offered.
    a.add_agent("a2", res("cpus:2;mem:1024"), &[]);
    a.track_used("f2", "a2", "web", &res("cpus:1.5;mem:1000"));
    let out = cycle(a, 2.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].agent_id, "a2");
    assert_eq!(out[0].resources, res("cpus:0.5;mem:24"));
}

pub fn quota_limits_are_never_exceeded(a: &mut dyn Allocator) {
    for i in 0..5 {
        a.add_agent(&format!("a{i}"), res("cpus:1;mem:1024"), &[]);
    }
    a.add_agent("big", res("cpus:4;mem:1024"), &[]);
    let quota = Quota {
        guarantee: Resources::new(),
        limit: Some(res("cpus:2.5")),
    };
    a.set_quota("capped", Some(quota)).unwrap();
    a.add_framework(framework("f1", &["capped"]), 0.0);
    for t in 0..5 {
        let out = cycle(a, t as f64);
        let cpus = sum_for(&out, "f1").scalar("cpus");
        assert!(
            cpus <= 2.5,
            "cycle {t}: {cpus} cpus offered over a 2.5 limit"
        );
        // Keep a sliver, decline the rest: the limit still holds.
        for o in &out {
            let mut back = o.resources.clone();
            if let Some(rest) = back.checked_sub(&res("cpus:0.1")) {
                back = rest;
            }
            a.recover(&o.framework_id, &o.agent_id, &o.role, &back, None, t as f64);
        }
    }
    let cpus: f64 = a
        .role_summary()
        .iter()
        .filter(|r| r.role == "capped")
        .map(|r| r.allocated.scalar("cpus"))
        .sum();
    assert!(cpus <= 2.5);
}
