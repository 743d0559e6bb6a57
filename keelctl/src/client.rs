//! HTTP access to the masters: tries each given master in turn.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value as Json;

pub struct Client {
    masters: Vec<String>,
    http: reqwest::Client,
}

/// Percent-encodes what is not safe in one URL path segment.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    pub fn new(masters: &str) -> Result<Self> {
        let masters: Vec<String> = masters
            .split(',')
            .map(|m| m.trim().trim_start_matches("http://").to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if masters.is_empty() {
            bail!("--master is empty");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot build http client")?;
        Ok(Client { masters, http })
    }

    pub fn first_master(&self) -> &str {
        &self.masters[0]
    }

    /// Sends one request to the first master that answers (redirects to the
    /// leader are followed) and returns its JSON; a non-2xx answer is an
    /// error carrying the server's reason.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Json> {
        let mut last = anyhow!("no master tried");
        for m in &self.masters {
            let url = format!("http://{m}{path}");
            let mut req = self.http.request(method.clone(), &url);
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = anyhow!("cannot reach master {m}: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let text = resp
                .text()
                .await
                .with_context(|| format!("reading {url}"))?;
            if !status.is_success() {
                let reason = serde_json::from_str::<Json>(&text)
                    .ok()
                    .and_then(|j| j.get("error").and_then(Json::as_str).map(str::to_string))
                    .unwrap_or(text);
                bail!("{url}: {status}: {reason}");
            }
            return serde_json::from_str(&text).with_context(|| format!("{url}: invalid JSON"));
        }
        Err(last)
    }

    /// POSTs a Mesos v1 operator call without a body (`GET_*`).
    pub async fn operator_call(&self, kind: &str) -> Result<Json> {
        let body = serde_json::json!({ "type": kind }).to_string();
        self.request(reqwest::Method::POST, "/api/v1", Some(body))
            .await
    }

    /// Sends a JSON request (`POST`, `DELETE`, ...) to the leading master.
    pub async fn send_json(&self, method: &str, path: &str, body: Option<Json>) -> Result<Json> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        self.request(method, path, body.map(|b| b.to_string()))
            .await
    }

    /// GETs `path` from the first master that answers.
    pub async fn get_json(&self, path: &str) -> Result<Json> {
        self.request(reqwest::Method::GET, path, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("abc-S0"), "abc-S0");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
