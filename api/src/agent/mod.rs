//! The agent's v1 operator API (`POST /api/v1` on an agent's port): the
//! calls, parsed once with Mesos' validation messages ([`call`]), and the
//! answers in Mesos' envelope `{"type": "GET_X", "get_x": {...}}`
//! ([`state`]: tasks, executors, frameworks, containers and their
//! resource statistics, the agent itself).

pub mod call;
pub mod containers;
pub mod legacy;
pub mod state;

pub use call::{Call, CallError, GetContainersCall};
pub use state::Response;
