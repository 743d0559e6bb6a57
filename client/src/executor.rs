//! A custom executor's side of the v1 executor API (`POST /api/v1/executor`
//! on its agent, `docs/design/0014-custom-executors.md`): where to reach
//! the agent from the environment the agent gave the executor, SUBSCRIBE
//! and its event stream, UPDATE and MESSAGE.

use std::time::Duration;

use bytes::Bytes;
use keel_api::executor::Event;
use keel_api::mesos::{TaskState, base64_encode};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::ClientError;
use crate::records::{self, Stream};
use crate::transport::{Request, Transport};

const PATH: &str = "/api/v1/executor";

/// What the agent tells an executor in its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorEnv {
    /// `MESOS_AGENT_ENDPOINT`: `host:port`.
    pub agent_endpoint: String,
    /// `MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`.
    pub framework_id: String,
    pub executor_id: String,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, sent as a bearer token.
    pub token: Option<String>,
}

impl ExecutorEnv {
    /// From this process's environment.
    pub fn from_env() -> Result<ExecutorEnv, ClientError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                ClientError::Subscribe(format!("{name} is not set: not run by an agent"))
            })
        };
        Ok(ExecutorEnv {
            agent_endpoint: var("MESOS_AGENT_ENDPOINT")?,
            framework_id: var("MESOS_FRAMEWORK_ID")?,
            executor_id: var("MESOS_EXECUTOR_ID")?,
            token: std::env::var("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }
}

/// An executor's link to its agent.
pub struct ExecutorClient {
    env: ExecutorEnv,
    transport: Transport,
}

/// The executor's events, as its agent sends them.
pub struct ExecutorEvents {
    stream: Stream<Event>,
}

impl ExecutorEvents {
    /// The next event; `None` once the agent ended the stream.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.stream.next().await
    }
}

impl ExecutorClient {
    pub fn new(env: ExecutorEnv) -> Result<ExecutorClient, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &env.token {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::Credentials(e.to_string()))?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let transport = Transport::new(
            vec![env.agent_endpoint.clone()],
            false,
            Duration::from_secs(30),
            Duration::from_secs(5),
            None,
            headers,
        )?;
        Ok(ExecutorClient { env, transport })
    }

    fn call(&self, kind: &str, body: Option<(&str, serde_json::Value)>) -> Bytes {
        let mut call = json!({
            "type": kind,
            "framework_id": {"value": self.env.framework_id},
            "executor_id": {"value": self.env.executor_id},
        });
        if let Some((field, value)) = body {
            call[field] = value;
        }
        Bytes::from(call.to_string())
    }

    /// SUBSCRIBE: the event stream (SUBSCRIBED first, then LAUNCH, ...).
    pub async fn subscribe(&self) -> Result<ExecutorEvents, ClientError> {
        let body = self.call("SUBSCRIBE", Some(("subscribe", json!({}))));
        let answer = records::subscribe(&self.transport, PATH, body).await?;
        let stream = Stream::read(answer.response, answer.url, |record| {
            let json: serde_json::Value = serde_json::from_slice(record)?;
            Event::from_json(json).map_err(serde::de::Error::custom)
        });
        Ok(ExecutorEvents { stream })
    }

    async fn send(&self, kind: &str, body: Bytes) -> Result<(), ClientError> {
        let answer = self
            .transport
            .send(Request {
                method: Method::POST,
                path: PATH,
                headers: &[("Content-Type", "application/json")],
                body: Some(body),
                stream: false,
            })
            .await?;
        let status = answer.response.status();
        if status != StatusCode::ACCEPTED {
            return Err(ClientError::Status {
                method: kind.to_string(),
                url: answer.url,
                status: status.as_u16(),
                reason: answer.response.text().await.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// UPDATE: `task_id` is in `state` (a fresh uuid; the agent sends the
    /// scheduler's acknowledgement back as ACKNOWLEDGED with it).
    pub async fn update(
        &self,
        task_id: &str,
        state: TaskState,
        message: Option<&str>,
    ) -> Result<(), ClientError> {
        let uuid = base64_encode(uuid::Uuid::new_v4().as_bytes());
        let mut status = json!({
            "task_id": {"value": task_id},
            "state": state.name(),
            "source": "SOURCE_EXECUTOR",
            "uuid": uuid,
            "executor_id": {"value": self.env.executor_id},
        });
        if let Some(m) = message {
            status["message"] = json!(m);
        }
        let body = self.call("UPDATE", Some(("update", json!({ "status": status }))));
        self.send("UPDATE", body).await
    }

    /// MESSAGE: `data` for the framework's scheduler.
    pub async fn message(&self, data: &[u8]) -> Result<(), ClientError> {
        let body = self.call(
            "MESSAGE",
            Some(("message", json!({"data": base64_encode(data)}))),
        );
        self.send("MESSAGE", body).await
    }
}
