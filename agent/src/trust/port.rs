//! The certificate the agent's own port presents: the one the masters
//! issued (or `--tls-cert`), read again when its file changes (a renewal),
//! so that the port follows renewals without a restart. Until the agent
//! has one, TLS handshakes on its port fail.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use keel_pki::agent_port::{CurrentKey, certified_key};
use rustls::sign::CertifiedKey;

use super::Trust;

/// What the file looked like when it was read.
type Stamp = (SystemTime, u64);

#[derive(Debug)]
pub struct PortKey {
    trust: Trust,
    cached: Mutex<Option<(Stamp, Arc<CertifiedKey>)>>,
}

impl PortKey {
    pub fn new(trust: Trust) -> PortKey {
        PortKey {
            trust,
            cached: Mutex::new(None),
        }
    }

    fn cert_path(&self) -> PathBuf {
        match &self.trust.fixed {
            Some((cert, _)) => cert.clone(),
            None => self.trust.dir.join(super::CERT),
        }
    }

    fn load(&self) -> Option<Arc<CertifiedKey>> {
        let material = self.trust.material().ok()?;
        match certified_key(&material) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %e, "the agent's certificate cannot serve its port");
                None
            }
        }
    }
}

impl CurrentKey for PortKey {
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let meta = std::fs::metadata(self.cert_path()).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        let mut cached = self.cached.lock().ok()?;
        if let Some((seen, key)) = cached.as_ref()
            && *seen == stamp
        {
            return Some(key.clone());
        }
        let key = self.load()?;
        *cached = Some((stamp, key.clone()));
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keel_pki::{Ca, Role};

    use super::*;

    #[test]
    fn the_port_presents_the_latest_issued_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::create("c").unwrap();
        let ca_file = tmp.path().join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let trust = Trust::new(&ca_file, None, tmp.path(), None).unwrap();
        let port = PortKey::new(trust.clone());
        assert!(port.current().is_none(), "nothing issued yet");

        let issue = |name: &str| {
            let req = trust.admission_request(0).unwrap();
            let cert = ca
                .sign_request(&req.csr_pem, Role::Agent, name, Duration::from_secs(600))
                .unwrap();
            trust.store(&cert).unwrap();
        };
        let name = |key: Arc<CertifiedKey>| keel_pki::PeerIdentity::of(&key.cert[0]).unwrap().name;
        issue("a-S0");
        assert_eq!(name(port.current().unwrap()), "a-S0");
        // Renewed (as the session does past half the life): the new one.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::remove_file(tmp.path().join("tls").join(super::super::CERT)).unwrap();
        issue("a-S0-renewed");
        assert_eq!(name(port.current().unwrap()), "a-S0-renewed");
    }
}
