//! keel-agent as a library: the binary in `main.rs` only parses flags and
//! calls [`run`].

pub mod discovery;
