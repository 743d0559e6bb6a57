//! An agent's sandboxes: Mesos' files API on the agent's own port
//! (`/files/read`, `/files/download`, `/files/browse`).
//!
//! With TLS (the client has the cluster CA), the agent is reached over
//! TLS and checked as the agent it is (its certificate names its agent id,
//! `keel_pki::agent_port`), and the request carries either the client's
//! certificate (admin and operator certificates read every sandbox) or a
//! sandbox grant the master signed for this caller
//! (`POST /api/keel/v1/agents/{id}/grant`, under `access_sandboxes`),
//! asked for again when the agent says it expired. Without TLS the
//! agent's port is plain HTTP and open.

use std::time::Duration;

use keel_api::keel::{GrantRequest, SandboxGrant};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::keel::path_segment;
use crate::{Client, ClientError};

/// An answer of `/files/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FileChunk {
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub offset: u64,
}

/// One entry of `/files/browse`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileEntry {
    pub path: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub mode: String,
}

/// The sandboxes of one framework on one agent.
pub struct Sandbox<'a> {
    client: &'a Client,
    http: reqwest::Client,
    base: String,
    agent_id: String,
    framework_id: String,
    /// Whether requests carry a grant (TLS without a certificate of our own).
    granted: bool,
    grant: Mutex<Option<String>>,
}

impl Client {
    /// The sandboxes of framework `framework_id` on agent `agent_id`,
    /// whose port is `address` (`HOST:PORT`, as `GET_AGENTS` gives it).
    pub fn sandbox(
        &self,
        agent_id: &str,
        address: &str,
        framework_id: &str,
    ) -> Result<Sandbox<'_>, ClientError> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        let tls = self.tls.as_ref();
        if let Some(material) = tls {
            let config = keel_pki::agent_port::agent_client_config(material, agent_id)?;
            builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(&config));
        }
        let http = builder.build().map_err(|e| ClientError::Http {
            url: address.to_string(),
            source: e,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Sandbox {
            client: self,
            http,
            base: format!("{scheme}://{address}/files"),
            agent_id: agent_id.to_string(),
            framework_id: framework_id.to_string(),
            granted: tls.is_some_and(|m| !matches!(m.identity(), Ok(Some(_)))),
            grant: Mutex::new(None),
        })
    }

    /// `POST /api/keel/v1/agents/{id}/grant`.
    pub async fn sandbox_grant(
        &self,
        agent_id: &str,
        frameworks: &[String],
    ) -> Result<SandboxGrant, ClientError> {
        let path = format!("/api/keel/v1/agents/{}/grant", path_segment(agent_id));
        let body = GrantRequest {
            frameworks: frameworks.to_vec(),
        };
        let (url, bytes) = self.send_json(Method::POST, &path, &body).await?;
        Self::decode(url, &bytes)
    }
}

impl Sandbox<'_> {
    /// The grant to send, asked for when there is none (or `fresh`).
    async fn grant(&self, fresh: bool) -> Result<Option<String>, ClientError> {
        if !self.granted {
            return Ok(None);
        }
        let mut grant = self.grant.lock().await;
        if fresh || grant.is_none() {
            let frameworks = [self.framework_id.clone()];
            *grant = Some(
                self.client
                    .sandbox_grant(&self.agent_id, &frameworks)
                    .await?
                    .token,
            );
        }
        Ok(grant.clone())
    }

    /// `GET /files/{endpoint}?query`, a success; once more with a new
    /// grant when the agent refused the one sent (it expired).
    async fn get(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/{endpoint}", self.base);
        let mut fresh = false;
        loop {
            let mut req = self.http.get(&url).query(query);
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            if let Some(grant) = self.grant(fresh).await? {
                req = req.bearer_auth(grant);
            }
            let resp = req.send().await.map_err(|e| ClientError::Http {
                url: url.clone(),
                source: e,
            })?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && self.granted && !fresh {
                fresh = true;
                continue;
            }
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                return Err(ClientError::Status {
                    method: "GET".into(),
                    url,
                    status: status.as_u16(),
                    reason: crate::reason(&text),
                });
            }
            return Ok(resp);
        }
    }

    /// The whole file, as a response to stream (`/files/download`).
    pub async fn download(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        self.get("download", &[("path", path)], None).await
    }

    /// Up to 64 KiB of the file from `offset` (`/files/read`).
    pub async fn read(&self, path: &str, offset: u64) -> Result<FileChunk, ClientError> {
        let offset = offset.to_string();
        self.get_json("read", &[("path", path), ("offset", offset.as_str())])
            .await
    }

    /// A directory's entries (`/files/browse`).
    pub async fn browse(&self, path: &str) -> Result<Vec<FileEntry>, ClientError> {
        self.get_json("browse", &[("path", path)]).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let resp = self
            .get(endpoint, query, Some(Duration::from_secs(10)))
            .await?;
        let url = resp.url().to_string();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Http {
            url: url.clone(),
            source: e,
        })?;
        Client::decode(url, &bytes)
    }
}
