//! Operation feedback: an operation with an `id` is
//! answered with UPDATE_OPERATION_STATUS (carrying a uuid the framework
//! acknowledges with ACKNOWLEDGE_OPERATION_STATUS), and RECONCILE_OPERATIONS
//! answers with the latest status of each operation asked about.

use std::collections::{HashMap, VecDeque};

use keel_api::mesos::Id;
use keel_api::scheduler::{Event, OperationStatus};
use serde_json::Value as Json;

use super::Engine;

/// Operations remembered per framework for reconciliation.
const KEPT_PER_FRAMEWORK: usize = 1000;

#[derive(Debug, Clone)]
struct Record {
    operation_id: String,
    /// The operation as Mesos JSON (`Offer.Operation`).
    info: Json,
    /// The operation's own uuid (GET_OPERATIONS).
    operation_uuid: Vec<u8>,
    agent_id: Option<String>,
    state: String,
    message: Option<String>,
    /// Until acknowledged.
    uuid: Option<Vec<u8>>,
}

/// Recent operations with an id, per framework.
#[derive(Default)]
pub(super) struct OperationLog {
    by_framework: HashMap<String, VecDeque<Record>>,
    next_uuid: u64,
}

impl OperationLog {
    /// A fresh 16-byte uuid: a counter and a fixed tag (unique within the
    /// leader's term, which is all an acknowledgement needs).
    fn uuid(&mut self) -> Vec<u8> {
        self.next_uuid += 1;
        let mut bytes = self.next_uuid.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"keel-op\x01");
        bytes
    }
}

/// An operation that has an id: the id, and the operation as Mesos JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRef {
    pub id: String,
    pub info: Json,
}

impl OpRef {
    /// `None` for an operation without an id (it gets no feedback).
    pub fn of(op: &keel_api::scheduler::Operation) -> Option<OpRef> {
        Some(OpRef {
            id: op.id.clone()?,
            info: op.to_json(),
        })
    }
}

/// An operation the master remembers, for GET_OPERATIONS.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationView {
    pub framework_id: String,
    pub agent_id: Option<String>,
    pub info: Json,
    pub latest_status: OperationStatus,
    pub uuid: Vec<u8>,
}

fn status_of(r: &Record) -> OperationStatus {
    OperationStatus {
        operation_id: Some(Id::new(&r.operation_id)),
        state: r.state.clone(),
        message: r.message.clone(),
        converted_resources: Vec::new(),
        uuid: r.uuid.as_ref().map(|u| keel_api::scheduler::Uuid {
            value: keel_api::mesos::base64_encode(u),
        }),
        agent_id: r.agent_id.as_ref().map(Id::new),
    }
}

/// UPDATE_OPERATION_STATUS for an operation that has an `id` (nothing
/// for one without).
pub(super) fn report(
    e: &mut Engine,
    framework_id: &str,
    op: Option<&OpRef>,
    agent_id: Option<&str>,
    state: &str,
    message: &str,
) {
    let Some(OpRef { id, info }) = op else {
        return;
    };
    let id = id.as_str();
    let record = Record {
        operation_id: id.to_string(),
        info: info.clone(),
        operation_uuid: e.operations.uuid(),
        agent_id: agent_id.map(str::to_string),
        state: state.to_string(),
        message: (!message.is_empty()).then(|| message.to_string()),
        uuid: Some(e.operations.uuid()),
    };
    let log = e
        .operations
        .by_framework
        .entry(framework_id.to_string())
        .or_default();
    log.retain(|r| r.operation_id != id);
    log.push_back(record.clone());
    while log.len() > KEPT_PER_FRAMEWORK {
        log.pop_front();
    }
    e.send_framework(
        framework_id,
        Event::UpdateOperationStatus(status_of(&record)),
    );
}

impl Engine {
    /// Every operation remembered, by framework, oldest first.
    pub fn operation_views(&self) -> Vec<OperationView> {
        let mut frameworks: Vec<&String> = self.operations.by_framework.keys().collect();
        frameworks.sort();
        frameworks
            .into_iter()
            .flat_map(|fw| {
                self.operations.by_framework[fw]
                    .iter()
                    .map(move |r| OperationView {
                        framework_id: fw.clone(),
                        agent_id: r.agent_id.clone(),
                        info: r.info.clone(),
                        latest_status: status_of(r),
                        uuid: r.operation_uuid.clone(),
                    })
            })
            .collect()
    }

    /// ACKNOWLEDGE_OPERATION_STATUS: the status with that uuid needs no
    /// more resending.
    pub fn acknowledge_operation(&mut self, framework_id: &str, operation_id: &str, uuid: &[u8]) {
        if let Some(r) = self
            .operations
            .by_framework
            .get_mut(framework_id)
            .and_then(|log| log.iter_mut().find(|r| r.operation_id == operation_id))
            && r.uuid.as_deref() == Some(uuid)
        {
            r.uuid = None;
        }
    }

    /// RECONCILE_OPERATIONS: the latest status of each operation listed
    /// (OPERATION_UNKNOWN for one the master does not know), or of every
    /// operation still unacknowledged when none is listed.
    pub fn reconcile_operations(&mut self, framework_id: &str, operation_ids: &[String]) {
        let log = self.operations.by_framework.get(framework_id);
        let statuses: Vec<OperationStatus> = if operation_ids.is_empty() {
            log.into_iter()
                .flatten()
                .filter(|r| r.uuid.is_some())
                .map(status_of)
                .collect()
        } else {
            operation_ids
                .iter()
                .map(
                    |id| match log.and_then(|l| l.iter().find(|r| &r.operation_id == id)) {
                        Some(r) => status_of(r),
                        None => OperationStatus {
                            operation_id: Some(Id::new(id)),
                            state: "OPERATION_UNKNOWN".into(),
                            message: Some("Reconciliation: operation is unknown".into()),
                            converted_resources: Vec::new(),
                            uuid: None,
                            agent_id: None,
                        },
                    },
                )
                .collect()
        };
        for s in statuses {
            self.send_framework(framework_id, Event::UpdateOperationStatus(s));
        }
    }
}
