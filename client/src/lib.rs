//! The one client of Keel's master, used by keelctl, the lab harness,
//! xtask, the benches and the tests:
//!
//! - the Mesos v1 operator API ([`Client::get_agents`], ...; `operator.rs`)
//!   and the legacy endpoints ([`Client::legacy_state`], ...; `legacy.rs`),
//!   answers typed with `keel_api::operator` and `keel_api::legacy`; the
//!   operator event stream ([`Client::events`], `events.rs`);
//! - Keel's own API ([`Client::keel_agents`], [`Client::masters`], ...;
//!   `keel.rs`), typed with `keel_api::keel`;
//! - the Mesos v1 scheduler API ([`scheduler`]): SUBSCRIBE with its RecordIO
//!   event stream, and the calls;
//! - agents' sandboxes ([`Client::sandbox`], `sandbox.rs`): Mesos' files
//!   API on the agent's port, over TLS with a sandbox grant when the
//!   cluster has TLS;
//! - the nested-container calls of an agent's v1 operator API
//!   ([`ContainerApi`], `containers.rs`: exec and attach), on an agent's
//!   port or relayed by the master for one task ([`Client::task_container`]);
//! - a blocking facade over all of it ([`blocking`]) for callers without an
//!   async runtime.
//!
//! Every request finds the leader over the whole master list
//! (`transport.rs`) and carries the client's credentials, if any
//! ([`Credentials`], `auth.rs`). Async, over reqwest; the error type is [`ClientError`].

mod agent_files;
mod auth;
pub mod blocking;
mod containers;
mod error;
mod events;
pub mod executor;
mod keel;
mod legacy;
mod operator;
mod operator_files;
mod records;
mod sandbox;
pub mod scheduler;
mod transport;

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use agent_files::{AgentFiles, FileBytes, FileChunk, FileEntry};
pub use auth::Credentials;
pub use containers::{ContainerApi, OutputStream, Relayed};
pub use error::{Attempt, ClientError};
pub use events::EventStream;
pub use legacy::TaskQuery;
pub use sandbox::Sandbox;
pub use scheduler::{Subscribe, Subscription};

use transport::{Request, Transport};

/// A client of one cluster's masters.
pub struct Client {
    transport: Transport,
    /// The TLS material, for agents' ports too.
    tls: Option<keel_pki::Material>,
}

/// Options of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    masters: String,
    discover: bool,
    timeout: Duration,
    connect_timeout: Duration,
    tls: Option<keel_pki::Material>,
    credentials: Option<Credentials>,
}

impl ClientBuilder {
    /// TLS to the masters: checked against the material's CA, its
    /// certificate (an operator's) presented when it has one.
    pub fn tls(mut self, material: Option<keel_pki::Material>) -> Self {
        self.tls = material;
        self
    }

    /// Credentials to send with every request (none by default).
    pub fn credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Whether to look for the leader over the list (default) or to ask
    /// only the first master and report a redirect as
    /// [`ClientError::NotLeader`].
    pub fn discover_leader(mut self, yes: bool) -> Self {
        self.discover = yes;
        self
    }

    /// Limit of one request and its answer (default 10 s); event streams
    /// have none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Limit of connecting to one master (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let masters = transport::parse_masters(&self.masters)?;
        let headers = Credentials::headers(self.credentials.as_ref())?;
        Ok(Client {
            transport: Transport::new(
                masters,
                self.discover,
                self.timeout,
                self.connect_timeout,
                self.tls.as_ref(),
                headers,
            )?,
            tls: self.tls,
        })
    }
}

/// The reason of a refusal: Keel's `{"error": "..."}`, else the text.
fn reason(text: &str) -> String {
    serde_json::from_str::<keel_api::keel::Error>(text)
        .map(|e| e.error)
        .unwrap_or_else(|_| text.trim().to_string())
}

impl Client {
    /// A client of `masters`, `HOST:PORT[,HOST:PORT...]`, with the defaults.
    pub fn new(masters: &str) -> Result<Client, ClientError> {
        Client::builder(masters).build()
    }

    pub fn builder(masters: &str) -> ClientBuilder {
        ClientBuilder {
            masters: masters.to_string(),
            discover: true,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            tls: None,
            credentials: None,
        }
    }

    /// The masters, as given.
    pub fn master_list(&self) -> &[String] {
        self.transport.masters()
    }

    /// One request whose answer must be a success; its body.
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(String, Bytes), ClientError> {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        let answer = self
            .transport
            .send(Request {
                method: method.clone(),
                path,
                headers,
                body,
                stream: false,
            })
            .await?;
        let status = answer.response.status();
        let url = answer.url;
        let bytes = answer
            .response
            .bytes()
            .await
            .map_err(|e| ClientError::Http {
                url: url.clone(),
                source: e,
            })?;
        if !status.is_success() {
            return Err(ClientError::Status {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                reason: reason(&String::from_utf8_lossy(&bytes)),
            });
        }
        Ok((url, bytes))
    }

    fn decode<T: DeserializeOwned>(url: String, bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode { url, source: e })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (url, bytes) = self.fetch(Method::GET, path, None).await?;
        Self::decode(url, &bytes)
    }

    /// Sends `body` as JSON; the answer's body.
    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(String, Bytes), ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            url: path.to_string(),
            source: e,
        })?;
        self.fetch(method, path, Some(Bytes::from(body))).await
    }
}
