//! The master's HTTP API as the lab reads it: the agent list and an agent's
//! inventory (`/api/keel/v1/agents[/{id}/inventory]`).

use std::time::{Duration, Instant};

use keel_api::inventory::Inventory;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("GET {url}: {reason}")]
    Get { url: String, reason: String },
    #[error("no agent with {what} became active at {master} within {within:?}")]
    Timeout {
        master: String,
        what: String,
        within: Duration,
    },
}

/// An entry of `GET /api/keel/v1/agents`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub hostname: String,
    pub state: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub reregistered_time: Option<f64>,
}

#[derive(Deserialize)]
struct AgentList {
    agents: Vec<AgentSummary>,
}

/// A client of one master (`HOST:PORT`).
#[derive(Debug, Clone)]
pub struct MasterApi {
    pub addr: String,
    http: reqwest::Client,
}

impl MasterApi {
    pub fn new(addr: &str) -> Self {
        MasterApi {
            addr: addr.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = format!("http://{}{path}", self.addr);
        let err = |reason: String| ApiError::Get {
            url: url.clone(),
            reason,
        };
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(resp.status().to_string()));
        }
        resp.json().await.map_err(|e| err(e.to_string()))
    }

    pub async fn agents(&self) -> Result<Vec<AgentSummary>, ApiError> {
        Ok(self.get::<AgentList>("/api/keel/v1/agents").await?.agents)
    }

    pub async fn inventory(&self, id: &str) -> Result<Inventory, ApiError> {
        self.get(&format!("/api/keel/v1/agents/{id}/inventory"))
            .await
    }

    /// Waits for an active agent for which `pick` (given the summary and the
    /// inventory) holds; returns both and when it was first seen.
    pub async fn wait_for_agent(
        &self,
        what: &str,
        within: Duration,
        mut pick: impl FnMut(&AgentSummary, &Inventory) -> bool,
    ) -> Result<(AgentSummary, Inventory, Instant), ApiError> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(agents) = self.agents().await {
                for a in agents.into_iter().filter(|a| a.state == "active") {
                    if let Ok(inv) = self.inventory(&a.id).await
                        && pick(&a, &inv)
                    {
                        return Ok((a, inv, Instant::now()));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Timeout {
                    master: self.addr.clone(),
                    what: what.to_string(),
                    within,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `inv` has a NIC with one of `macs`.
pub fn has_any_mac(inv: &Inventory, macs: &[String]) -> bool {
    inv.nics
        .iter()
        .any(|n| n.mac.as_ref().is_some_and(|m| macs.contains(m)))
}
