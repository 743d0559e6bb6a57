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
use tokio::sync::Mutex;

use crate::agent_files::{self, AgentFiles, FileChunk, FileEntry};
use crate::keel::path_segment;
use crate::{Client, ClientError};

/// The sandboxes of one framework on one agent.
pub struct Sandbox<'a> {
    client: &'a Client,
    files: AgentFiles,
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
        let tls = self.tls.as_ref();
        Ok(Sandbox {
            client: self,
            files: AgentFiles::new(tls, agent_id, address)?,
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
        let mut fresh = false;
        loop {
            let grant = self.grant(fresh).await?;
            let resp = self
                .files
                .send(endpoint, query, grant.as_deref(), None, timeout)
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED && self.granted && !fresh {
                fresh = true;
                continue;
            }
            return agent_files::success(resp).await;
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

    /// A call to the agent's v1 operator API (`POST /api/v1`), answered
    /// with one of its typed answers; once more with a new grant when the
    /// agent refused the one sent.
    pub async fn agent_call(
        &self,
        call: &serde_json::Value,
    ) -> Result<keel_api::agent::Response, ClientError> {
        let mut fresh = false;
        loop {
            let grant = self.grant(fresh).await?;
            let resp = self.files.post_call(call, grant.as_deref()).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && self.granted && !fresh {
                fresh = true;
                continue;
            }
            return agent_files::json(agent_files::success(resp).await?).await;
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let resp = self
            .get(endpoint, query, Some(Duration::from_secs(10)))
            .await?;
        agent_files::json(resp).await
    }
}
