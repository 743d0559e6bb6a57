//! The agents pages over a registry built in memory: search, sort,
//! paging, escaping.

use super::agents::{agent, agents, matching};
use super::query::{AgentSort, AgentsQuery, Paging, UiError};
use crate::engine::Snapshot;
use crate::registry::{Applied, Command, Registry};
use keel_api::resources::Resources;

fn snapshot(hosts: &[(&str, f64)]) -> Snapshot {
    let mut registry = Registry::default();
    registry
        .apply(&Command::Bootstrap {
            master_id: "m".into(),
        })
        .unwrap();
    for (host, cpus) in hosts {
        let mut info = crate::registry::tests::info(host);
        info.resources = Resources::parse(&format!("cpus:{cpus};mem:1024")).unwrap();
        let applied = registry.apply(&Command::AdmitAgent { info, at: 1.0 });
        assert!(matches!(applied, Ok(Applied::AgentAdmitted { .. })));
    }
    Snapshot {
        registry,
        frameworks: Vec::new(),
        live: Vec::new(),
        completed: Vec::new(),
        offers: Vec::new(),
        inverse_offers: Vec::new(),
        roles: Vec::new(),
        elected_time: None,
    }
}

fn query(
    search: &str,
    sort: AgentSort,
    descending: bool,
    page: usize,
    per_page: usize,
) -> AgentsQuery {
    AgentsQuery {
        search: search.into(),
        sort,
        descending,
        paging: Paging { page, per_page },
    }
}

fn hosts(s: &Snapshot, q: &AgentsQuery) -> Vec<String> {
    matching(s, q)
        .iter()
        .map(|a| a.info.hostname.clone())
        .collect()
}

#[test]
fn search_and_sort() {
    let s = snapshot(&[("b-host", 8.0), ("a-host", 2.0), ("other", 4.0)]);
    let q = query("HOST", AgentSort::Hostname, false, 1, 50);
    assert_eq!(hosts(&s, &q), ["a-host", "b-host"]);
    let q = query("", AgentSort::Cpus, true, 1, 50);
    assert_eq!(hosts(&s, &q), ["b-host", "other", "a-host"]);
    let q = query("", AgentSort::Cpus, false, 1, 50);
    assert_eq!(hosts(&s, &q), ["a-host", "other", "b-host"]);
}

#[test]
fn pages_the_table_on_the_server() {
    let s = snapshot(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
    let page = agents(&s, &query("", AgentSort::Hostname, false, 2, 1));
    assert!(page.contains("3 agents · page 2 of 3"), "{page}");
    assert!(
        page.contains("page=1&amp;per_page=1\">« previous"),
        "{page}"
    );
    assert!(page.contains("page=3&amp;per_page=1\">next »"), "{page}");
    let rows = page.matches("<tr id=\"agent-").count();
    assert_eq!(rows, 1, "{page}");
    assert!(page.contains("<td>b</td>"), "{page}");
}

#[test]
fn escapes_what_agents_report() {
    let s = snapshot(&[("<script>alert(1)</script>", 1.0)]);
    let page = agents(&s, &query("<script>", AgentSort::Hostname, false, 1, 50));
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    let id = s.registry.agents().next().unwrap().id.clone();
    let detail = agent(&s, &id).unwrap();
    assert!(!detail.contains("<script>"), "{detail}");
    assert_eq!(
        agent(&s, "nope"),
        Err(UiError::NotFound("agent nope".into()))
    );
}
