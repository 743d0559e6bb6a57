//! `?jsonp=callback` on the agent's GET endpoints (`/state`, `/flags`,
//! `/files/browse`, ...), as libprocess answers it: a JSON body becomes
//! `callback(<json>);` with `Content-Type: text/javascript` (the stock
//! Mesos web UI reads agents this way). The callback must be a (dotted)
//! JavaScript name ([`keel_telemetry::metrics::valid_callback`]).

use std::collections::HashMap;

use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Bodies wrapped at most this large (the state of a busy agent fits).
pub const MAX_WRAPPED: usize = 64 << 20;

/// The `jsonp` parameter of a request's query, decoded.
pub fn callback(uri: &axum::http::Uri) -> Option<String> {
    let Query(mut q) = Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
    q.remove("jsonp")
}

/// Wraps `json` for `cb`.
pub fn wrap(cb: &str, json: &[u8]) -> String {
    format!("{cb}({});", String::from_utf8_lossy(json))
}

/// The middleware: GET requests with `?jsonp=` get their JSON answer
/// wrapped; an invalid callback is 400 before anything is answered.
pub async fn layer(req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let Some(cb) = callback(req.uri()) else {
        return next.run(req).await;
    };
    if !keel_telemetry::metrics::valid_callback(&cb) {
        let shown: String = cb.chars().take(64).collect();
        return (
            StatusCode::BAD_REQUEST,
            format!("invalid jsonp callback {shown:?}: letters, digits, '_', '$' and '.' only"),
        )
            .into_response();
    }
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, MAX_WRAPPED).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let text = wrap(&cb, &bytes);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_comes_from_the_query() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        assert_eq!(
            callback(&uri("/files/read?path=/x&jsonp=angular.cb_0")).as_deref(),
            Some("angular.cb_0")
        );
        assert_eq!(callback(&uri("/state?path=/x")), None);
        assert_eq!(callback(&uri("/state")), None);
        assert_eq!(wrap("cb", br#"{"a":1}"#), r#"cb({"a":1});"#);
    }
}
