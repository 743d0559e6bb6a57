//! The contract every [`Replicator`] keeps, as a suite to run against each
//! (as openraft's storage `Suite` is run against every store): the local
//! log of a single master and Raft clusters of one and three masters
//! (`master/tests/replication_conformance.rs`).
//!
//! - `propose` returns the registry's verdict: an accepted command is
//!   `Ok(Ok(..))`, a refused one `Ok(Err(..))` that changes nothing, now or
//!   after a restart;
//! - what `propose` acknowledged is in `registry()` as soon as it returns,
//!   and after `barrier()`; concurrent proposals all apply, sequential ones
//!   in order;
//! - a restart (of every member) keeps every acknowledged command, and the
//!   registry goes on from there;
//! - `cluster()` names the leader, the term and the members, alike on
//!   every member; members that do not lead refuse writes and barriers and
//!   name the leader;
//! - `leadership_changed(&seen)` resolves at once when the view already
//!   differs from `seen`, and not while it stays the same;
//! - removing a master that is no member, or adding one that is no
//!   address, fails and changes nothing.
//!
//! Compiled into the library (as [`crate::allocator::conformance`]), not
//! behind `cfg(test)` or a feature: the Raft runs need the multi-master
//! harness of the integration tests, which cannot see `cfg(test)` items,
//! and a feature would have to be turned on for every `cargo test`. It
//! costs the binary nothing it does not call.
//!
//! ```ignore
//! keel_master::replication::conformance::run(|| MyHarness::new()).await;
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{ClusterView, Leadership, ProposeError, Replicator};
use crate::registry::{Applied, Command, Registry, RegistryError};

/// How long a proposal may take; the same bound the checks wait for a
/// change they expect.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long `leadership_changed` must stay pending for a steady cluster.
const STEADY: Duration = Duration::from_millis(200);

/// Starts and restarts the replicators the suite checks. Each check gets a
/// harness of its own.
pub trait Harness {
    /// Starts a cluster on empty stores and returns its leader's
    /// replicator once every member agrees who leads.
    fn start(&mut self) -> impl Future<Output = Arc<dyn Replicator>>;
    /// Stops every member (as a crash would) and starts them again on
    /// their stores; returns the leader's replicator once every member
    /// agrees who leads.
    fn restart(&mut self) -> impl Future<Output = Arc<dyn Replicator>>;
    /// The replicators of the members that do not lead (none for a single
    /// master).
    fn followers(&self) -> Vec<Arc<dyn Replicator>>;
}

/// Runs every check, each on a fresh harness from `make`; panics on the
/// first failure, naming the check (on stderr).
pub async fn run<H: Harness>(make: impl Fn() -> H) {
    eprintln!("conformance: proposals_return_the_registrys_verdict");
    proposals_return_the_registrys_verdict(&mut make()).await;
    eprintln!("conformance: proposals_apply_in_order_and_concurrently");
    proposals_apply_in_order_and_concurrently(&mut make()).await;
    eprintln!("conformance: a_restart_keeps_every_acknowledged_command");
    a_restart_keeps_every_acknowledged_command(&mut make()).await;
    eprintln!("conformance: every_member_reports_the_leader_and_the_members");
    every_member_reports_the_leader_and_the_members(&mut make()).await;
    eprintln!("conformance: members_that_do_not_lead_refuse_and_name_the_leader");
    members_that_do_not_lead_refuse_and_name_the_leader(&mut make()).await;
    eprintln!("conformance: leadership_changed_compares_with_the_view_seen");
    leadership_changed_compares_with_the_view_seen(&mut make()).await;
    eprintln!("conformance: bad_membership_changes_fail_and_change_nothing");
    bad_membership_changes_fail_and_change_nothing(&mut make()).await;
}

fn bootstrap(id: &str) -> Command {
    Command::Bootstrap {
        master_id: id.into(),
    }
}

fn framework(name: &str) -> Command {
    Command::AddFramework {
        info: keel_api::mesos::FrameworkInfo {
            user: "conformance".into(),
            name: name.into(),
            id: None,
            failover_timeout: None,
            checkpoint: None,
            role: None,
            roles: Vec::new(),
            hostname: None,
            principal: None,
            webui_url: None,
            capabilities: Vec::new(),
            labels: None,
            offer_filters: None,
        },
        at: 1.0,
    }
}

/// The registry's framework names, in the order they were added.
fn names(reg: &Registry) -> Vec<String> {
    reg.frameworks().map(|f| f.info.name.clone()).collect()
}

/// Proposes `cmd`, which must commit; returns the registry's verdict.
async fn commit(r: &dyn Replicator, cmd: Command) -> Result<Applied, RegistryError> {
    match tokio::time::timeout(PATIENCE, r.propose(cmd.clone())).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) => panic!("{cmd:?} did not commit: {e}"),
        Err(_) => panic!("{cmd:?} did not commit within {PATIENCE:?}"),
    }
}

async fn barrier(r: &dyn Replicator) {
    match tokio::time::timeout(PATIENCE, r.barrier()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("the leader's barrier failed: {e}"),
        Err(_) => panic!("the leader's barrier did not pass within {PATIENCE:?}"),
    }
}

/// An accepted command is `Ok(Ok(..))` and visible at once; a refused one
/// is `Ok(Err(..))` and changes nothing.
async fn proposals_return_the_registrys_verdict(h: &mut impl Harness) {
    let r = h.start().await;
    let empty = r.registry();
    assert_eq!(
        commit(&*r, framework("early")).await,
        Err(RegistryError::NotBootstrapped)
    );
    assert_eq!(
        r.registry(),
        empty,
        "a refused command changed the registry"
    );
    assert_eq!(commit(&*r, bootstrap("m")).await, Ok(Applied::Bootstrapped));
    assert_eq!(r.registry().master_id(), Some("m"));
    let before = r.registry();
    assert_eq!(
        commit(&*r, bootstrap("n")).await,
        Err(RegistryError::AlreadyBootstrapped("m".into()))
    );
    assert_eq!(
        r.registry(),
        before,
        "a refused command changed the registry"
    );
    let added = commit(&*r, framework("a")).await;
    assert!(
        matches!(added, Ok(Applied::FrameworkAdded { .. })),
        "{added:?}"
    );
    assert_eq!(names(&r.registry()), ["a"], "not visible after propose");
    barrier(&*r).await;
    assert_eq!(names(&r.registry()), ["a"], "not visible after barrier");
}

/// Sequential proposals apply in their order; concurrent ones all apply.
async fn proposals_apply_in_order_and_concurrently(h: &mut impl Harness) {
    let r = h.start().await;
    commit(&*r, bootstrap("m")).await.unwrap();
    let sequential: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    for name in &sequential {
        commit(&*r, framework(name)).await.unwrap();
    }
    assert_eq!(names(&r.registry()), sequential);
    let concurrent: Vec<String> = (0..16).map(|i| format!("c{i:02}")).collect();
    let verdicts =
        futures::future::join_all(concurrent.iter().map(|n| commit(&*r, framework(n)))).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    barrier(&*r).await;
    let all = names(&r.registry());
    assert_eq!(all[..10], sequential[..]);
    let mut tail = all[10..].to_vec();
    tail.sort();
    assert_eq!(tail, concurrent);
}

/// Everything acknowledged before a restart is there after it, refusals
/// still change nothing, and new commands follow on.
async fn a_restart_keeps_every_acknowledged_command(h: &mut impl Harness) {
    let r = h.start().await;
    commit(&*r, bootstrap("m")).await.unwrap();
    for name in ["a", "b", "c"] {
        commit(&*r, framework(name)).await.unwrap();
    }
    commit(&*r, bootstrap("n")).await.unwrap_err();
    let before = r.registry();
    drop(r);
    let r = h.restart().await;
    barrier(&*r).await;
    assert_eq!(
        r.registry(),
        before,
        "the registry changed across a restart"
    );
    commit(&*r, framework("d")).await.unwrap();
    assert_eq!(names(&r.registry()), ["a", "b", "c", "d"]);
    drop(r);
    let r = h.restart().await;
    barrier(&*r).await;
    assert_eq!(names(&r.registry()), ["a", "b", "c", "d"]);
    assert_eq!(r.registry().master_id(), Some("m"));
}

/// The leader says it leads; every member agrees on the term and the
/// members, which include the leader as a voter; the others name it.
async fn every_member_reports_the_leader_and_the_members(h: &mut impl Harness) {
    let r = h.start().await;
    let view = r.cluster();
    assert_eq!(view.leadership, Leadership::Leader);
    assert!(view.term >= 1, "{view:?}");
    assert!(view.problem.is_none(), "{view:?}");
    let me = view
        .members
        .iter()
        .find(|m| m.id == view.me)
        .unwrap_or_else(|| panic!("the leader is not among the members: {view:?}"));
    assert!(me.voter, "{view:?}");
    let followers = h.followers();
    assert_eq!(view.members.len(), followers.len() + 1, "{view:?}");
    let ids = |v: &ClusterView| v.members.iter().map(|m| m.id).collect::<Vec<_>>();
    for f in &followers {
        let mut theirs = f.cluster();
        // Followers learn the membership and term from the leader.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let named = Leadership::Follower {
            leader: Some(me.addr.clone()),
        };
        while (theirs.leadership != named || theirs.term != view.term || ids(&theirs) != ids(&view))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            theirs = f.cluster();
        }
        assert_eq!(theirs.leadership, named);
        assert_eq!(theirs.term, view.term);
        assert_eq!(ids(&theirs), ids(&view));
        assert_ne!(theirs.me, view.me);
    }
}

/// Writes and barriers on a member that does not lead fail, naming the
/// leader, and apply nothing anywhere.
async fn members_that_do_not_lead_refuse_and_name_the_leader(h: &mut impl Harness) {
    let r = h.start().await;
    commit(&*r, bootstrap("m")).await.unwrap();
    let leader = r.cluster();
    let addr = leader
        .members
        .iter()
        .find(|m| m.id == leader.me)
        .map(|m| m.addr.clone());
    for f in h.followers() {
        let refused = f.propose(framework("refused")).await;
        assert_eq!(
            refused,
            Err(ProposeError::NotLeader {
                leader: addr.clone()
            })
        );
        let barrier = f.barrier().await;
        assert!(
            matches!(barrier, Err(ProposeError::NotLeader { .. })),
            "{barrier:?}"
        );
    }
    commit(&*r, framework("accepted")).await.unwrap();
    barrier(&*r).await;
    assert_eq!(names(&r.registry()), ["accepted"]);
}

/// `leadership_changed` resolves at once for a view that differs in
/// leadership or term, and stays pending for the current one.
async fn leadership_changed_compares_with_the_view_seen(h: &mut impl Harness) {
    let r = h.start().await;
    let now = r.cluster();
    let steady = tokio::time::timeout(STEADY, r.leadership_changed(&now)).await;
    assert!(steady.is_err(), "resolved although nothing changed");
    let older = ClusterView {
        term: now.term - 1,
        ..now.clone()
    };
    let deposed = ClusterView {
        leadership: Leadership::Follower { leader: None },
        ..now.clone()
    };
    for seen in [older, deposed] {
        let at_once = tokio::time::timeout(PATIENCE, r.leadership_changed(&seen)).await;
        assert!(at_once.is_ok(), "pending although {seen:?} differs");
    }
    for f in h.followers() {
        let theirs = f.cluster();
        let led = ClusterView {
            leadership: Leadership::Leader,
            ..theirs
        };
        let at_once = tokio::time::timeout(PATIENCE, f.leadership_changed(&led)).await;
        assert!(
            at_once.is_ok(),
            "a follower's pending although it does not lead"
        );
    }
}

/// Removing a master that is no member and adding one that is no address
/// fail, and the members stay as they were.
async fn bad_membership_changes_fail_and_change_nothing(h: &mut impl Harness) {
    let r = h.start().await;
    let before = r.cluster().members;
    let stranger = before.iter().map(|m| m.id).max().unwrap_or(0) + 1;
    let removed = r.remove_member(stranger).await;
    assert!(removed.is_err(), "removing a stranger: {removed:?}");
    let added = r.add_member("not an address".into()).await;
    assert!(added.is_err(), "adding garbage: {added:?}");
    assert_eq!(r.cluster().members, before);
}
