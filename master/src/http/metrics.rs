//! `/metrics/snapshot` (Mesos' flat JSON, `?jsonp=` honoured) and
//! `/metrics` (OpenMetrics text, mesos_exporter's names), on every master:
//! a follower reports `master/elected` 0. Both authenticate as the other
//! read routes do (`auth.rs`, the read-only realm).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::operator::{GetMetrics, Metric};
use keel_telemetry::metrics::{OPENMETRICS_CONTENT_TYPE, render_snapshot};
use serde::Deserialize;

use super::plain;
use crate::core::Master;

#[derive(Debug, Deserialize)]
pub struct SnapshotQuery {
    jsonp: Option<String>,
}

pub async fn snapshot(
    State(master): State<Arc<Master>>,
    Query(q): Query<SnapshotQuery>,
) -> Response {
    let snapshot = master.metrics().snapshot(&master.metrics_frame());
    match render_snapshot(&snapshot, q.jsonp.as_deref()) {
        Ok(r) => with_type(r.body, r.content_type),
        Err(e) => plain(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub async fn prometheus(State(master): State<Arc<Master>>) -> Response {
    match master.metrics().prometheus(&master.metrics_frame()) {
        Ok(text) => with_type(text, OPENMETRICS_CONTENT_TYPE),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET_METRICS`: the snapshot as `{name, value}` pairs.
pub fn get_metrics(master: &Master) -> GetMetrics {
    GetMetrics {
        metrics: master
            .metrics()
            .snapshot(&master.metrics_frame())
            .into_iter()
            .map(|(name, value)| Metric {
                name,
                value: Some(if value.is_finite() { value } else { 0.0 }),
            })
            .collect(),
    }
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
