//! The legacy JSON endpoints and `/health`, `/version`. Any master answers
//! them from its own copy of the state (followers too); the maintenance
//! endpoints are the leader's.

use keel_api::legacy::{Flags, Frameworks, Slaves, State, Tasks};
use keel_api::operator::VersionInfo;
use keel_api::operator::maintenance::{ClusterStatus, MachineId, Schedule};
use reqwest::Method;

use crate::{Client, ClientError};

/// The paging of `/master/tasks`; unset fields take the master's defaults
/// (100 tasks from offset 0, newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskQuery {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// Oldest first (`order=asc`) rather than newest first.
    pub ascending: bool,
}

impl TaskQuery {
    fn path(&self) -> String {
        let mut params = Vec::new();
        if let Some(l) = self.limit {
            params.push(format!("limit={l}"));
        }
        if let Some(o) = self.offset {
            params.push(format!("offset={o}"));
        }
        if self.ascending {
            params.push("order=asc".to_string());
        }
        if params.is_empty() {
            "/master/tasks".to_string()
        } else {
            format!("/master/tasks?{}", params.join("&"))
        }
    }
}

impl Client {
    /// `GET /health`: whether a master answers 200.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.fetch(Method::GET, "/health", None).await.map(drop)
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionInfo, ClientError> {
        self.get_json("/version").await
    }

    /// `GET /master/state`.
    pub async fn legacy_state(&self) -> Result<State, ClientError> {
        self.get_json("/master/state").await
    }

    /// `GET /master/slaves`.
    pub async fn legacy_slaves(&self) -> Result<Slaves, ClientError> {
        self.get_json("/master/slaves").await
    }

    /// `GET /master/frameworks`.
    pub async fn legacy_frameworks(&self) -> Result<Frameworks, ClientError> {
        self.get_json("/master/frameworks").await
    }

    /// `GET /master/tasks`, one page.
    pub async fn legacy_tasks(&self, query: TaskQuery) -> Result<Tasks, ClientError> {
        self.get_json(&query.path()).await
    }

    /// `GET /master/flags`.
    pub async fn legacy_flags(&self) -> Result<Flags, ClientError> {
        self.get_json("/master/flags").await
    }

    /// `GET /master/maintenance/schedule`.
    pub async fn legacy_maintenance_schedule(&self) -> Result<Schedule, ClientError> {
        self.get_json("/master/maintenance/schedule").await
    }

    /// `POST /master/maintenance/schedule`: replaces the schedule.
    pub async fn legacy_update_maintenance_schedule(
        &self,
        schedule: &Schedule,
    ) -> Result<(), ClientError> {
        self.send_json(Method::POST, "/master/maintenance/schedule", schedule)
            .await
            .map(drop)
    }

    /// `GET /master/maintenance/status`.
    pub async fn legacy_maintenance_status(&self) -> Result<ClusterStatus, ClientError> {
        self.get_json("/master/maintenance/status").await
    }

    /// `POST /master/machine/down` (`down`) or `/master/machine/up`.
    pub async fn legacy_machines(
        &self,
        down: bool,
        machines: &[MachineId],
    ) -> Result<(), ClientError> {
        let path = match down {
            true => "/master/machine/down",
            false => "/master/machine/up",
        };
        self.send_json(Method::POST, path, &machines)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_queries() {
        assert_eq!(TaskQuery::default().path(), "/master/tasks");
        let q = TaskQuery {
            limit: Some(5),
            offset: Some(10),
            ascending: true,
        };
        assert_eq!(q.path(), "/master/tasks?limit=5&offset=10&order=asc");
    }
}
