//! Keel's own API (`/api/keel/v1`): agents with their inventories, the
//! replicated masters, and tokens.

use keel_api::inventory::Inventory;
use keel_api::keel::{
    AddMaster, AgentDetail, Agents, Cluster, CreateToken, CreatedToken, PendingAgents, Tokens,
};
use reqwest::Method;

use crate::{Client, ClientError};

/// Percent-encodes what is not safe in one URL path segment.
pub(crate) fn path_segment(s: &str) -> String {
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
    /// `GET /api/keel/v1/agents`: every agent the master knows, whatever
    /// its state.
    pub async fn keel_agents(&self) -> Result<Agents, ClientError> {
        self.get_json("/api/keel/v1/agents").await
    }

    /// `GET /api/keel/v1/agents/{id}`: one agent with its inventory.
    pub async fn keel_agent(&self, id: &str) -> Result<AgentDetail, ClientError> {
        self.get_json(&format!("/api/keel/v1/agents/{}", path_segment(id)))
            .await
    }

    /// `GET /api/keel/v1/agents/{id}/inventory`.
    pub async fn inventory(&self, id: &str) -> Result<Inventory, ClientError> {
        self.get_json(&format!(
            "/api/keel/v1/agents/{}/inventory",
            path_segment(id)
        ))
        .await
    }

    /// `GET /api/keel/v1/masters`: the cluster as the master that answers
    /// sees it.
    pub async fn masters(&self) -> Result<Cluster, ClientError> {
        self.get_json("/api/keel/v1/masters").await
    }

    /// `POST /api/keel/v1/masters`: adds the master at `addr` (`ip:port`).
    pub async fn add_master(&self, addr: &str) -> Result<Cluster, ClientError> {
        let body = AddMaster {
            add: addr.to_string(),
        };
        let (url, bytes) = self
            .send_json(Method::POST, "/api/keel/v1/masters", &body)
            .await?;
        Self::decode(url, &bytes)
    }

    /// `DELETE /api/keel/v1/masters/{id}`.
    pub async fn remove_master(&self, id: u64) -> Result<Cluster, ClientError> {
        let (url, bytes) = self
            .fetch(Method::DELETE, &format!("/api/keel/v1/masters/{id}"), None)
            .await?;
        Self::decode(url, &bytes)
    }
}

impl Client {
    /// `POST /api/keel/v1/tokens`: the answer holds the token text, which
    /// the master shows this once.
    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken, ClientError> {
        let (url, bytes) = self
            .send_json(Method::POST, "/api/keel/v1/tokens", request)
            .await?;
        Self::decode(url, &bytes)
    }

    /// `GET /api/keel/v1/tokens`: every token, without its secret.
    pub async fn tokens(&self) -> Result<Tokens, ClientError> {
        self.get_json("/api/keel/v1/tokens").await
    }

    /// `DELETE /api/keel/v1/tokens/{id}`: the tokens left.
    pub async fn revoke_token(&self, id: &str) -> Result<Tokens, ClientError> {
        let path = format!("/api/keel/v1/tokens/{}", path_segment(id));
        let (url, bytes) = self.fetch(Method::DELETE, &path, None).await?;
        Self::decode(url, &bytes)
    }

    /// `GET /api/keel/v1/agents/pending`: agents whose TPM is attested
    /// but whose endorsement key nobody allowed yet (with `all`, the
    /// approved and denied ones too).
    pub async fn pending_agents(&self, all: bool) -> Result<PendingAgents, ClientError> {
        match all {
            true => self.get_json("/api/keel/v1/agents/pending?all=true").await,
            false => self.get_json("/api/keel/v1/agents/pending").await,
        }
    }

    /// `POST /api/keel/v1/agents/pending/{id}/approve` (or `deny`): `id`
    /// is a pending agent's id or an EK fingerprint (`sha256:<hex>`,
    /// approved before its agent shows up); the pending agents left.
    pub async fn decide_agent(
        &self,
        id: &str,
        approve: bool,
    ) -> Result<PendingAgents, ClientError> {
        let verb = if approve { "approve" } else { "deny" };
        let path = format!("/api/keel/v1/agents/pending/{}/{verb}", path_segment(id));
        let (url, bytes) = self.fetch(Method::POST, &path, None).await?;
        Self::decode(url, &bytes)
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
