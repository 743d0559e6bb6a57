//! Replicated masters as real processes on loopback: kill -9 the leader and
//! a new one serves; acknowledged registry writes survive; the agent
//! re-registers with the new leader; a framework re-subscribes and
//! reconciles its running task; followers redirect.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use keel_api::keel::{AgentState, Cluster as View};
use keel_api::mesos::{Id, TaskState};
use keel_client::scheduler::{Call, Subscribe};
use serde_json::json;
use support::scheduler::*;
use support::*;

const T: Duration = Duration::from_secs(30);

struct Cluster {
    masters: Vec<Master>,
    list: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let (masters, list) = three_masters(dir);
        Cluster { masters, list }
    }

    fn view(&self, i: usize) -> Option<View> {
        self.masters[i].api.masters().ok()
    }

    /// Index of the master that leads and serves the operator API (a
    /// follower's redirect is an error of its pinned client).
    fn serving_leader(&self, skip: Option<usize>) -> Option<usize> {
        (0..self.masters.len())
            .filter(|i| Some(*i) != skip)
            .find(|i| self.masters[*i].api.get_health().unwrap_or(false))
    }

    fn wait_leader(&self, skip: Option<usize>) -> usize {
        let mut found = None;
        wait_for(
            T,
            "a serving leader",
            || {
                found = self.serving_leader(skip);
                found.is_some()
            },
            || {
                self.masters
                    .iter()
                    .map(|m| m.proc.log_text())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            },
        );
        found.unwrap()
    }
}

#[test]
fn leader_failover_keeps_the_registry_agents_and_frameworks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path());
    let l = c.wait_leader(None);
    let view = c.view(l).unwrap();
    assert_eq!(view.members.len(), 3, "{view:?}");

    // Followers redirect the APIs to the leader.
    let leader_addr = c.masters[l].addr();
    for f in (0..3).filter(|i| *i != l) {
        let ask = || {
            http(
                c.masters[f].port,
                "POST",
                "/api/v1/scheduler?x=1",
                &[("Content-Type", "application/json")],
                b"{}",
            )
            .unwrap()
        };
        // A follower may not have heard from the new leader yet (503).
        wait_for(
            T,
            "the follower knows the leader",
            || ask().0 != 503,
            || c.masters[f].proc.log_text(),
        );
        let (code, headers, _) = ask();
        assert_eq!(code, 307);
        let loc = headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert_eq!(loc, format!("//{leader_addr}/api/v1/scheduler?x=1"));
        // The operator event stream and the legacy writes too.
        for (path, content_type, body) in [
            (
                "/api/v1",
                "application/json",
                &br#"{"type":"SUBSCRIBE"}"#[..],
            ),
            (
                "/master/teardown",
                "application/x-www-form-urlencoded",
                b"frameworkId=x",
            ),
        ] {
            let (code, headers, _) = http(
                c.masters[f].port,
                "POST",
                path,
                &[("Content-Type", content_type)],
                body,
            )
            .unwrap();
            assert_eq!(code, 307, "{path}");
            assert!(
                headers.contains(&("location".into(), format!("//{leader_addr}{path}"))),
                "{path}: {headers:?}"
            );
        }
    }

    let agent = start_agent(dir.path(), &c.list, &["--resources", "cpus:2;mem:1024"]);
    wait_for(
        T,
        "agent",
        || {
            c.masters[l]
                .keel_agents()
                .iter()
                .any(|a| a.state == AgentState::Active)
        },
        || agent.log_text(),
    );
    let agent_id = c.masters[l].keel_agents()[0].id.clone();

    // An acknowledged write.
    let (code, _, _) = post_json(
        c.masters[l].port,
        "/api/v1",
        r#"{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"eng","weight":2.5}]}}"#,
    );
    assert_eq!(code, 200);

    // A framework with a running task.
    let mut s = Scheduler::subscribe(
        c.masters[l].port,
        info(json!({"user": "root", "name": "ha", "failover_timeout": 60})),
    );
    let fid = s.framework_id.clone();
    let offer = s.offer(T);
    launch(
        &s,
        &offer,
        vec![command_task(&offer, "long", "sleep 120", 0.5, 64.0)],
    );
    loop {
        let u = s.update(T);
        s.ack(&u);
        if u.state == TaskState::TASK_RUNNING {
            break;
        }
    }

    // A follower shows the framework in /master/state too (from the
    // replicated registry), though it never led: once it has applied the
    // entry (it learns the commit index with the leader's next message).
    for f in (0..3).filter(|i| *i != l) {
        wait_for(
            T,
            &format!("follower {f} shows the framework"),
            || {
                c.masters[f]
                    .api
                    .legacy_state()
                    .is_ok_and(|state| state.frameworks.iter().any(|x| x.id == fid))
            },
            || c.masters[f].proc.log_text(),
        );
    }

    let elected = |m: &Master| m.api.get_master().unwrap().elected_time.unwrap();
    let first_elected = elected(&c.masters[l]);

    // kill -9 the leader.
    c.masters[l].proc.kill9();
    let killed = Instant::now();
    let killed_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let n = c.wait_leader(Some(l));
    let took = killed.elapsed();
    eprintln!("leader kill -> new leader serving: {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let new = &c.masters[n];

    // GET_MASTER says when this master was elected: after the failover.
    let new_elected = elected(new);
    assert!(
        new_elected > first_elected,
        "{first_elected} -> {new_elected}"
    );
    assert!(
        new_elected >= killed_unix - 1.0,
        "{new_elected} vs kill at {killed_unix}"
    );

    // No acknowledged write is lost.
    let weights = new.api.get_weights().unwrap().weight_infos;
    assert!(weights.iter().any(|w| w.weight == 2.5), "{weights:?}");

    // The agent re-registers with the new leader, same id.
    wait_for(
        T,
        "agent re-registered",
        || {
            new.keel_agents()
                .iter()
                .any(|a| a.id == agent_id && a.state == AgentState::Active)
        },
        || format!("{}\n---agent---\n{}", new.proc.log_text(), agent.log_text()),
    );

    // The framework re-subscribes with its id; reconciliation finds the task running.
    let mut again = info(json!({"user": "root", "name": "ha", "failover_timeout": 60}));
    again.id = Some(Id::new(&fid));
    let mut s2 = Scheduler::subscribe_with(new.port, Subscribe::new(again));
    assert_eq!(s2.framework_id, fid);
    let (code, _) = s2.call(Call::Reconcile(vec![]));
    assert_eq!(code, 202);
    let u = s2.update(T);
    assert_eq!(u.task_id.value, "long");
    assert_eq!(u.state, TaskState::TASK_RUNNING, "{u:?}");
    drop(c);
}
