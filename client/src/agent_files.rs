//! One agent's files API (`/files/browse`, `/files/read`,
//! `/files/download`) on its own port, as any process reaches it: over TLS
//! checked as that agent (`keel_pki::agent_port`) when there is cluster
//! TLS material, presenting this process's certificate if it has one,
//! else plain HTTP. A sandbox grant, when given, goes as
//! `Authorization: Bearer`.
//!
//! [`crate::Sandbox`] (a caller with its own grant from the master) and
//! the master's LIST_FILES / READ_FILE (a grant it signs for a caller it
//! authorized) are both built on it.

use std::time::Duration;

use keel_pki::Material;
use reqwest::{StatusCode, header};
use serde::Deserialize;

use crate::{Client, ClientError};

/// An answer of `/files/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FileChunk {
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub offset: u64,
}

/// One entry of `/files/browse` (Mesos' legacy `FileInfo`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileEntry {
    pub path: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub nlink: u64,
    /// Seconds since the epoch.
    #[serde(default)]
    pub mtime: f64,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub gid: String,
}

/// Exact bytes of a file (`/files/download` with a `Range`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileBytes {
    /// The whole file's size.
    pub size: u64,
    pub data: Vec<u8>,
}

/// The files API of one agent's port.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    http: reqwest::Client,
    base: String,
    /// The agent's v1 operator API (`/api/v1`).
    api: String,
}

/// The timeout of one browse or read.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentFiles {
    /// The files API of agent `agent_id` at `address` (`HOST:PORT`).
    pub fn new(
        tls: Option<&Material>,
        agent_id: &str,
        address: &str,
    ) -> Result<AgentFiles, ClientError> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(material) = tls {
            let config = keel_pki::agent_port::agent_client_config(material, agent_id)?;
            builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(&config));
        }
        let http = builder.build().map_err(|e| ClientError::Http {
            url: address.to_string(),
            source: e,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(AgentFiles {
            http,
            base: format!("{scheme}://{address}/files"),
            api: format!("{scheme}://{address}/api/v1"),
        })
    }

    /// `POST /api/v1` with a JSON call (the agent's v1 operator API), as
    /// the agent answers it, whatever the status.
    pub async fn post_call(
        &self,
        call: &serde_json::Value,
        grant: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .http
            .post(&self.api)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(call.to_string())
            .timeout(REQUEST_TIMEOUT);
        if let Some(grant) = grant {
            req = req.bearer_auth(grant);
        }
        req.send().await.map_err(|e| ClientError::Http {
            url: self.api.clone(),
            source: e,
        })
    }

    /// `GET /files/{endpoint}?query` as the agent answers it, whatever
    /// the status.
    pub async fn send(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        grant: Option<&str>,
        range: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/{endpoint}", self.base);
        let mut req = self.http.get(&url).query(query);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(grant) = grant {
            req = req.bearer_auth(grant);
        }
        if let Some(range) = range {
            req = req.header(header::RANGE, range);
        }
        req.send()
            .await
            .map_err(|e| ClientError::Http { url, source: e })
    }

    /// A directory's entries, or a file as its own one entry.
    pub async fn browse(
        &self,
        path: &str,
        grant: Option<&str>,
    ) -> Result<Vec<FileEntry>, ClientError> {
        let resp = self
            .send(
                "browse",
                &[("path", path)],
                grant,
                None,
                Some(REQUEST_TIMEOUT),
            )
            .await?;
        json(success(resp).await?).await
    }

    /// Up to `length` bytes of the file from `offset`, exactly as stored,
    /// and the file's size; no data at or past the end.
    pub async fn read_bytes(
        &self,
        path: &str,
        offset: u64,
        length: u64,
        grant: Option<&str>,
    ) -> Result<FileBytes, ClientError> {
        let range = match length {
            0 => format!("bytes={offset}-{offset}"),
            n => format!("bytes={offset}-{}", offset.saturating_add(n - 1)),
        };
        let resp = self
            .send(
                "download",
                &[("path", path)],
                grant,
                Some(&range),
                Some(REQUEST_TIMEOUT),
            )
            .await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            let size = total_of(resp.headers()).unwrap_or(offset);
            return Ok(FileBytes {
                size,
                data: Vec::new(),
            });
        }
        let resp = success(resp).await?;
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        let size = if partial {
            total_of(resp.headers())
        } else {
            resp.content_length()
        };
        let url = resp.url().to_string();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http { url, source: e })?;
        let mut data = if partial {
            body.to_vec()
        } else {
            // An agent that ignores `Range` sends the whole file.
            body.get(offset.min(body.len() as u64) as usize..)
                .unwrap_or_default()
                .to_vec()
        };
        data.truncate(length as usize);
        Ok(FileBytes {
            size: size.unwrap_or(body.len() as u64),
            data,
        })
    }
}

/// The `SIZE` of `Content-Range: bytes A-B/SIZE` (or `bytes */SIZE`).
fn total_of(headers: &header::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?
        .rsplit_once('/')?
        .1
        .trim()
        .parse()
        .ok()
}

/// The response if it succeeded; its status and reason as the error
/// otherwise.
pub(crate) async fn success(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let url = resp.url().to_string();
    let text = resp.text().await.unwrap_or_default();
    Err(ClientError::Status {
        method: "GET".into(),
        url,
        status: status.as_u16(),
        reason: crate::reason(&text),
    })
}

pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, ClientError> {
    let url = resp.url().to_string();
    let bytes = resp.bytes().await.map_err(|e| ClientError::Http {
        url: url.clone(),
        source: e,
    })?;
    Client::decode(url, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_totals() {
        let mut h = header::HeaderMap::new();
        assert_eq!(total_of(&h), None);
        h.insert(header::CONTENT_RANGE, "bytes 0-9/120".parse().unwrap());
        assert_eq!(total_of(&h), Some(120));
        h.insert(header::CONTENT_RANGE, "bytes */7".parse().unwrap());
        assert_eq!(total_of(&h), Some(7));
    }
}
