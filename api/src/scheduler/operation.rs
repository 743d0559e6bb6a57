//! `Offer.Operation`: what an ACCEPT does with its offers.

use serde::Deserialize;

use crate::mesos::{ExecutorInfo, Id, Resource, TaskInfo};

/// One operation of an ACCEPT.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `Offer.Operation.id`: when set, the framework wants
    /// UPDATE_OPERATION_STATUS events for it.
    pub id: Option<String>,
    pub kind: OperationKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OperationKind {
    Launch {
        task_infos: Vec<TaskInfo>,
    },
    LaunchGroup {
        executor: Box<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    },
    Reserve {
        resources: Vec<Resource>,
    },
    Unreserve {
        resources: Vec<Resource>,
    },
    Create {
        volumes: Vec<Resource>,
    },
    Destroy {
        volumes: Vec<Resource>,
    },
    /// Known Mesos operations Keel does not perform (GROW_VOLUME, ...).
    Unsupported {
        kind: String,
    },
}

impl OperationKind {
    /// The Mesos `Offer.Operation.Type` name.
    pub fn name(&self) -> &str {
        match self {
            OperationKind::Launch { .. } => "LAUNCH",
            OperationKind::LaunchGroup { .. } => "LAUNCH_GROUP",
            OperationKind::Reserve { .. } => "RESERVE",
            OperationKind::Unreserve { .. } => "UNRESERVE",
            OperationKind::Create { .. } => "CREATE",
            OperationKind::Destroy { .. } => "DESTROY",
            OperationKind::Unsupported { kind } => kind,
        }
    }
}

impl Operation {
    /// The operation as Mesos' `Offer.Operation` JSON (GET_OPERATIONS'
    /// `info`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        /// Plain data as JSON (serializing it cannot fail).
        fn value<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).unwrap_or_default()
        }
        let mut j = match &self.kind {
            OperationKind::Launch { task_infos } => {
                json!({"launch": {"task_infos": value(task_infos)}})
            }
            OperationKind::LaunchGroup { executor, tasks } => json!({"launch_group": {
                "executor": value(executor.as_ref()),
                "task_group": {"tasks": value(tasks)}}}),
            OperationKind::Reserve { resources } => {
                json!({"reserve": {"resources": value(resources)}})
            }
            OperationKind::Unreserve { resources } => {
                json!({"unreserve": {"resources": value(resources)}})
            }
            OperationKind::Create { volumes } => json!({"create": {"volumes": value(volumes)}}),
            OperationKind::Destroy { volumes } => json!({"destroy": {"volumes": value(volumes)}}),
            OperationKind::Unsupported { .. } => json!({}),
        };
        j["type"] = json!(self.kind.name());
        if let Some(id) = &self.id {
            j["id"] = json!({"value": id});
        }
        j
    }
}

#[derive(Deserialize)]
pub(super) struct RawOperation {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<Id>,
    launch: Option<RawLaunch>,
    launch_group: Option<RawLaunchGroup>,
    reserve: Option<RawResources>,
    unreserve: Option<RawResources>,
    create: Option<RawVolumes>,
    destroy: Option<RawVolumes>,
}

#[derive(Deserialize)]
struct RawLaunch {
    #[serde(default)]
    task_infos: Vec<TaskInfo>,
}

#[derive(Deserialize)]
struct RawLaunchGroup {
    executor: Option<ExecutorInfo>,
    task_group: Option<RawTaskGroup>,
}

#[derive(Deserialize)]
struct RawTaskGroup {
    #[serde(default)]
    tasks: Vec<TaskInfo>,
}

#[derive(Deserialize)]
struct RawResources {
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct RawVolumes {
    #[serde(default)]
    volumes: Vec<Resource>,
}

fn expecting(field: &str) -> String {
    format!("Failed to validate Offer.Operation: Expecting '{field}' to be present")
}

impl RawOperation {
    pub(super) fn typed(self) -> Result<Operation, String> {
        let kind = self
            .kind
            .ok_or("Failed to validate Offer.Operation: Missing required fields: type")?;
        let kind = match kind.as_str() {
            "LAUNCH" => OperationKind::Launch {
                task_infos: self.launch.ok_or_else(|| expecting("launch"))?.task_infos,
            },
            "LAUNCH_GROUP" => {
                let lg = self.launch_group.ok_or_else(|| expecting("launch_group"))?;
                OperationKind::LaunchGroup {
                    executor: Box::new(
                        lg.executor
                            .ok_or_else(|| expecting("launch_group.executor"))?,
                    ),
                    tasks: lg.task_group.map(|g| g.tasks).unwrap_or_default(),
                }
            }
            "RESERVE" => OperationKind::Reserve {
                resources: self.reserve.ok_or_else(|| expecting("reserve"))?.resources,
            },
            "UNRESERVE" => OperationKind::Unreserve {
                resources: self
                    .unreserve
                    .ok_or_else(|| expecting("unreserve"))?
                    .resources,
            },
            "CREATE" => OperationKind::Create {
                volumes: self.create.ok_or_else(|| expecting("create"))?.volumes,
            },
            "DESTROY" => OperationKind::Destroy {
                volumes: self.destroy.ok_or_else(|| expecting("destroy"))?.volumes,
            },
            "GROW_VOLUME" | "SHRINK_VOLUME" | "CREATE_DISK" | "DESTROY_DISK" => {
                OperationKind::Unsupported { kind }
            }
            other => {
                return Err(format!(
                    "Failed to convert JSON into Call protobuf: unknown operation type '{other}'"
                ));
            }
        };
        Ok(Operation {
            id: self.id.map(|i| i.value),
            kind,
        })
    }
}
