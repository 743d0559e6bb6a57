//! The tasks table (filters by state, framework and agent; paging) and
//! one task's page with its status history.

use super::html::{esc, link, num, table, time, url};
use super::query::{TasksQuery, UiError};
use crate::core::TaskView;
use crate::engine::Snapshot;

/// The path of a task's page.
fn task_href(t: &TaskView) -> String {
    format!("/ui/tasks/{}/{}", url(&t.framework_id), url(&t.task_id))
}

/// The row of one task.
pub fn task_row(t: &TaskView) -> (String, Vec<String>) {
    (
        format!("task-{}-{}", t.framework_id, t.task_id),
        vec![
            link(&task_href(t), &t.task_id),
            esc(&t.name),
            format!("<span class=\"state task-state\">{}</span>", t.state.name()),
            link(&format!("/ui/agents/{}", url(&t.agent_id)), &t.agent_id),
            esc(&t.framework_id),
            format!(
                "{} cpus, {} mem",
                num(t.resources.scalar("cpus")),
                num(t.resources.scalar("mem"))
            ),
        ],
    )
}

/// A table of `tasks`.
pub fn task_rows(id: &str, tasks: &[&TaskView]) -> String {
    let rows: Vec<_> = tasks.iter().map(|t| task_row(t)).collect();
    table(
        id,
        &["ID", "Name", "State", "Agent", "Framework", "Resources"],
        &rows,
    )
}

fn filter_href(q: &TasksQuery, page: usize) -> String {
    format!(
        "/ui/tasks?state={}&framework={}&agent={}&page={page}&per_page={}",
        q.state.map(|s| s.name()).unwrap_or(""),
        url(q.framework.as_deref().unwrap_or("")),
        url(q.agent.as_deref().unwrap_or("")),
        q.paging.per_page
    )
}

pub fn tasks(s: &Snapshot, q: &TasksQuery) -> String {
    let matching: Vec<&TaskView> = s
        .live
        .iter()
        .chain(s.completed.iter())
        .filter(|t| q.state.is_none_or(|st| t.state == st))
        .filter(|t| q.framework.as_deref().is_none_or(|f| t.framework_id == f))
        .filter(|t| q.agent.as_deref().is_none_or(|a| t.agent_id == a))
        .collect();
    let pages = q.paging.pages(matching.len());
    let mut out = String::from(
        "<h1>Tasks</h1><form class=\"filters\" method=\"get\" action=\"/ui/tasks\">\
         <select name=\"state\"><option value=\"\">any state</option>",
    );
    for st in keel_api::mesos::TaskState::ALL {
        let selected = if q.state == Some(st) { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{0}\"{selected}>{0}</option>",
            st.name()
        ));
    }
    out.push_str(&format!(
        "</select><input name=\"framework\" placeholder=\"framework id\" value=\"{}\">\
         <input name=\"agent\" placeholder=\"agent id\" value=\"{}\">\
         <button type=\"submit\">Filter</button></form>\
         <p id=\"tasks-count\">{} tasks · page {} of {pages}</p>",
        esc(q.framework.as_deref().unwrap_or("")),
        esc(q.agent.as_deref().unwrap_or("")),
        matching.len(),
        q.paging.page,
    ));
    out.push_str(&task_rows("tasks", q.paging.slice(&matching)));
    out.push_str("<p class=\"pager\">");
    if q.paging.page > 1 {
        out.push_str(&link(&filter_href(q, q.paging.page - 1), "« previous"));
    }
    if q.paging.page < pages {
        out.push_str(&link(&filter_href(q, q.paging.page + 1), "next »"));
    }
    out.push_str("</p>");
    out
}

pub fn task(s: &Snapshot, framework: &str, id: &str) -> Result<String, UiError> {
    let t = s
        .live
        .iter()
        .chain(s.completed.iter())
        .find(|t| t.framework_id == framework && t.task_id == id)
        .ok_or_else(|| UiError::NotFound(format!("task {id} of framework {framework}")))?;
    let mut out = format!(
        "<h1>Task {}</h1><dl><dt>Name</dt><dd>{}</dd><dt>State</dt>\
         <dd id=\"task-state\">{}</dd><dt>Agent</dt><dd>{}</dd><dt>Framework</dt>\
         <dd>{}</dd><dt>Role</dt><dd>{}</dd><dt>Resources</dt><dd>{}</dd></dl>",
        esc(&t.task_id),
        esc(&t.name),
        t.state.name(),
        link(&format!("/ui/agents/{}", url(&t.agent_id)), &t.agent_id),
        esc(&t.framework_id),
        esc(&t.role),
        esc(&t.resources.to_string()),
    );
    let rows: Vec<_> = t
        .statuses
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (
                format!("status-{i}"),
                vec![
                    st.state.name().to_string(),
                    st.timestamp.map(time).unwrap_or_default(),
                    esc(st.source.as_deref().unwrap_or("")),
                    esc(st.reason.as_deref().unwrap_or("")),
                    esc(st.message.as_deref().unwrap_or("")),
                ],
            )
        })
        .collect();
    out.push_str("<h2>Status history</h2>");
    out.push_str(&table(
        "statuses",
        &["State", "Time", "Source", "Reason", "Message"],
        &rows,
    ));
    Ok(out)
}
