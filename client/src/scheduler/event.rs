//! Scheduler events: the protocol's own typed events from keel-api.

pub use keel_api::scheduler::{Event, Failure, Message, OperationStatus, Subscribed};
