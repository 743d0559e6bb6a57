//! The agent's v1 operator API (`POST /api/v1` on an agent's port).

pub mod containers;
