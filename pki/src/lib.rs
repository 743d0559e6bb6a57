//! Keel's cluster PKI (`docs/design/0006-trust.md`).
//!
//! One cluster CA signs every certificate. A certificate names its holder
//! (the subject's common name) and its [`Role`] (the subject's
//! organization, `keel:<role>`): a master may speak Raft and serve, an
//! agent may hold an agent session and nothing else, operators are
//! admins, operators or readers (as Talos has them).
//!
//! - [`role`]: roles and the [`PeerIdentity`] read off a verified
//!   certificate;
//! - [`ca`]: creating the CA and issuing certificates (rcgen);
//! - [`tls`]: loading PEM material and the rustls configurations of
//!   servers (client certificates optional, checked against the CA) and
//!   clients (the server checked against the CA, a certificate of its own
//!   when it has one);
//! - [`connect`]: TLS under tonic's channels (master to master, agent to
//!   master);
//! - [`flags`]: `--tls-ca`, `--tls-cert`, `--tls-key`;
//! - [`pinned`]: fetching the CA by its fingerprint (the appliance);
//! - [`agent_port`]: TLS on an agent's own port (its certificate names its
//!   agent id, and clients check that instead of an address);
//! - [`grant`]: sandbox grants, signed by a master, checked by agents.

pub mod agent_port;
pub mod ca;
pub mod connect;
pub mod flags;
pub mod grant;
pub mod pinned;
pub mod role;
pub mod tls;
mod verify;

pub use ca::{Ca, CaError, Issued, new_key, request};
pub use connect::TlsConnector;
pub use flags::TlsFlags;
pub use grant::{Grant, GrantError, GrantSigner, GrantVerifier};
pub use role::{IdentityError, PeerIdentity, Role, validity};
pub use tls::{Material, TlsError};

/// The one crypto provider (ring): set as the process default the first
/// time any configuration is built.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
