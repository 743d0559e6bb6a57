//! A recording [`Network`] for tests: nothing touches the kernel.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Network, NetworkAttachment, NetworkError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkCall {
    Attach(String, NetworkAttachment),
    Detach(String),
}

#[derive(Clone, Default)]
pub struct FakeNetwork {
    calls: Arc<Mutex<Vec<NetworkCall>>>,
}

impl FakeNetwork {
    pub fn calls(&self) -> Vec<NetworkCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, call: NetworkCall) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }
}

impl Network for FakeNetwork {
    fn attach(&self, container_id: &str, att: &NetworkAttachment) -> Result<PathBuf, NetworkError> {
        self.record(NetworkCall::Attach(container_id.to_string(), att.clone()));
        Ok(PathBuf::from("/fake/netns").join(container_id))
    }

    fn detach(&self, container_id: &str) -> Result<(), NetworkError> {
        self.record(NetworkCall::Detach(container_id.to_string()));
        Ok(())
    }
}
