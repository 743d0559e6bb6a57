//! The master's API as the lab reads it, through `keel-client`: the agent
//! list and an agent's inventory (`/api/keel/v1/agents[/{id}/inventory]`),
//! and waiting for an agent to register.

use std::time::{Duration, Instant};

use keel_api::inventory::Inventory;
use keel_api::keel::AgentState;
use keel_client::{Client, ClientError};

/// An entry of `GET /api/keel/v1/agents`.
pub use keel_api::keel::AgentSummary;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no agent with {what} became active at {master} within {within:?}")]
    Timeout {
        master: String,
        what: String,
        within: Duration,
    },
}

/// A client of one master (`HOST:PORT`).
pub struct MasterApi {
    pub addr: String,
    client: Client,
}

impl std::fmt::Debug for MasterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterApi")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MasterApi {
    pub fn new(addr: &str) -> Result<Self, ApiError> {
        Self::with_tls(addr, None)
    }

    /// A client speaking TLS with `tls` when given.
    pub fn with_tls(addr: &str, tls: Option<keel_pki::Material>) -> Result<Self, ApiError> {
        Ok(MasterApi {
            addr: addr.to_string(),
            client: Client::builder(addr).tls(tls).build()?,
        })
    }

    /// The client itself, for the calls the lab has no helper for.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn agents(&self) -> Result<Vec<AgentSummary>, ApiError> {
        Ok(self.client.keel_agents().await?.agents)
    }

    pub async fn inventory(&self, id: &str) -> Result<Inventory, ApiError> {
        Ok(self.client.inventory(id).await?)
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
                for a in agents.into_iter().filter(|a| a.state == AgentState::Active) {
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
