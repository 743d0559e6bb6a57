//! The Mesos v1 scheduler API, typed: [`Call`]s a framework sends (parsed
//! once, with Mesos' leniency and its validation messages) and the
//! [`Event`]s it receives.

mod call;
mod event;
pub mod limits;
mod operation;

pub use crate::operator::Offer;
pub use call::{Call, CallError, CallHead, CallKind, Kill, ReconcileTask, Subscribe};
pub use event::{Event, EventKind, Failure, Message, OperationStatus, Subscribed, Uuid};
pub use operation::{Operation, OperationKind};
