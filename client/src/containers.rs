//! The nested-container calls of an agent's v1 operator API, typed with
//! `keel_api::agent::containers`: on one agent's port ([`ContainerApi::agent`])
//! or relayed by the master for one task ([`Client::task_container`]), so
//! that an operator needs no route to the agent. Output comes back as a
//! stream of `ProcessIO` records ([`OutputStream`]); input goes as a
//! streaming request body of records ([`ContainerApi::attach_input`]).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use keel_api::agent::containers::{
    ContainerCall, ContainerId, InputRecord, ProcessIo, TaskContainer, WaitAnswer,
    attach_input_first, attach_input_record, call_json, parse_wait_response,
};
use keel_api::recordio::{self, Decoder};
use keel_pki::Material;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use crate::transport::Request;
use crate::{Client, ClientError};

/// Where the calls go: an agent's `/api/v1`, or the master's relay of it.
#[derive(Debug, Clone)]
pub struct ContainerApi {
    http: reqwest::Client,
    /// `<scheme>://<host:port>` of an agent, or the master's relay URL.
    base: String,
    url: String,
    /// A sandbox grant sent as `Authorization: Bearer` (to an agent).
    bearer: Option<String>,
}

/// An agent's answer, relayed as it comes.
pub struct Relayed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// The records of a streaming answer.
pub struct OutputStream {
    url: String,
    body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: Decoder,
    pending: std::collections::VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStream")
            .field("url", &self.url)
            .finish()
    }
}

impl OutputStream {
    /// The next record; `None` once the container's output ended.
    pub async fn next(&mut self) -> Result<Option<ProcessIo>, ClientError> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return serde_json::from_slice(&r).map(Some).map_err(|source| {
                    ClientError::Decode {
                        url: self.url.clone(),
                        source,
                    }
                });
            }
            match self.body.next().await {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(ClientError::Http {
                        url: self.url.clone(),
                        source,
                    });
                }
                Some(Ok(bytes)) => self.pending.extend(self.decoder.push(&bytes)?),
            }
        }
    }
}

/// How long a non-streaming call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl ContainerApi {
    /// The API of agent `agent_id` at `address` (`HOST:PORT`): TLS checked
    /// as that agent when there is TLS material, plain HTTP otherwise.
    pub fn agent(
        tls: Option<&Material>,
        agent_id: &str,
        address: &str,
    ) -> Result<ContainerApi, ClientError> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(material) = tls {
            let config = keel_pki::agent_port::agent_client_config(material, agent_id)?;
            builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(&config));
        }
        let http = builder.build().map_err(|source| ClientError::Http {
            url: address.to_string(),
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{address}");
        Ok(ContainerApi {
            http,
            url: format!("{base}/api/v1"),
            base,
            bearer: None,
        })
    }

    /// Sends `grant` (a sandbox grant for the agent) with every call.
    pub fn with_grant(mut self, grant: Option<String>) -> Self {
        self.bearer = grant;
        self
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.bearer {
            Some(token) => r.bearer_auth(token),
            None => r,
        }
    }

    fn post(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.request(Method::POST, &self.url)
            .header("Content-Type", "application/json")
            .body(body)
    }

    /// Sends a request to `/api/v1` as it is (`headers` and a streaming
    /// `body`): the master's relay. The answer is the agent's, unread.
    pub async fn relay<S>(&self, headers: &[(&str, &str)], body: S) -> Result<Relayed, ClientError>
    where
        S: futures::TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let mut r = self
            .request(Method::POST, &self.url)
            .body(reqwest::Body::wrap_stream(body));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let response = r.send().await.map_err(|source| ClientError::Http {
            url: self.url.clone(),
            source,
        })?;
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        Ok(Relayed {
            status: response.status().as_u16(),
            headers,
            body: response
                .bytes_stream()
                .map(|r| r.map_err(std::io::Error::other))
                .boxed(),
        })
    }

    /// The container of a running task, asked of its agent (Keel's
    /// `/api/keel/v1/tasks/<framework>/<task>/container`).
    pub async fn task_container_of(
        &self,
        framework_id: &str,
        task_id: &str,
    ) -> Result<ContainerId, ClientError> {
        let url = format!(
            "{}/api/keel/v1/tasks/{framework_id}/{task_id}/container",
            self.base
        );
        let response = self
            .request(Method::GET, &url)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        task_container(response, url).await
    }

    async fn refused(&self, response: reqwest::Response) -> ClientError {
        let status = response.status().as_u16();
        let reason = response.text().await.unwrap_or_default();
        ClientError::Status {
            method: "POST".into(),
            url: self.url.clone(),
            status,
            reason,
        }
    }

    /// A call with no data in its answer; its status (200, or 202 for a
    /// container id in use).
    pub async fn call(&self, call: &ContainerCall) -> Result<StatusCode, ClientError> {
        let (status, _) = self.call_body(call).await?;
        Ok(status)
    }

    async fn call_body(&self, call: &ContainerCall) -> Result<(StatusCode, Bytes), ClientError> {
        let body = serde_json::to_vec(&call_json(call)).unwrap_or_default();
        let response = self
            .post(body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: self.url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refused(response).await);
        }
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.url.clone(),
            source,
        })?;
        Ok((status, bytes))
    }

    /// WAIT_CONTAINER (or WAIT_NESTED_CONTAINER): waits until it ended.
    pub async fn wait(&self, call: &ContainerCall) -> Result<WaitAnswer, ClientError> {
        let body = serde_json::to_vec(&call_json(call)).unwrap_or_default();
        let response = self
            .post(body)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: self.url.clone(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.url.clone(),
            source,
        })?;
        parse_wait_response(&bytes).ok_or_else(|| ClientError::UnexpectedAnswer {
            call: call.type_name().into(),
            got: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// LAUNCH_NESTED_CONTAINER_SESSION or ATTACH_CONTAINER_OUTPUT: the
    /// output stream.
    pub async fn stream(&self, call: &ContainerCall) -> Result<OutputStream, ClientError> {
        let body = serde_json::to_vec(&call_json(call)).unwrap_or_default();
        let response = self
            .post(body)
            .header("Accept", "application/recordio")
            .header("Message-Accept", "application/json")
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: self.url.clone(),
                source,
            })?;
        if response.status() != StatusCode::OK {
            return Err(self.refused(response).await);
        }
        Ok(OutputStream {
            url: self.url.clone(),
            body: response.bytes_stream().boxed(),
            decoder: Decoder::default(),
            pending: Default::default(),
        })
    }

    /// ATTACH_CONTAINER_INPUT: sends `input`'s records as they come, until
    /// it closes (then the agent answers).
    pub async fn attach_input(
        &self,
        id: &ContainerId,
        input: mpsc::Receiver<InputRecord>,
    ) -> Result<(), ClientError> {
        let first = recordio::encode(&attach_input_first(id));
        let head = futures::stream::once(async move { Ok(Bytes::from(first)) });
        let rest = futures::stream::unfold(input, |mut rx| async move {
            let record = rx.recv().await?;
            let bytes = Bytes::from(recordio::encode(&attach_input_record(&record)));
            Some((Ok::<_, std::io::Error>(bytes), rx))
        });
        let records = head.chain(rest);
        let response = self
            .request(Method::POST, &self.url)
            .header("Content-Type", "application/recordio")
            .header("Message-Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(records))
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: self.url.clone(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(self.refused(response).await);
        }
        Ok(())
    }
}

impl Client {
    /// The container of task `task_id` (of `framework_id`, if the id is
    /// not unique) and the container API relayed by the leading master
    /// (`/api/keel/v1/tasks/<task>/...`), authorized as access to the
    /// task's sandbox.
    pub async fn task_container(
        &self,
        task_id: &str,
        framework_id: Option<&str>,
    ) -> Result<(ContainerApi, ContainerId), ClientError> {
        let query = framework_id
            .map(|f| format!("?framework_id={f}"))
            .unwrap_or_default();
        let path = format!("/api/keel/v1/tasks/{task_id}/container{query}");
        let answer = self
            .transport
            .send(Request {
                method: Method::GET,
                path: &path,
                headers: &[],
                body: None,
                stream: false,
            })
            .await?;
        let container_id = task_container(answer.response, answer.url.clone()).await?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", answer.master);
        let api = ContainerApi {
            http: self.transport.http(),
            url: format!("{base}/api/keel/v1/tasks/{task_id}/api/v1{query}"),
            base,
            bearer: None,
        };
        Ok((api, container_id))
    }
}

/// A `GET .../container` answer (from an agent, or relayed by the
/// master): the task's container id, or the refusal as an error.
async fn task_container(
    response: reqwest::Response,
    url: String,
) -> Result<ContainerId, ClientError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(|source| ClientError::Http {
        url: url.clone(),
        source,
    })?;
    if !status.is_success() {
        return Err(ClientError::Status {
            method: "GET".into(),
            url,
            status: status.as_u16(),
            reason: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice::<TaskContainer>(&bytes)
        .map(|t| t.container_id)
        .map_err(|source| ClientError::Decode { url, source })
}
