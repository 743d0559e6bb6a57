//! The web UI's requests, parsed: a path under `/ui/` (or `/`) and its
//! query into one [`UiPage`]; malformed parameters are a [`UiError`]
//! (400), unknown paths [`UiError::NotFound`] (404).

use std::collections::HashMap;

use keel_api::mesos::TaskState;

/// Most rows on one page of a table.
pub const MAX_PER_PAGE: usize = 500;
/// Rows on a page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UiError {
    #[error("no such page: {0}")]
    NotFound(String),
    #[error("not allowed to view {0}")]
    Forbidden(String),
    #[error("invalid value {value:?} for {param}: {reason}")]
    BadParam {
        param: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Which rows of a table to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

impl Paging {
    /// The rows of `items` on this page.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = (self.page - 1)
            .saturating_mul(self.per_page)
            .min(items.len());
        let end = start.saturating_add(self.per_page).min(items.len());
        &items[start..end]
    }

    /// How many pages `total` rows take (at least one).
    pub fn pages(&self, total: usize) -> usize {
        total.div_ceil(self.per_page).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSort {
    Hostname,
    Id,
    State,
    Cpus,
    Mem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentsQuery {
    /// Substring of the id or hostname.
    pub search: String,
    pub sort: AgentSort,
    pub descending: bool,
    pub paging: Paging,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TasksQuery {
    pub state: Option<TaskState>,
    pub framework: Option<String>,
    pub agent: Option<String>,
    pub paging: Paging,
}

/// One page of the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiPage {
    Overview,
    Agents(AgentsQuery),
    Agent(String),
    Frameworks,
    Tasks(TasksQuery),
    /// (framework id, task id)
    Task(String, String),
}

type Params = HashMap<String, String>;

fn bad(param: &'static str, value: &str, reason: &'static str) -> UiError {
    UiError::BadParam {
        param,
        value: value.to_string(),
        reason,
    }
}

fn number(
    params: &Params,
    name: &'static str,
    default: usize,
    max: usize,
) -> Result<usize, UiError> {
    let Some(v) = params.get(name) else {
        return Ok(default);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(_) => Err(bad(name, v, "out of range")),
        Err(_) => Err(bad(name, v, "not a whole number")),
    }
}

fn paging(params: &Params) -> Result<Paging, UiError> {
    Ok(Paging {
        page: number(params, "page", 1, usize::MAX / 2)?,
        per_page: number(params, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
    })
}

fn non_empty(params: &Params, name: &str) -> Option<String> {
    params.get(name).filter(|v| !v.is_empty()).cloned()
}

fn agents_query(params: &Params) -> Result<AgentsQuery, UiError> {
    let sort = match params.get("sort").map(String::as_str) {
        None | Some("hostname") => AgentSort::Hostname,
        Some("id") => AgentSort::Id,
        Some("state") => AgentSort::State,
        Some("cpus") => AgentSort::Cpus,
        Some("mem") => AgentSort::Mem,
        Some(other) => {
            return Err(bad(
                "sort",
                other,
                "expected hostname, id, state, cpus or mem",
            ));
        }
    };
    let descending = match params.get("order").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad("order", other, "expected asc or desc")),
    };
    Ok(AgentsQuery {
        search: params.get("q").cloned().unwrap_or_default(),
        sort,
        descending,
        paging: paging(params)?,
    })
}

fn tasks_query(params: &Params) -> Result<TasksQuery, UiError> {
    let state = match non_empty(params, "state") {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<TaskState>(serde_json::Value::String(s.clone()))
                .map_err(|_| bad("state", &s, "not a task state such as TASK_RUNNING"))?,
        ),
    };
    Ok(TasksQuery {
        state,
        framework: non_empty(params, "framework"),
        agent: non_empty(params, "agent"),
        paging: paging(params)?,
    })
}

impl UiPage {
    /// The page at `path` (the part after `/ui/`; empty for the overview).
    pub fn parse(path: &str, params: &Params) -> Result<UiPage, UiError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [] | ["overview"] => Ok(UiPage::Overview),
            ["agents"] => Ok(UiPage::Agents(agents_query(params)?)),
            ["agents", id] => Ok(UiPage::Agent(id.to_string())),
            ["frameworks"] => Ok(UiPage::Frameworks),
            ["tasks"] => Ok(UiPage::Tasks(tasks_query(params)?)),
            ["tasks", framework, task] => Ok(UiPage::Task(framework.to_string(), task.to_string())),
            _ => Err(UiError::NotFound(format!("/ui/{path}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_pages_and_their_queries() {
        assert_eq!(UiPage::parse("", &params(&[])), Ok(UiPage::Overview));
        let p = UiPage::parse(
            "agents",
            &params(&[("sort", "cpus"), ("order", "desc"), ("page", "3")]),
        )
        .unwrap();
        let UiPage::Agents(q) = p else {
            panic!("{p:?}")
        };
        assert_eq!(
            (q.sort, q.descending, q.paging.page),
            (AgentSort::Cpus, true, 3)
        );
        let p = UiPage::parse(
            "tasks",
            &params(&[("state", "TASK_RUNNING"), ("agent", "")]),
        )
        .unwrap();
        let UiPage::Tasks(q) = p else { panic!("{p:?}") };
        assert_eq!((q.state, q.agent), (Some(TaskState::TASK_RUNNING), None));
        assert_eq!(
            UiPage::parse("tasks/f/t", &params(&[])),
            Ok(UiPage::Task("f".into(), "t".into()))
        );
    }

    #[test]
    fn malformed_parameters_and_unknown_pages_are_errors() {
        let err =
            |path: &str, pairs: &[(&str, &str)]| UiPage::parse(path, &params(pairs)).unwrap_err();
        assert!(matches!(
            err("agents", &[("page", "x")]),
            UiError::BadParam { param: "page", .. }
        ));
        assert!(matches!(
            err("agents", &[("page", "0")]),
            UiError::BadParam { param: "page", .. }
        ));
        assert!(matches!(
            err("agents", &[("per_page", "501")]),
            UiError::BadParam { .. }
        ));
        assert!(matches!(
            err("agents", &[("sort", "color")]),
            UiError::BadParam { param: "sort", .. }
        ));
        assert!(matches!(
            err("tasks", &[("state", "RUNNING")]),
            UiError::BadParam { param: "state", .. }
        ));
        assert_eq!(err("nope", &[]), UiError::NotFound("/ui/nope".into()));
    }

    #[test]
    fn paging_slices_and_counts() {
        let p = Paging {
            page: 2,
            per_page: 2,
        };
        assert_eq!(p.slice(&[1, 2, 3, 4, 5]), &[3, 4]);
        assert_eq!(p.pages(5), 3);
        assert_eq!(
            Paging {
                page: 9,
                per_page: 2
            }
            .slice(&[1, 2]),
            &[] as &[i32]
        );
    }
}
