//! Scheduler calls, typed with `keel_api::mesos`: each serializes as
//! `{"type": "ACCEPT", "accept": {...}}`, and the subscription adds its
//! `framework_id`.
//!
//! These mirror `scheduler::Call` of Mesos' `scheduler.proto` for the calls
//! a framework of Keel makes; when `keel_api::mesos` grows the scheduler
//! API's own types, these give way to them.

use keel_api::mesos::{ExecutorInfo, Filters, FrameworkInfo, Id, KillPolicy, TaskInfo, TaskStatus};
use keel_api::resources::v1::Resource;
use serde::Serialize;
use serde_json::{Map, Value as Json};

/// `subscribe` (and `update_framework`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed_roles: Vec<String>,
}

impl Subscribe {
    pub fn new(framework_info: FrameworkInfo) -> Self {
        Subscribe {
            framework_info,
            suppressed_roles: Vec::new(),
        }
    }
}

/// `Offer.Operation.Launch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Launch {
    pub task_infos: Vec<TaskInfo>,
}

/// `task_group`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskGroup {
    pub tasks: Vec<TaskInfo>,
}

/// `Offer.Operation.LaunchGroup`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchGroup {
    pub executor: ExecutorInfo,
    pub task_group: TaskGroup,
}

/// The resources of `reserve` and `unreserve`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    pub resources: Vec<Resource>,
}

/// The persistent volumes of `create` and `destroy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volumes {
    pub volumes: Vec<Resource>,
}

/// `Offer.Operation`: the type and its one body, as in `mesos.proto`.
/// Build one with [`Operation::launch`], [`Operation::create`], ...
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreserve: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Volumes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroy: Option<Volumes>,
}

impl Operation {
    fn of(kind: &'static str) -> Operation {
        Operation {
            kind,
            launch: None,
            launch_group: None,
            reserve: None,
            unreserve: None,
            create: None,
            destroy: None,
        }
    }

    pub fn launch(task_infos: Vec<TaskInfo>) -> Operation {
        Operation {
            launch: Some(Launch { task_infos }),
            ..Operation::of("LAUNCH")
        }
    }

    pub fn launch_group(executor: ExecutorInfo, tasks: Vec<TaskInfo>) -> Operation {
        Operation {
            launch_group: Some(LaunchGroup {
                executor,
                task_group: TaskGroup { tasks },
            }),
            ..Operation::of("LAUNCH_GROUP")
        }
    }

    pub fn reserve(resources: Vec<Resource>) -> Operation {
        Operation {
            reserve: Some(Resources { resources }),
            ..Operation::of("RESERVE")
        }
    }

    pub fn unreserve(resources: Vec<Resource>) -> Operation {
        Operation {
            unreserve: Some(Resources { resources }),
            ..Operation::of("UNRESERVE")
        }
    }

    pub fn create(volumes: Vec<Resource>) -> Operation {
        Operation {
            create: Some(Volumes { volumes }),
            ..Operation::of("CREATE")
        }
    }

    pub fn destroy(volumes: Vec<Resource>) -> Operation {
        Operation {
            destroy: Some(Volumes { volumes }),
            ..Operation::of("DESTROY")
        }
    }
}

/// `accept`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accept {
    pub offer_ids: Vec<Id>,
    pub operations: Vec<Operation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `decline`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decline {
    pub offer_ids: Vec<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `accept_inverse_offers` / `decline_inverse_offers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InverseOffers {
    pub inverse_offer_ids: Vec<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `kill`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kill {
    pub task_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// `acknowledge`: of an update that carried a `uuid`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledge {
    pub agent_id: Id,
    pub task_id: Id,
    /// base64 of the update's 16-byte uuid.
    pub uuid: String,
}

impl Acknowledge {
    /// The acknowledgement `status` asks for; `None` when it carries no
    /// uuid (master-generated updates) or no agent.
    pub fn of(status: &TaskStatus) -> Option<Acknowledge> {
        Some(Acknowledge {
            agent_id: status.agent_id.clone()?,
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone()?,
        })
    }
}

/// One task of `reconcile`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileTask {
    pub task_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
}

/// A scheduler call Keel's frameworks make.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Subscribe(Subscribe),
    Teardown,
    Accept(Accept),
    Decline(Decline),
    AcceptInverseOffers(InverseOffers),
    DeclineInverseOffers(InverseOffers),
    /// Roles to revive; none: all.
    Revive(Vec<String>),
    /// Roles to suppress; none: all.
    Suppress(Vec<String>),
    Kill(Kill),
    Acknowledge(Acknowledge),
    /// Tasks to reconcile; none: every task the master knows (implicit).
    Reconcile(Vec<ReconcileTask>),
    UpdateFramework(Subscribe),
}

impl Call {
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Subscribe(_) => "SUBSCRIBE",
            Call::Teardown => "TEARDOWN",
            Call::Accept(_) => "ACCEPT",
            Call::Decline(_) => "DECLINE",
            Call::AcceptInverseOffers(_) => "ACCEPT_INVERSE_OFFERS",
            Call::DeclineInverseOffers(_) => "DECLINE_INVERSE_OFFERS",
            Call::Revive(_) => "REVIVE",
            Call::Suppress(_) => "SUPPRESS",
            Call::Kill(_) => "KILL",
            Call::Acknowledge(_) => "ACKNOWLEDGE",
            Call::Reconcile(_) => "RECONCILE",
            Call::UpdateFramework(_) => "UPDATE_FRAMEWORK",
        }
    }

    /// The call as JSON, with `framework_id` when given.
    pub fn to_json(&self, framework_id: Option<&Id>) -> Result<Json, serde_json::Error> {
        use serde_json::to_value;
        let roles = |roles: &Vec<String>| -> Result<Option<Json>, serde_json::Error> {
            if roles.is_empty() {
                return Ok(None);
            }
            let mut m = Map::new();
            m.insert("roles".into(), to_value(roles)?);
            Ok(Some(Json::Object(m)))
        };
        let body = match self {
            Call::Subscribe(s) => Some(("subscribe", to_value(s)?)),
            Call::Teardown => None,
            Call::Accept(a) => Some(("accept", to_value(a)?)),
            Call::Decline(d) => Some(("decline", to_value(d)?)),
            Call::AcceptInverseOffers(i) => Some(("accept_inverse_offers", to_value(i)?)),
            Call::DeclineInverseOffers(i) => Some(("decline_inverse_offers", to_value(i)?)),
            Call::Revive(r) => roles(r)?.map(|b| ("revive", b)),
            Call::Suppress(r) => roles(r)?.map(|b| ("suppress", b)),
            Call::Kill(k) => Some(("kill", to_value(k)?)),
            Call::Acknowledge(a) => Some(("acknowledge", to_value(a)?)),
            Call::Reconcile(tasks) => {
                let mut m = Map::new();
                m.insert("tasks".into(), to_value(tasks)?);
                Some(("reconcile", Json::Object(m)))
            }
            Call::UpdateFramework(u) => Some(("update_framework", to_value(u)?)),
        };
        let mut m = Map::new();
        m.insert("type".into(), Json::from(self.kind()));
        if let Some(id) = framework_id {
            m.insert("framework_id".into(), to_value(id)?);
        }
        if let Some((key, body)) = body {
            m.insert(key.into(), body);
        }
        Ok(Json::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task() -> TaskInfo {
        keel_api::mesos::parse(json!({"name": "t", "task_id": {"value": "t"},
            "agent_id": {"value": "a"}, "command": {"value": "true"}}))
        .unwrap()
    }

    #[test]
    fn calls_serialize_as_mesos_reads_them() {
        let fid = Id::new("f");
        assert_eq!(
            Call::Revive(vec![]).to_json(Some(&fid)).unwrap(),
            json!({"type": "REVIVE", "framework_id": {"value": "f"}})
        );
        assert_eq!(
            Call::Suppress(vec!["a".into()]).to_json(None).unwrap(),
            json!({"type": "SUPPRESS", "suppress": {"roles": ["a"]}})
        );
        let accept = Call::Accept(Accept {
            offer_ids: vec![Id::new("o")],
            operations: vec![Operation::launch(vec![task()])],
            filters: Some(Filters {
                refuse_seconds: Some(0.5),
            }),
        });
        assert_eq!(
            accept.to_json(Some(&fid)).unwrap(),
            json!({"type": "ACCEPT", "framework_id": {"value": "f"}, "accept": {
                "offer_ids": [{"value": "o"}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                    {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                     "command": {"value": "true"}}]}}],
                "filters": {"refuse_seconds": 0.5}}})
        );
        assert_eq!(
            Call::Reconcile(vec![]).to_json(None).unwrap(),
            json!({"type": "RECONCILE", "reconcile": {"tasks": []}})
        );
    }

    #[test]
    fn acknowledgements_need_a_uuid() {
        let mut st: TaskStatus = keel_api::mesos::parse(json!({"task_id": {"value": "t"},
            "state": "TASK_RUNNING", "agent_id": {"value": "a"}}))
        .unwrap();
        assert_eq!(Acknowledge::of(&st), None);
        st.uuid = Some("AAAA".into());
        assert_eq!(Acknowledge::of(&st).unwrap().uuid, "AAAA");
    }
}
