//! The v1 executor HTTP API (`POST /api/v1/executor` on an agent), which
//! custom executors such as pymesos' `MesosExecutorDriver` speak:
//! [`call`] what an executor sends, [`event`] what its agent streams back.

pub mod call;
pub mod event;

pub use call::{Call, CallError, CallKind};
pub use event::Event;
