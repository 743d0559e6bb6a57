//! HTTP to the masters, with leader discovery over the whole `--master`
//! list: the master that answered last is asked first, then each in turn.
//! A follower's `307 Location: //host:port/path` is followed to the leader;
//! a refused connection or a `503` (no leader elected, still recovering, a
//! write refused by a leader that lost its quorum) moves on to the next.
//! When none answers, the error names every master tried and why.
//!
//! With discovery off ([`crate::ClientBuilder::discover_leader`]) only the
//! first master is asked and a redirect is an error: for tools that ask one
//! master on purpose (is *this* one the leader?).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode, header};

use crate::error::{Attempt, ClientError};

pub(crate) struct Transport {
    masters: Vec<String>,
    http: reqwest::Client,
    /// `https` with TLS, else `http`.
    scheme: &'static str,
    /// The master that answered last.
    last: Mutex<Option<String>>,
    discover: bool,
    /// Limit of a whole request and its answer (not of event streams).
    timeout: Duration,
}

/// One request.
pub(crate) struct Request<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<Bytes>,
    /// An event stream: no overall time limit.
    pub stream: bool,
}

/// The answer and where it came from.
pub(crate) struct Answer {
    pub master: String,
    pub url: String,
    pub response: reqwest::Response,
}

/// `host:port` of a `Location` (`//host:port/path`, `http://host:port/...`
/// or a bare `host:port`).
pub(crate) fn location_host(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
        .or_else(|| location.strip_prefix("//"))
        .unwrap_or(location);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    (!host.is_empty()).then(|| host.to_string())
}

/// The innermost cause of a transport error ("Connection refused (os error
/// 111)" rather than "error sending request").
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// Parses `HOST:PORT[,HOST:PORT...]` (an `http://` prefix is dropped).
pub(crate) fn parse_masters(list: &str) -> Result<Vec<String>, ClientError> {
    let masters: Vec<String> = list
        .split(',')
        .map(|m| {
            m.trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
        })
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err(ClientError::Masters(list.to_string()));
    }
    Ok(masters)
}

impl Transport {
    pub fn new(
        masters: Vec<String>,
        discover: bool,
        timeout: Duration,
        connect_timeout: Duration,
        tls: Option<&keel_pki::Material>,
        headers: header::HeaderMap,
    ) -> Result<Transport, ClientError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            // The credentials, on every request (event streams included).
            .default_headers(headers);
        if let Some(material) = tls {
            let config = material.client_config(&[b"http/1.1"])?;
            builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(&config));
        }
        let http = builder.build().map_err(|e| ClientError::Http {
            url: String::new(),
            source: e,
        })?;
        Ok(Transport {
            masters,
            http,
            scheme: if tls.is_some() { "https" } else { "http" },
            last: Mutex::new(None),
            discover,
            timeout,
        })
    }

    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// The HTTP client (no redirects followed by itself).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn remember(&self, master: Option<String>) {
        if let Ok(mut last) = self.last.lock() {
            *last = master;
        }
    }

    /// The order to ask the masters in.
    fn candidates(&self) -> VecDeque<String> {
        if !self.discover {
            return self.masters.iter().take(1).cloned().collect();
        }
        let mut queue: VecDeque<String> = VecDeque::new();
        if let Some(last) = self.last.lock().ok().and_then(|l| l.clone()) {
            queue.push_back(last);
        }
        for m in &self.masters {
            if !queue.contains(m) {
                queue.push_back(m.clone());
            }
        }
        queue
    }

    /// Sends `req` to the leader (see the module doc). Any answer but a
    /// redirect or a 503 is returned as it is, errors included.
    pub async fn send(&self, req: Request<'_>) -> Result<Answer, ClientError> {
        let mut queue = self.candidates();
        let mut visited = HashSet::new();
        let mut tried = Vec::new();
        while let Some(master) = queue.pop_front() {
            if !visited.insert(master.clone()) {
                continue;
            }
            let url = format!("{}://{master}{}", self.scheme, req.path);
            let mut builder = self.http.request(req.method.clone(), &url);
            for (k, v) in req.headers {
                builder = builder.header(*k, *v);
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            if !req.stream {
                builder = builder.timeout(self.timeout);
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) if self.discover && e.is_connect() => {
                    tried.push(Attempt {
                        master,
                        outcome: cause(&e),
                    });
                    continue;
                }
                Err(e) => return Err(ClientError::Http { url, source: e }),
            };
            match response.status() {
                StatusCode::TEMPORARY_REDIRECT => {
                    let leader = response
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(location_host);
                    if !self.discover {
                        return Err(ClientError::NotLeader { master, leader });
                    }
                    tried.push(Attempt {
                        master,
                        outcome: match &leader {
                            Some(l) => format!("redirected to {l}"),
                            None => "redirected nowhere".into(),
                        },
                    });
                    if let Some(l) = leader {
                        queue.push_front(l);
                    }
                }
                StatusCode::SERVICE_UNAVAILABLE if self.discover => {
                    let text = response.text().await.unwrap_or_default();
                    tried.push(Attempt {
                        master,
                        outcome: format!("503 {}", text.trim()),
                    });
                }
                _ => {
                    if self.discover {
                        self.remember(Some(master.clone()));
                    }
                    return Ok(Answer {
                        master,
                        url,
                        response,
                    });
                }
            }
        }
        self.remember(None);
        Err(ClientError::NoMaster {
            path: req.path.to_string(),
            tried,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_the_leader() {
        for (loc, want) in [
            (
                "//10.0.0.2:5050/api/v1/scheduler?x=1",
                Some("10.0.0.2:5050"),
            ),
            ("//m2:5050", Some("m2:5050")),
            ("http://m2:5050/api/v1", Some("m2:5050")),
            ("m2:5050", Some("m2:5050")),
            ("//", None),
        ] {
            assert_eq!(location_host(loc).as_deref(), want, "{loc}");
        }
    }

    #[test]
    fn master_lists() {
        assert_eq!(
            parse_masters(" a:1, http://b:2/ ,,").unwrap(),
            vec!["a:1", "b:2"]
        );
        assert!(parse_masters(" , ").is_err());
    }
}
