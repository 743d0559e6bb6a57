//! The scheduler API's pure parts: call parsing ([`call`]), event encoding
//! ([`events`]), task validation ([`validation`]). The HTTP handler is in
//! `http/scheduler.rs`, the state changes in `core/`.

pub mod call;
pub mod events;
pub mod validation;
