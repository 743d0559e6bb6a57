//! The client against fake masters on loopback: leader discovery over the
//! list (a dead master, a follower's 307, a 503 without leader), the error
//! naming every master tried, and a scheduler subscription over a RecordIO
//! stream with its `Mesos-Stream-Id`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_api::mesos::{FrameworkInfo, TaskState};
use keel_client::scheduler::Event;
use keel_client::{Client, ClientError};
use serde_json::json;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A port nothing listens on.
fn dead() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn leader() -> SocketAddr {
    let health = || async {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"type":"GET_HEALTH","get_health":{"healthy":true}}"#,
        )
    };
    serve(
        Router::new()
            .route("/api/v1", post(health))
            .route("/api/keel/v1/agents", get(|| async { r#"{"agents":[]}"# }))
            .route(
                "/api/keel/v1/agents/{id}",
                get(|| async { (StatusCode::NOT_FOUND, r#"{"error":"unknown agent nope"}"#) }),
            ),
    )
    .await
}

async fn follower_of(leader: SocketAddr) -> SocketAddr {
    serve(
        Router::new().fallback(move |uri: axum::http::Uri| async move {
            let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
            let loc = format!("//{leader}{}", uri.path());
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
            r
        }),
    )
    .await
}

async fn leaderless() -> SocketAddr {
    serve(
        Router::new().fallback(|| async { (StatusCode::SERVICE_UNAVAILABLE, "No leader elected") }),
    )
    .await
}

#[tokio::test]
async fn the_leader_is_found_past_dead_and_following_masters() {
    let l = leader().await;
    let f = follower_of(l).await;
    let n = leaderless().await;
    let list = format!("{},{n},{f}", dead());
    let c = Client::new(&list).unwrap();
    assert!(c.get_health().await.unwrap());
    assert!(c.keel_agents().await.unwrap().agents.is_empty());

    // Keel's errors come back as the master's reason.
    let e = Client::new(&l.to_string())
        .unwrap()
        .keel_agent("nope")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().contains("unknown agent nope"), "{e}");
}

#[tokio::test]
async fn no_leader_names_every_master_tried() {
    let (d, n) = (dead(), leaderless().await);
    let f = follower_of(d).await;
    let c = Client::new(&format!("{d},{n},{f}")).unwrap();
    let e = c.get_health().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::NoMaster { .. }), "{e:?}");
    for m in [d, n, f] {
        assert!(text.contains(&m.to_string()), "{text}");
    }
    assert!(text.contains("No leader elected"), "{text}");
    assert!(text.contains(&format!("redirected to {d}")), "{text}");
}

#[tokio::test]
async fn without_discovery_a_follower_says_who_leads() {
    let l = leader().await;
    let f = follower_of(l).await;
    let c = Client::builder(&format!("{f},{l}"))
        .discover_leader(false)
        .build()
        .unwrap();
    match c.get_health().await {
        Err(ClientError::NotLeader { master, leader }) => {
            assert_eq!(master, f.to_string());
            assert_eq!(leader, Some(l.to_string()));
        }
        other => panic!("{other:?}"),
    }
}

/// A scheduler endpoint: SUBSCRIBE streams SUBSCRIBED, OFFERS and an UPDATE
/// as RecordIO records; calls must carry the stream id.
async fn scheduler(calls: Arc<Mutex<Vec<serde_json::Value>>>) -> SocketAddr {
    async fn handle(
        State(calls): State<Arc<Mutex<Vec<serde_json::Value>>>>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let call: serde_json::Value = serde_json::from_str(&body).unwrap();
        if call["type"] == "SUBSCRIBE" {
            let events = [
                json!({"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "fw-1"},
                    "heartbeat_interval_seconds": 15.0}}),
                json!({"type": "HEARTBEAT"}),
                json!({"type": "OFFERS", "offers": {"offers": [{"id": {"value": "o1"},
                    "framework_id": {"value": "fw-1"}, "agent_id": {"value": "a1"}, "hostname": "h",
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*"}]}]}}),
                json!({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"},
                    "state": "TASK_RUNNING", "agent_id": {"value": "a1"}, "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}}),
            ];
            let stream = futures::stream::iter(events.map(|e| {
                let text = e.to_string();
                Ok::<_, std::io::Error>(format!("{}\n{text}", text.len()))
            }))
            .chain(futures::stream::pending());
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert("Mesos-Stream-Id", HeaderValue::from_static("stream-1"));
            return r;
        }
        assert_eq!(headers["Mesos-Stream-Id"], "stream-1");
        calls.lock().unwrap().push(call);
        StatusCode::ACCEPTED.into_response()
    }
    use futures::StreamExt as _;
    serve(
        Router::new()
            .route("/api/v1/scheduler", post(handle))
            .with_state(calls),
    )
    .await
}

#[tokio::test]
async fn a_subscription_reads_typed_events_and_calls_with_its_stream_id() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let s = scheduler(calls.clone()).await;
    let f = follower_of(s).await;
    let c = Client::new(&format!("{},{f}", dead())).unwrap();
    let info: FrameworkInfo = keel_api::mesos::parse(json!({"user": "u", "name": "n"})).unwrap();
    let mut sub = c.subscribe_framework(info).await.unwrap();
    assert_eq!(sub.framework_id().value, "fw-1");
    assert_eq!(sub.stream_id(), "stream-1");
    assert_eq!(sub.master(), s.to_string());
    assert!(matches!(sub.next().await, Some(Ok(Event::Heartbeat))));
    let Some(Ok(Event::Offers(offers))) = sub.next().await else {
        panic!("no offers")
    };
    assert_eq!(offers[0].scalar("cpus"), 2.0);
    sub.decline(vec![offers[0].id.clone()], Some(1.0))
        .await
        .unwrap();
    let Some(Ok(Event::Update(status))) = sub.next().await else {
        panic!("no update")
    };
    assert_eq!(status.state, TaskState::TASK_RUNNING);
    assert!(sub.acknowledge(&status).await.unwrap());
    sub.revive(vec![]).await.unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            json!({"type": "DECLINE", "framework_id": {"value": "fw-1"},
                   "decline": {"offer_ids": [{"value": "o1"}], "filters": {"refuse_seconds": 1.0}}}),
            json!({"type": "ACKNOWLEDGE", "framework_id": {"value": "fw-1"},
                   "acknowledge": {"agent_id": {"value": "a1"}, "task_id": {"value": "t"},
                                   "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}),
            json!({"type": "REVIVE", "framework_id": {"value": "fw-1"}}),
        ]
    );
}

#[test]
fn the_blocking_client_works_without_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let l = rt.block_on(leader());
    let c = keel_client::blocking::Client::new(&format!("{},{l}", dead())).unwrap();
    assert!(c.get_health().unwrap());
    assert!(c.keel_agents().unwrap().agents.is_empty());
}
