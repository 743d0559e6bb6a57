//! The client's one error type.

use std::fmt;

/// What happened when one master was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub master: String,
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.master, self.outcome)
    }
}

fn attempts(tried: &[Attempt]) -> String {
    tried
        .iter()
        .map(Attempt::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Credentials that cannot be sent.
    #[error("invalid credentials: {0}")]
    Credentials(String),
    /// `--master` named nothing usable.
    #[error("invalid master list {0:?}: expected HOST:PORT[,HOST:PORT...]")]
    Masters(String),
    /// No master led or answered; each one tried and why not.
    #[error("no master answered {path}: {}", attempts(.tried))]
    NoMaster { path: String, tried: Vec<Attempt> },
    /// A master that does not lead, asked with leader discovery off.
    #[error("{master} does not lead{}", .leader.as_ref().map(|l| format!(" (the leader is {l})")).unwrap_or_default())]
    NotLeader {
        master: String,
        leader: Option<String>,
    },
    /// The master refused the request; `reason` is its text (or Keel's
    /// `{"error": ...}`).
    #[error("{method} {url}: {status}: {reason}")]
    Status {
        method: String,
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: invalid answer: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// A `GET_*` call answered with another type.
    #[error("{call} was answered with {got}")]
    UnexpectedAnswer { call: String, got: String },
    #[error("TLS: {0}")]
    Tls(#[from] keel_pki::TlsError),
    #[error("event stream: {0}")]
    RecordIo(#[from] keel_api::recordio::RecordIoError),
    /// SUBSCRIBE failed: an `ERROR` event, or an answer that is not an
    /// event stream.
    #[error("subscribe: {0}")]
    Subscribe(String),
    #[error("the event stream ended")]
    StreamEnded,
    /// The blocking facade could not start its runtime.
    #[error("cannot start the client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ClientError {
    /// The HTTP status the master answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_master_names_every_master_tried() {
        let e = ClientError::NoMaster {
            path: "/api/v1".into(),
            tried: vec![
                Attempt {
                    master: "a:1".into(),
                    outcome: "connection refused".into(),
                },
                Attempt {
                    master: "b:2".into(),
                    outcome: "503 No leader elected".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "no master answered /api/v1: a:1 (connection refused), b:2 (503 No leader elected)"
        );
        let e = ClientError::NotLeader {
            master: "a:1".into(),
            leader: Some("b:2".into()),
        };
        assert_eq!(e.to_string(), "a:1 does not lead (the leader is b:2)");
    }
}
