//! The web UI in real Chromium (headless, over WebDriver): every page
//! loads without console errors, an agent that starts after the overview
//! was opened appears without a reload, a task launched through the
//! scheduler API goes RUNNING -> FINISHED live on the tasks page; bad
//! query parameters and unknown pages answer 400 and 404 pages.
//! Screenshots of each page land in `target/ui-screenshots/`.

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::Duration;

use browser::Browser;
use keel_api::mesos::TaskState;
use support::scheduler::{Scheduler, command_task, framework, launch};
use support::*;

const T: Duration = Duration::from_secs(30);

/// A marker the page keeps until it reloads.
const MARK: &str = "window.__keel_kept = true";
const KEPT: &str = "window.__keel_kept === true";

/// Acknowledges `fw`'s updates until one reaches `state`.
fn ack_until(fw: &mut Scheduler, state: TaskState) {
    loop {
        let status = fw.update(T);
        if status.uuid.is_some() {
            fw.ack(&status);
        }
        if status.state == state {
            return;
        }
        assert!(
            !status.state.is_terminal(),
            "the task ended {:?}: {:?}",
            status.state,
            status.message
        );
    }
}

#[test]
fn the_web_ui_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let m = Master::start(dir.path(), free_port(), "5s");
    let base = format!("http://127.0.0.1:{}", m.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(Browser::start(dir.path()));

    // The overview, open before any agent: the agent appears live.
    rt.block_on(async {
        b.client.goto(&format!("{base}/")).await.unwrap();
        b.wait_until(
            T,
            "the event stream",
            "document.body.dataset.live === 'open'",
        )
        .await;
        assert_eq!(b.text("agents-active").await, "0");
        assert!(b.text("answered-by").await.contains(&m.port.to_string()));
        b.eval(MARK).await;
    });
    let agent = start_agent(dir.path(), &m.addr(), &[]);
    rt.block_on(async {
        let shown = "document.getElementById('agents-active').innerText === '1'";
        b.wait_until(T, "the new agent on the overview", shown)
            .await;
        assert_eq!(b.eval(KEPT).await, true, "the overview reloaded");
        b.assert_no_console_errors("/");
        b.screenshot("overview").await;
    });
    let agent_id = m.keel_agents()[0].id.clone();

    // A task, watched on the tasks page from launch to its end.
    let mut fw = Scheduler::subscribe(m.port, framework("web-ui"));
    let offer = fw.offer(T);
    rt.block_on(async {
        b.client.goto(&format!("{base}/ui/tasks")).await.unwrap();
        b.wait_until(
            T,
            "the event stream",
            "document.body.dataset.live === 'open'",
        )
        .await;
        b.eval(MARK).await;
    });
    let task = command_task(&offer, "sleeper", "sleep 4", 0.1, 32.0);
    assert_eq!(launch(&fw, &offer, vec![task]), 202);
    let row = format!("task-{}-sleeper", fw.framework_id);
    let state_is = |state: &str| {
        format!(
            "(function () {{ const r = document.getElementById({row:?}); \
             return !!r && r.querySelector('.task-state').innerText === {state:?}; }})()"
        )
    };
    ack_until(&mut fw, TaskState::TASK_RUNNING);
    rt.block_on(async {
        b.wait_until(T, "the task RUNNING", &state_is("TASK_RUNNING"))
            .await;
        b.screenshot("tasks-running").await;
    });
    ack_until(&mut fw, TaskState::TASK_FINISHED);
    rt.block_on(async {
        b.wait_until(T, "the task FINISHED", &state_is("TASK_FINISHED"))
            .await;
        assert_eq!(b.eval(KEPT).await, true, "the tasks page reloaded");
        let recent = b.text("recent").await;
        assert!(recent.contains("task sleeper TASK_FINISHED"), "{recent}");
        b.assert_no_console_errors("/ui/tasks");
        b.screenshot("tasks").await;
    });

    // Every page loads, without console errors, and shows what it is for.
    let pages = [
        (
            "agents",
            "/ui/agents?sort=cpus&order=desc".to_string(),
            "agents",
            "active",
        ),
        (
            "agent",
            format!("/ui/agents/{agent_id}"),
            "inventory",
            "logical",
        ),
        (
            "frameworks",
            "/ui/frameworks".to_string(),
            "frameworks",
            "web-ui",
        ),
        (
            "task",
            format!("/ui/tasks/{}/sleeper", fw.framework_id),
            "statuses",
            "TASK_FINISHED",
        ),
        (
            "tasks-filtered",
            "/ui/tasks?state=TASK_FINISHED".to_string(),
            "tasks",
            "sleeper",
        ),
    ];
    rt.block_on(async {
        for (name, path, element, expected) in &pages {
            b.client.goto(&format!("{base}{path}")).await.unwrap();
            let present = format!("!!document.getElementById({element:?})");
            b.wait_until(T, &format!("#{element} on {path}"), &present)
                .await;
            b.wait_until(
                T,
                "the event stream",
                "document.body.dataset.live === 'open'",
            )
            .await;
            let text = b.text(element).await;
            assert!(text.contains(expected), "{path}: #{element} reads {text:?}");
            b.assert_no_console_errors(path);
            b.screenshot(name).await;
        }
    });

    // Bad input: a 400 page, a 404 page; never a blank one.
    for (path, status) in [
        ("/ui/agents?page=zero", 400),
        ("/ui/agents?per_page=100000", 400),
        ("/ui/tasks?state=RUNNING", 400),
        ("/ui/nowhere", 404),
        ("/ui/agents/no-such-agent", 404),
        ("/ui/tasks/no/such", 404),
    ] {
        let (code, body) = http_get(m.port, path).unwrap();
        assert_eq!(code, status, "{path}: {body}");
        assert!(body.contains("<h1 id=\"error\">"), "{path}: {body}");
    }
    // The agent's page says when it is deactivated.
    let page = format!("/ui/agents/{agent_id}");
    assert!(
        http_get(m.port, &page)
            .unwrap()
            .1
            .contains("<span id=\"agent-maintenance\">none</span>")
    );
    let call = format!(
        r#"{{"type": "DEACTIVATE_AGENT", "deactivate_agent": {{"agent_id": {{"value": "{agent_id}"}}}}}}"#
    );
    let reply = post_json(m.port, "/api/v1", &call);
    assert_eq!(reply.0, 200, "{reply:?}");
    let (_, body) = http_get(m.port, &page).unwrap();
    assert!(
        body.contains("<span id=\"agent-maintenance\">deactivated</span>"),
        "{body}"
    );

    rt.block_on(async {
        b.client.goto(&format!("{base}/ui/nowhere")).await.unwrap();
        b.screenshot("not-found").await;
    });
    rt.block_on(b.client.clone().close()).unwrap();
    drop(agent);
}

#[test]
fn a_follower_sends_the_browser_to_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (masters, _) = three_masters(dir.path());
    // A follower that knows a leader which serves the UI.
    let mut found = None;
    wait_for(
        T,
        "a follower that knows the serving leader",
        || {
            found = masters.iter().find_map(|f| {
                let leader = f.api.masters().ok()?.leader?;
                let port: u16 = leader.rsplit_once(':')?.1.parse().ok()?;
                let serving = http_get(port, "/").is_ok_and(|(status, _)| status == 200);
                (port != f.port && serving).then_some((f.port, port))
            });
            found.is_some()
        },
        || masters[0].proc.log_text(),
    );
    let (follower, leader) = found.unwrap();
    let (status, _) = http_get(follower, "/ui/agents").unwrap();
    assert_eq!(status, 307);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start(dir.path()).await;
        let url = format!("http://127.0.0.1:{follower}/ui/agents");
        b.client.goto(&url).await.unwrap();
        b.wait_until(T, "the agents page", "!!document.getElementById('agents')")
            .await;
        let at = b.client.current_url().await.unwrap();
        assert_eq!(at.port(), Some(leader), "{at}");
        let footer = b.eval("document.querySelector('footer').innerText").await;
        let footer = footer.as_str().unwrap_or("");
        assert!(footer.contains(&format!(":{leader})")), "{footer}");
        assert!(footer.ends_with("(leader)"), "{footer}");
        b.wait_until(
            T,
            "the event stream",
            "document.body.dataset.live === 'open'",
        )
        .await;
        b.assert_no_console_errors(&url);
        b.screenshot("follower-redirected").await;
        b.client.clone().close().await.unwrap();
    });
}
