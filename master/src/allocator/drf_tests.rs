//! Scenario tests of the DRF policy (fairness, weights, quota, hierarchy),
//! plus the conformance suite run against it.

use keel_api::resources::Resources;

use super::conformance::{self, check_cycle, framework, res};
use super::{Allocation, Allocator, AllocatorError, DrfAllocator, Quota};

fn cluster(agents: usize, each: &str) -> DrfAllocator {
    let mut a = DrfAllocator::new();
    for i in 0..agents {
        a.add_agent(&format!("a{i:03}"), res(each), &[]);
    }
    a
}

fn cycle(a: &mut DrfAllocator, now: f64) -> Vec<Allocation> {
    let out = a.allocate(now);
    check_cycle(&out);
    out
}

/// cpus offered to each framework, by framework id.
fn cpus_by_framework(out: &[Allocation], id: &str) -> f64 {
    out.iter()
        .filter(|o| o.framework_id == id)
        .map(|o| o.resources.scalar("cpus"))
        .sum()
}

/// Each framework launches one `task` per offer it fits in and declines
/// the rest (no filter). Returns how many tasks were launched.
fn launch_one_each(a: &mut DrfAllocator, out: &[Allocation], task: &Resources, now: f64) -> usize {
    let mut launched = 0;
    for o in out {
        let back = match o.resources.checked_sub(task) {
            Some(rest) => {
                launched += 1;
                rest
            }
            None => o.resources.clone(),
        };
        a.recover(&o.framework_id, &o.agent_id, &o.role, &back, None, now);
    }
    launched
}

fn allocated(a: &DrfAllocator, role: &str) -> Resources {
    a.role_summary()
        .into_iter()
        .find(|r| r.role == role)
        .map(|r| r.allocated)
        .unwrap_or_default()
}

#[test]
fn conformance_suite() {
    conformance::run_all(&|| Box::new(DrfAllocator::new()));
}

#[test]
fn weighted_roles_converge_to_their_weights() {
    let mut a = cluster(40, "cpus:4;mem:4096");
    a.set_weight("light", 1.0).unwrap();
    a.set_weight("heavy", 3.0).unwrap();
    a.add_framework(framework("f-light", &["light"]), 0.0);
    a.add_framework(framework("f-heavy", &["heavy"]), 0.0);
    let task = res("cpus:1;mem:1024");
    let mut tasks = 0;
    for t in 0..200 {
        let out = cycle(&mut a, t as f64);
        let launched = launch_one_each(&mut a, &out, &task, t as f64);
        tasks += launched;
        if launched == 0 {
            break;
        }
    }
    assert_eq!(tasks, 160, "the cluster fills up");
    let light = allocated(&a, "light").scalar("cpus") / 160.0;
    let heavy = allocated(&a, "heavy").scalar("cpus") / 160.0;
    assert_eq!(light + heavy, 1.0);
    let ratio = heavy / light;
    assert!(
        (2.9..=3.1).contains(&ratio),
        "dominant shares {light} : {heavy}"
    );
}

#[test]
fn shares_are_fair_at_every_level_of_the_role_tree() {
    let mut a = cluster(40, "cpus:1;mem:1024");
    for (id, role) in [("web", "eng/web"), ("db", "eng/db"), ("ops", "ops")] {
        a.add_framework(framework(id, &[role]), 0.0);
    }
    let out = cycle(&mut a, 0.0);
    assert_eq!(out.len(), 40);
    let got: Vec<f64> = ["ops", "web", "db"]
        .iter()
        .map(|id| cpus_by_framework(&out, id))
        .collect();
    assert_eq!(got, [20.0, 10.0, 10.0]);

    // A weight inside eng splits eng's half 3:1.
    let mut a = cluster(40, "cpus:1;mem:1024");
    a.set_weight("eng/web", 3.0).unwrap();
    for (id, role) in [("web", "eng/web"), ("db", "eng/db"), ("ops", "ops")] {
        a.add_framework(framework(id, &[role]), 0.0);
    }
    let out = cycle(&mut a, 0.0);
    let got: Vec<f64> = ["ops", "web", "db"]
        .iter()
        .map(|id| cpus_by_framework(&out, id))
        .collect();
    assert_eq!(got, [20.0, 15.0, 5.0]);
}

#[test]
fn frameworks_in_a_role_share_by_drf_with_ties_by_id() {
    let mut a = cluster(4, "cpus:1;mem:1024");
    a.add_framework(framework("fw-b", &["web"]), 0.0);
    a.add_framework(framework("fw-a", &["web"]), 0.0);
    let order: Vec<(String, String)> = cycle(&mut a, 0.0)
        .into_iter()
        .map(|o| (o.agent_id, o.framework_id))
        .collect();
    let want = [
        ("a000", "fw-a"),
        ("a001", "fw-b"),
        ("a002", "fw-a"),
        ("a003", "fw-b"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect();
    assert_eq!(order, want);
}

#[test]
fn quota_guarantee_is_met_under_contention() {
    let mut a = cluster(20, "cpus:1;mem:1024");
    // Without quota the greedy role would win every agent.
    a.set_weight("greedy", 1000.0).unwrap();
    a.add_framework(framework("greedy", &["greedy"]), 0.0);
    let out = cycle(&mut a, 0.0);
    assert_eq!(cpus_by_framework(&out, "greedy"), 20.0);

    let guarantee = res("cpus:5;mem:5120");
    let quota = Quota {
        guarantee,
        limit: None,
    };
    a.set_quota("q", Some(quota)).unwrap();
    a.add_framework(framework("q", &["q"]), 1.0);
    // Greedy's tasks end one by one; it wants everything back.
    let mut winners = Vec::new();
    for (t, o) in out.iter().enumerate() {
        let now = 2.0 + t as f64;
        a.recover("greedy", &o.agent_id, "greedy", &o.resources, None, now);
        for got in cycle(&mut a, now) {
            winners.push(got.framework_id);
        }
    }
    assert_eq!(winners.len(), 20);
    assert!(winners[..5].iter().all(|w| w == "q"), "{winners:?}");
    assert!(winners[5..].iter().all(|w| w == "greedy"), "{winners:?}");
    assert_eq!(allocated(&a, "q"), res("cpus:5;mem:5120"));
}

#[test]
fn headroom_is_held_back_for_unmet_guarantees() {
    let mut a = cluster(10, "cpus:1;mem:1024");
    let quota = Quota {
        guarantee: res("cpus:3"),
        limit: None,
    };
    a.set_quota("q", Some(quota)).unwrap();
    let mut spec = framework("q", &["q"]);
    spec.suppressed_roles.insert("q".into());
    a.add_framework(spec, 0.0);
    a.add_framework(framework("other", &["other"]), 0.0);
    let out = cycle(&mut a, 0.0);
    // Three agents' cpus are held back; their memory alone is offerable.
    assert_eq!(cpus_by_framework(&out, "other"), 7.0);
    assert_eq!(out.len(), 10);
    a.revive("q", &[]);
    let out = cycle(&mut a, 1.0);
    assert_eq!(cpus_by_framework(&out, "q"), 3.0);
}

#[test]
fn quota_limit_chops_an_agent_and_the_rest_goes_on() {
    let mut a = cluster(1, "cpus:4;mem:4096;ports:[31000-31010]");
    let quota = Quota {
        guarantee: Resources::new(),
        limit: Some(res("cpus:1.5")),
    };
    a.set_quota("capped", Some(quota)).unwrap();
    a.set_weight("other", 0.001).unwrap();
    a.add_framework(framework("capped", &["capped"]), 0.0);
    a.add_framework(framework("other", &["other"]), 0.0);
    let out = cycle(&mut a, 0.0);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].framework_id, "capped");
    assert_eq!(
        out[0].resources,
        res("cpus:1.5;mem:4096;ports:[31000-31010]")
    );
    assert_eq!(out[1].framework_id, "other");
    assert_eq!(out[1].resources, res("cpus:2.5"));
}

#[test]
fn reservations_go_to_sub_roles_but_not_up() {
    let mut a = cluster(0, "");
    a.add_agent("a1", res("cpus(eng/web):2;mem(eng/web):512"), &[]);
    a.add_framework(framework("eng", &["eng"]), 0.0);
    assert_eq!(cycle(&mut a, 0.0), []);
    a.add_framework(framework("web", &["eng/web/blue"]), 0.0);
    let out = cycle(&mut a, 1.0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (&*out[0].framework_id, &*out[0].role),
        ("web", "eng/web/blue")
    );
}

#[test]
fn offer_operations_convert_allocations() {
    let mut a = cluster(1, "cpus:2;mem:1024");
    a.add_framework(framework("web", &["web"]), 0.0);
    let out = cycle(&mut a, 0.0);
    // ACCEPT with RESERVE of one cpu, the rest declined.
    a.update_allocation("web", "a000", "web", &res("cpus:1"), &res("cpus(web):1"));
    let held = allocated(&a, "web");
    assert_eq!(held.scalar("cpus"), 2.0);
    assert!(held.contains(&res("cpus(web):1")), "{held:?}");
    let back = out[0].resources.checked_sub(&res("cpus:1")).unwrap();
    a.recover("web", "a000", "web", &back, None, 1.0);
    a.recover("web", "a000", "web", &res("cpus(web):1"), None, 1.0);
    a.add_framework(framework("ops", &["ops"]), 1.0);
    a.suppress("web", &[]);
    let out = cycle(&mut a, 1.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resources, res("cpus:1;mem:1024"));
    let web = a
        .role_summary()
        .into_iter()
        .find(|r| r.role == "web")
        .unwrap();
    assert_eq!(web.reserved, res("cpus(web):1"));
}

#[test]
fn role_summary_reports_weights_quota_and_use() {
    let mut a = cluster(2, "cpus:2;mem:1024");
    a.update_agent_total("a001", res("cpus:1;cpus(eng/db):1;mem:1024"));
    a.set_weight("eng", 2.0).unwrap();
    let quota = Quota {
        guarantee: res("cpus:1"),
        limit: Some(res("cpus:10;mem:4096")),
    };
    a.set_quota("eng", Some(quota.clone())).unwrap();
    a.add_framework(framework("web2", &["eng/web"]), 0.0);
    a.add_framework(framework("web1", &["eng/web"]), 0.0);
    cycle(&mut a, 0.0);
    let summary = a.role_summary();
    let names: Vec<&str> = summary.iter().map(|r| &*r.role).collect();
    assert_eq!(names, ["eng", "eng/db", "eng/web"]);
    let eng = &summary[0];
    assert_eq!((eng.weight, eng.quota.as_ref()), (2.0, Some(&quota)));
    assert_eq!(eng.consumed, res("cpus:4;mem:2048"));
    assert_eq!(eng.allocated, Resources::new());
    assert_eq!(summary[1].reserved, res("cpus(eng/db):1"));
    assert_eq!(summary[2].frameworks, ["web1", "web2"]);
    assert_eq!(summary[2].allocated.scalar("cpus"), 3.0);
}

#[test]
fn invalid_weights_and_quotas_are_rejected() {
    let mut a = DrfAllocator::new();
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            a.set_weight("r", w),
            Err(AllocatorError::InvalidWeight { .. })
        ));
    }
    let bad = |guarantee: &str, limit: Option<&str>| Quota {
        guarantee: res(guarantee),
        limit: limit.map(res),
    };
    let err = a
        .set_quota("r", Some(bad("ports:[1-2]", None)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid quota for role r: ports is not one of cpus, mem, disk, gpus"
    );
    let err = a
        .set_quota("r", Some(bad("cpus:2", Some("cpus:1"))))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cpus guarantee is above its limit")
    );
    assert_eq!(a.set_quota("r", None), Ok(()));
    assert_eq!(a.role_summary(), []);
}

#[test]
fn the_policy_is_pluggable_by_name() {
    assert_eq!(super::create("drf").map(|a| a.name()), Some("drf"));
    assert!(super::create("random").is_none());
}

#[test]
fn a_filter_covers_only_what_was_declined() {
    let mut a = cluster(1, "cpus:4;mem:4096");
    a.add_framework(framework("f1", &["web"]), 0.0);
    let out = cycle(&mut a, 0.0);
    // Launch on half, decline the other half for 60 s.
    a.recover(
        "f1",
        "a000",
        "web",
        &res("cpus:2;mem:2048"),
        Some(60.0),
        0.0,
    );
    assert_eq!(cycle(&mut a, 1.0), []);
    // Another filter expiring sooner does not end the first one early.
    a.add_agent("a001", res("cpus:1;mem:128"), &[]);
    let other = cycle(&mut a, 1.0);
    recover_all_with(&mut a, &other, Some(1.0), 1.0);
    assert_eq!(cycle(&mut a, 2.5).len(), 1, "the 1 s filter ended");
    assert_eq!(a.allocate(2.5), []);
    // The task ends: more than was declined is free, so f1 is offered it.
    a.recover("f1", "a000", "web", &out[0].resources, None, 3.0);
    let out = cycle(&mut a, 3.0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resources, res("cpus:4;mem:4096"));
}

fn recover_all_with(a: &mut DrfAllocator, out: &[Allocation], refuse: Option<f64>, now: f64) {
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
