//! Frameworks: SUBSCRIBE (new, re-subscribe, failover of the connection),
//! stream checks for other calls, disconnection and `failover_timeout`,
//! UPDATE_FRAMEWORK and TEARDOWN.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_api::mesos::FrameworkInfo;
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::{Inner, Master, MasterConfig, offers, tasks, unix_now};
use crate::allocator::FrameworkSpec;
use crate::http::views;
use crate::registry::roles::valid_role;
use crate::registry::{Applied, Command, RegistryError};
use crate::scheduler::call::{CallError, bad};
use crate::scheduler::events;

/// Events queued for a slow framework before it is disconnected.
const STREAM_CAPACITY: usize = 4096;

pub(crate) struct Stream {
    pub id: String,
    pub tx: mpsc::Sender<Bytes>,
}

pub(crate) struct FrameworkRuntime {
    pub info: FrameworkInfo,
    pub stream: Option<Stream>,
    /// Set while disconnected: when the framework is removed.
    pub failover_deadline: Option<Instant>,
    pub suppressed_roles: BTreeSet<String>,
}

impl FrameworkRuntime {
    pub fn roles(&self) -> Vec<String> {
        self.info.effective_roles()
    }
    pub fn partition_aware(&self) -> bool {
        self.info.has_capability("PARTITION_AWARE")
    }
    pub fn multi_role(&self) -> bool {
        self.info.has_capability("MULTI_ROLE")
    }
    pub fn refinement(&self) -> bool {
        self.info.has_capability("RESERVATION_REFINEMENT")
    }
    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    fn spec(&self, id: &str) -> FrameworkSpec {
        FrameworkSpec {
            id: id.to_string(),
            roles: self.roles(),
            multi_role: self.multi_role(),
            gpu_resources: self.info.has_capability("GPU_RESOURCES"),
            suppressed_roles: self.suppressed_roles.clone(),
        }
    }

    fn failover_timeout(&self) -> Duration {
        let secs = self.info.failover_timeout.unwrap_or(0.0);
        if secs.is_finite() && secs > 0.0 {
            Duration::from_secs_f64(secs.min(1e9))
        } else {
            Duration::ZERO
        }
    }
}

/// What SUBSCRIBE hands to the HTTP layer: the event stream to send.
pub struct Subscription {
    pub framework_id: String,
    pub stream_id: String,
    pub events: mpsc::Receiver<Bytes>,
}

/// Queues `event` on the framework's stream; a full or closed stream drops
/// the subscription (the framework must re-subscribe).
pub(crate) fn send_event(inner: &mut Inner, framework_id: &str, event: &Json) -> bool {
    let Some(fw) = inner.frameworks.get_mut(framework_id) else {
        return false;
    };
    let Some(stream) = &fw.stream else {
        return false;
    };
    if stream.tx.try_send(events::record(event)).is_ok() {
        return true;
    }
    tracing::warn!(%framework_id, "event stream full or closed; dropping the subscription");
    fw.stream = None;
    false
}

/// Validates a FrameworkInfo the way Mesos does before subscribing.
fn validate_info(info: &FrameworkInfo) -> Result<(), String> {
    let multi = info.has_capability("MULTI_ROLE");
    if multi && info.role.is_some() {
        return Err(
            "'FrameworkInfo.role' must not be set when the MULTI_ROLE capability is".into(),
        );
    }
    if !multi && !info.roles.is_empty() {
        return Err("'FrameworkInfo.roles' is set but the MULTI_ROLE capability is not".into());
    }
    for role in info.effective_roles() {
        if role != "*" && !valid_role(&role) {
            return Err(format!("role '{role}' is not a valid role name"));
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = info.roles.iter().find(|r| !seen.insert(r.as_str())) {
        return Err(format!("role '{dup}' appears more than once"));
    }
    Ok(())
}

/// After a master restart every known framework is disconnected and gets
/// its failover timeout to come back.
pub(super) fn recover(inner: &mut Inner, _config: &MasterConfig) {
    let records: Vec<(String, Json)> = inner
        .registry
        .frameworks()
        .map(|f| (f.id.clone(), f.info.clone()))
        .collect();
    for (id, info_json) in records {
        let Ok(info) = keel_api::mesos::parse::<FrameworkInfo>(info_json) else {
            tracing::warn!(framework_id = %id, "cannot parse the stored framework info");
            continue;
        };
        let mut fw = FrameworkRuntime {
            info,
            stream: None,
            failover_deadline: None,
            suppressed_roles: BTreeSet::new(),
        };
        fw.failover_deadline = Some(Instant::now() + fw.failover_timeout());
        inner.allocator.add_framework(fw.spec(&id), unix_now());
        inner.allocator.deactivate_framework(&id);
        inner.frameworks.insert(id, fw);
    }
}

impl Master {
    /// Removes frameworks whose failover timeout has passed.
    pub(super) async fn expire_failovers(&self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .lock()
            .frameworks
            .iter()
            .filter(|(_, f)| !f.connected() && f.failover_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(framework_id = %id, "failover timeout expired; removing framework");
            self.remove_framework(&id).await;
        }
    }

    /// Kills the framework's tasks, drops its offers and forgets it.
    pub(super) async fn remove_framework(&self, framework_id: &str) {
        let w = self.write().await;
        {
            let mut inner = self.lock();
            if !inner.frameworks.contains_key(framework_id) {
                return;
            }
            offers::recover_framework_offers(&mut inner, framework_id, false);
            tasks::framework_removed(&mut inner, framework_id);
            inner.allocator.remove_framework(framework_id);
            inner.frameworks.remove(framework_id);
        }
        let cmd = Command::RemoveFramework {
            framework_id: framework_id.to_string(),
            at: unix_now(),
        };
        if let Err(e) = self.commit(&w, cmd).await {
            tracing::error!(%framework_id, error = %e, "cannot record framework removal");
        }
        drop(w);
        self.want_allocation();
    }

    /// SUBSCRIBE. On success the returned stream starts with SUBSCRIBED.
    /// An invalid FrameworkInfo yields a stream holding one ERROR event.
    pub async fn subscribe(
        self: &Arc<Self>,
        framework_id: Option<String>,
        info: FrameworkInfo,
        info_json: Json,
        suppressed_roles: Vec<String>,
    ) -> Subscription {
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let error = |message: String| {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(events::record(&events::error(&message)));
            Subscription {
                framework_id: String::new(),
                stream_id: stream_id.clone(),
                events: rx,
            }
        };
        if let Err(m) = validate_info(&info) {
            return error(m);
        }
        let framework_id = framework_id.or_else(|| info.id.as_ref().map(|i| i.value.clone()));
        let w = self.write().await;
        let cmd = match &framework_id {
            Some(id) => Command::ReaddFramework {
                framework_id: id.clone(),
                info: info_json,
                at: unix_now(),
            },
            None => Command::AddFramework {
                info: info_json,
                at: unix_now(),
            },
        };
        let framework_id = match self.commit(&w, cmd).await {
            Ok(Applied::FrameworkAdded { framework_id })
            | Ok(Applied::FrameworkReadded { framework_id }) => framework_id,
            Ok(other) => unreachable!("subscribe applied as {other:?}"),
            Err(super::MasterError::Registry(RegistryError::FrameworkRemoved(id))) => {
                return error(format!("Framework {id} has been removed"));
            }
            Err(e) => return error(format!("Cannot subscribe: {e}")),
        };
        let mut inner = self.lock();
        // The stored info now carries the id.
        let info = inner
            .registry
            .framework(&framework_id)
            .and_then(|r| keel_api::mesos::parse::<FrameworkInfo>(r.info.clone()).ok())
            .unwrap_or(info);

        let first = events::subscribed(
            &framework_id,
            self.config().framework_heartbeat_interval.as_secs_f64(),
            views::master_info_of(self, inner.registry.master_id().unwrap_or_default()),
        );
        let _ = tx.try_send(events::record(&first));
        let watcher_tx = tx.clone();
        let suppressed: BTreeSet<String> = suppressed_roles.into_iter().collect();

        let known = inner.frameworks.contains_key(&framework_id);
        if known {
            // Only one subscription per framework: the old stream ends.
            offers::recover_framework_offers(&mut inner, &framework_id, true);
            if let Some(old) = inner.frameworks.get_mut(&framework_id)
                && let Some(old_stream) = old.stream.take()
            {
                let _ = old_stream
                    .tx
                    .try_send(events::record(&events::error("Framework failed over")));
            }
        }
        let fw = FrameworkRuntime {
            info,
            stream: Some(Stream {
                id: stream_id.clone(),
                tx,
            }),
            failover_deadline: None,
            suppressed_roles: suppressed,
        };
        let spec = fw.spec(&framework_id);
        if known {
            inner.allocator.update_framework(spec);
            inner.allocator.activate_framework(&framework_id);
        } else {
            inner.allocator.add_framework(spec, unix_now());
        }
        inner.frameworks.insert(framework_id.clone(), fw);
        drop(inner);
        drop(w);
        tracing::info!(%framework_id, "framework subscribed");

        let master = Arc::clone(self);
        let (fid, sid) = (framework_id.clone(), stream_id.clone());
        tokio::spawn(async move {
            watcher_tx.closed().await;
            master.framework_disconnected(&fid, &sid);
        });
        self.want_allocation();
        Subscription {
            framework_id,
            stream_id,
            events: rx,
        }
    }

    /// The Mesos rules for every call but SUBSCRIBE.
    pub fn check_stream(
        &self,
        framework_id: &str,
        stream_id: Option<&str>,
    ) -> Result<(), CallError> {
        let inner = self.lock();
        if inner.registry.framework(framework_id).is_none() {
            return Err(bad("Framework cannot be found"));
        }
        let Some(stream) = inner
            .frameworks
            .get(framework_id)
            .and_then(|f| f.stream.as_ref())
        else {
            return Err(CallError {
                status: 403,
                reason: "Framework is not subscribed".into(),
            });
        };
        match stream_id {
            None => Err(bad(
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
            )),
            Some(s) if s != stream.id => Err(bad(format!(
                "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// The subscription's connection closed.
    pub(crate) fn framework_disconnected(&self, framework_id: &str, stream_id: &str) {
        let mut inner = self.lock();
        let Some(fw) = inner.frameworks.get_mut(framework_id) else {
            return;
        };
        if fw.stream.as_ref().is_some_and(|s| s.id != stream_id) {
            return;
        }
        fw.stream = None;
        fw.failover_deadline = Some(Instant::now() + fw.failover_timeout());
        tracing::info!(%framework_id, timeout = ?fw.failover_timeout(), "framework disconnected");
        inner.allocator.deactivate_framework(framework_id);
        offers::recover_framework_offers(&mut inner, framework_id, false);
        drop(inner);
        self.want_allocation();
    }

    /// TEARDOWN (scheduler or operator).
    pub async fn teardown(&self, framework_id: &str) -> Result<(), CallError> {
        if !self.lock().frameworks.contains_key(framework_id) {
            return Err(bad("Framework cannot be found"));
        }
        self.remove_framework(framework_id).await;
        tracing::info!(%framework_id, "framework torn down");
        Ok(())
    }

    /// UPDATE_FRAMEWORK.
    pub async fn update_framework(
        &self,
        framework_id: &str,
        info: FrameworkInfo,
        info_json: Json,
        suppressed_roles: Vec<String>,
    ) -> Result<(), CallError> {
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(framework_id) {
            return Err(bad("'framework_info.id' must equal 'framework_id'"));
        }
        validate_info(&info).map_err(bad)?;
        let w = self.write().await;
        {
            let inner = self.lock();
            let Some(fw) = inner.frameworks.get(framework_id) else {
                return Err(bad("Framework cannot be found"));
            };
            let old = &fw.info;
            if old.principal != info.principal
                || old.user != info.user
                || old.checkpoint != info.checkpoint
            {
                return Err(bad(
                    "'principal', 'user' and 'checkpoint' cannot be changed",
                ));
            }
        }
        let cmd = Command::UpdateFramework {
            framework_id: framework_id.to_string(),
            info: info_json,
        };
        self.commit(&w, cmd).await.map_err(|e| bad(e.to_string()))?;
        let mut inner = self.lock();
        let Some(fw) = inner.frameworks.get_mut(framework_id) else {
            return Err(bad("Framework cannot be found"));
        };
        fw.info = info;
        fw.suppressed_roles = suppressed_roles.into_iter().collect();
        let spec = fw.spec(framework_id);
        inner.allocator.update_framework(spec);
        offers::recover_framework_offers(&mut inner, framework_id, true);
        drop(inner);
        self.want_allocation();
        Ok(())
    }

    /// HEARTBEAT to every subscribed framework.
    pub fn send_heartbeats(&self) {
        let mut inner = self.lock();
        let ids: Vec<String> = inner.frameworks.keys().cloned().collect();
        let hb = events::heartbeat();
        for id in ids {
            send_event(&mut inner, &id, &hb);
        }
    }

    /// SUPPRESS / REVIVE.
    pub fn suppress(&self, framework_id: &str, roles: &[String], revive: bool) {
        let mut inner = self.lock();
        let Some(fw) = inner.frameworks.get_mut(framework_id) else {
            return;
        };
        let all = fw.roles();
        let target: Vec<String> = if roles.is_empty() {
            all
        } else {
            roles.to_vec()
        };
        for r in &target {
            if revive {
                fw.suppressed_roles.remove(r);
            } else {
                fw.suppressed_roles.insert(r.clone());
            }
        }
        if revive {
            inner.allocator.revive(framework_id, &target);
        } else {
            inner.allocator.suppress(framework_id, &target);
        }
        drop(inner);
        if revive {
            self.want_allocation();
        }
    }
}

/// A framework as operator views show it.
#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: String,
    pub info: Json,
    pub connected: bool,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
}

impl Master {
    pub fn framework_views(&self) -> Vec<FrameworkView> {
        let inner = self.lock();
        inner
            .registry
            .frameworks()
            .map(|r| FrameworkView {
                id: r.id.clone(),
                info: r.info.clone(),
                connected: inner.frameworks.get(&r.id).is_some_and(|f| f.connected()),
                registered_time: r.registered_time,
                reregistered_time: r.reregistered_time,
            })
            .collect()
    }
}
