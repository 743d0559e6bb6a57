//! The web UI: server-rendered pages at `/` and under `/ui/`, its script
//! and stylesheet embedded in the binary (`include_str!`), live updates
//! over server-sent events (`/ui/events`, see [`live`]) that tell the
//! page which fragment to fetch again (`/ui/fragment/...`).
//!
//! Pages are pure functions of a [`Snapshot`] the caller may see
//! ([`overview`], [`agents`], [`tasks`]); this module parses the request
//! into a [`UiPage`] and renders it. The routes sit behind the same
//! authentication as every other route (a browser may carry its bearer
//! token in the `keel_token` cookie, set by `/ui/login`) and are served by
//! the leader only: a follower redirects, as the v1 APIs do. See
//! docs/design/0015-web-ui.md.

mod agents;
#[cfg(test)]
mod agents_tests;
mod html;
mod live;
mod overview;
mod query;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::legacy::off_runtime;
use super::visible::Viewer;
use crate::auth::Caller;
use crate::core::Master;
use html::{Answered, esc};
pub use query::{UiError, UiPage};

const SCRIPT: &str = include_str!("assets/keel.js");
const STYLE: &str = include_str!("assets/keel.css");
/// The cookie a browser keeps its bearer token in.
pub const TOKEN_COOKIE: &str = "keel_token";

type Params = Query<HashMap<String, String>>;

/// Whether `path` is one of the UI's (its pages, fragments and events).
pub fn is_ui(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

fn answered(master: &Master) -> Answered {
    let c = master.config();
    Answered {
        address: format!("{} ({}:{})", c.hostname, c.ip, c.port),
        leader: master.is_leader(),
    }
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An error page (`status`, the message) in the UI's shell.
fn error_page(master: Option<&Master>, status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1 id=\"error\">{} {}</h1><p>{}</p><p><a href=\"/\">Overview</a></p>",
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("")),
        esc(message)
    );
    let answered = match master {
        Some(m) => answered(m),
        None => Answered {
            address: "this master".into(),
            leader: false,
        },
    };
    html_response(status, html::page("Error", None, &body, &answered))
}

fn ui_error(master: &Master, e: &UiError) -> Response {
    let status = match e {
        UiError::NotFound(_) => StatusCode::NOT_FOUND,
        UiError::BadParam { .. } => StatusCode::BAD_REQUEST,
        UiError::Forbidden(_) => StatusCode::FORBIDDEN,
    };
    error_page(Some(master), status, &e.to_string())
}

/// The authentication layer's refusal of a UI request: a page that
/// points at the login form.
pub fn refused(status: StatusCode, reason: &str) -> Response {
    let body = format!(
        "<h1 id=\"error\">{} {}</h1><p>{}</p><p><a id=\"login\" href=\"/ui/login\">Log in with a token</a></p>",
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("")),
        esc(reason)
    );
    let answered = Answered {
        address: "this master".into(),
        leader: false,
    };
    html_response(status, html::page("Not allowed", None, &body, &answered))
}

/// A browser's `keel_token` cookie as `Authorization: Bearer`, for GETs
/// of the UI that carry no credentials of their own (writes never take a
/// cookie: no cross-site request can act with it).
pub fn cookie_bearer(req: &mut Request) {
    if req.method() != Method::GET
        || !is_ui(req.uri().path())
        || req.headers().contains_key(header::AUTHORIZATION)
    {
        return;
    }
    let token = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_string());
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
}

/// A token fit for a cookie value.
fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 4096
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=:".contains(&b))
}

/// `/ui/login`: a form; with `?token=` it stores the token in the
/// `keel_token` cookie and goes to the overview.
pub async fn login(Query(params): Params) -> Response {
    let Some(token) = params.get("token") else {
        let body = "<h1>Log in</h1><form method=\"get\" action=\"/ui/login\">\
                    <input name=\"token\" type=\"password\" placeholder=\"bearer token\">\
                    <button type=\"submit\">Log in</button></form>";
        let answered = Answered {
            address: "this master".into(),
            leader: false,
        };
        return html_response(StatusCode::OK, html::page("Log in", None, body, &answered));
    };
    if !cookie_safe(token) {
        return error_page(None, StatusCode::BAD_REQUEST, "malformed token");
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    resp
}

/// `/ui/assets/{name}`: the embedded script and stylesheet.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "keel.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "keel.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return error_page(None, StatusCode::NOT_FOUND, &format!("no asset {name}")),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    resp
}

/// The title of `page` and its body.
fn render(master: &Master, caller: &Caller, page: &UiPage) -> Result<(String, String), UiError> {
    let viewer = Viewer::of(master, caller);
    let needs_agents = matches!(page, UiPage::Agents(_) | UiPage::Agent(_));
    if needs_agents && !viewer.agents() {
        return Err(UiError::Forbidden("agents".into()));
    }
    let s = viewer.snapshot(master);
    Ok(match page {
        UiPage::Overview => {
            let cluster = super::leader::cluster(&master.cluster());
            ("Overview".into(), overview::overview(&s, &cluster))
        }
        UiPage::Agents(q) => ("Agents".into(), agents::agents(&s, q)),
        UiPage::Agent(id) => (format!("Agent {id}"), agents::agent(&s, id)?),
        UiPage::Frameworks => ("Frameworks".into(), overview::frameworks(&s)),
        UiPage::Tasks(q) => ("Tasks".into(), tasks::tasks(&s, q)),
        UiPage::Task(f, t) => (format!("Task {t}"), tasks::task(&s, f, t)?),
    })
}

/// Serves `path` (after `/ui/`) as a whole page, or only its live
/// region when `fragment`.
async fn serve(
    master: Arc<Master>,
    caller: Caller,
    path: String,
    query: Option<String>,
    params: HashMap<String, String>,
    fragment: bool,
) -> Response {
    off_runtime(move || {
        let page = match UiPage::parse(&path, &params) {
            Ok(p) => p,
            Err(e) => return ui_error(&master, &e),
        };
        let (title, body) = match render(&master, &caller, &page) {
            Ok(r) => r,
            Err(e) => return ui_error(&master, &e),
        };
        if fragment {
            return html_response(StatusCode::OK, body);
        }
        let mut live = format!("/ui/fragment/{path}");
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            live.push('?');
            live.push_str(&q);
        }
        let page = html::page(&title, Some(&live), &body, &answered(&master));
        html_response(StatusCode::OK, page)
    })
    .await
}

/// `/`: the overview.
pub async fn index(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Query(params): Params,
) -> Response {
    serve(master, caller, String::new(), None, params, false).await
}

/// Everything else under `/ui/`: pages, fragments and the event stream.
pub async fn dispatch(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    Query(params): Params,
    uri: axum::http::Uri,
) -> Response {
    let query = uri.query().map(str::to_string);
    if path == "events" {
        return live::events(master, caller).await;
    }
    match path.strip_prefix("fragment/") {
        Some(rest) => serve(master, caller, rest.to_string(), query, params, true).await,
        None => serve(master, caller, path, query, params, false).await,
    }
}
