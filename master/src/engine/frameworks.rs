//! Frameworks: SUBSCRIBE (new, re-subscribe, failover of the connection),
//! the stream rules for other calls, disconnection and `failover_timeout`,
//! UPDATE_FRAMEWORK, SUPPRESS/REVIVE, heartbeats and removal (TEARDOWN or
//! an expired failover timeout).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use keel_api::mesos::FrameworkInfo;
use keel_api::operator::MasterInfo;
use keel_api::operator::master::Address;
use keel_api::scheduler::{Event, Subscribe, Subscribed};

use super::{Effect, Engine, Now, Planned, loss, offers, unexpected};
use crate::allocator::FrameworkSpec;
use crate::registry::roles::valid_role;
use crate::registry::{Applied, Command};

/// A framework the master knows at runtime.
pub(super) struct FrameworkRuntime {
    pub info: FrameworkInfo,
    /// The id of its current event stream, while subscribed.
    pub stream: Option<String>,
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
            multi_role: self.info.has_capability("MULTI_ROLE"),
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

/// Why a framework's call was refused; the message is Mesos'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Framework cannot be found")]
    UnknownFramework,
    /// HTTP 403 in Mesos.
    #[error("Framework is not subscribed")]
    NotSubscribed,
    #[error("All non-subscribe calls should include the 'Mesos-Stream-Id' header")]
    MissingStreamId,
    #[error(
        "The stream ID '{given}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
    )]
    StreamMismatch { given: String, framework_id: String },
    #[error("{0}")]
    Invalid(String),
}

/// A framework as operator views show it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkView {
    pub id: String,
    pub info: FrameworkInfo,
    pub connected: bool,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
}

/// What SUBSCRIBE needs once committed.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeCtx {
    info: FrameworkInfo,
    suppressed_roles: Vec<String>,
    stream: String,
}

/// What UPDATE_FRAMEWORK needs once committed.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateCtx {
    framework_id: String,
    info: FrameworkInfo,
    suppressed_roles: Vec<String>,
}

/// Validates a FrameworkInfo the way Mesos does before subscribing.
fn validate_info(info: &FrameworkInfo) -> Result<(), Refusal> {
    let bad = |m: String| Err(Refusal::Invalid(m));
    let multi = info.has_capability("MULTI_ROLE");
    if multi && info.role.is_some() {
        return bad(
            "'FrameworkInfo.role' must not be set when the MULTI_ROLE capability is".into(),
        );
    }
    if !multi && !info.roles.is_empty() {
        return bad("'FrameworkInfo.roles' is set but the MULTI_ROLE capability is not".into());
    }
    for role in info.effective_roles() {
        if role != "*" && !valid_role(&role) {
            return bad(format!("role '{role}' is not a valid role name"));
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = info.roles.iter().find(|r| !seen.insert(r.as_str())) {
        return bad(format!("role '{dup}' appears more than once"));
    }
    Ok(())
}

/// After a takeover every known framework is disconnected and gets its
/// failover timeout to come back, and never less than the agents'
/// re-registration window: a master failover is not the scheduler's, and
/// a framework with `failover_timeout: 0` (the Mesos default) must have the
/// time to find the new leader before it is torn down.
pub(super) fn recover(e: &mut Engine, now: Now) {
    let grace = e.cfg.agent_reregister_timeout;
    let records: Vec<(String, FrameworkInfo)> = e
        .registry
        .frameworks()
        .map(|f| (f.id.clone(), f.info.clone()))
        .collect();
    for (id, info) in records {
        let mut fw = FrameworkRuntime {
            info,
            stream: None,
            failover_deadline: None,
            suppressed_roles: BTreeSet::new(),
        };
        fw.failover_deadline = Some(now.instant + fw.failover_timeout().max(grace));
        e.allocator.add_framework(fw.spec(&id), now.unix);
        e.allocator.deactivate_framework(&id);
        e.frameworks.insert(id, fw);
    }
}

impl Engine {
    /// This master as SUBSCRIBED and GET_MASTER describe it.
    pub fn master_info(&self) -> MasterInfo {
        let c = &self.cfg;
        let ip = match c.ip {
            std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
            std::net::IpAddr::V6(_) => 0,
        };
        MasterInfo {
            id: self.registry.master_id().unwrap_or_default().to_string(),
            ip,
            port: c.port,
            pid: Some(format!("master@{}:{}", c.ip, c.port)),
            hostname: Some(c.hostname.clone()),
            version: Some(keel_api::MESOS_COMPAT_VERSION.to_string()),
            address: Some(Address {
                hostname: Some(c.hostname.clone()),
                ip: Some(c.ip.to_string()),
                port: c.port,
            }),
            capabilities: Vec::new(),
        }
    }

    /// SUBSCRIBE on stream `stream`: the framework is recorded (added, or
    /// re-added under its id) before it is answered.
    pub fn subscribe(
        &self,
        framework_id: Option<String>,
        sub: Subscribe,
        stream: String,
        now: Now,
    ) -> Result<Planned<SubscribeCtx>, Refusal> {
        validate_info(&sub.framework_info)?;
        let framework_id =
            framework_id.or_else(|| sub.framework_info.id.as_ref().map(|i| i.value.clone()));
        let info = sub.framework_info.clone();
        let command = match framework_id {
            Some(framework_id) => Command::ReaddFramework {
                framework_id,
                info,
                at: now.unix,
            },
            None => Command::AddFramework { info, at: now.unix },
        };
        let ctx = SubscribeCtx {
            info: sub.framework_info,
            suppressed_roles: sub.suppressed_roles,
            stream,
        };
        self.plan(command, ctx)
            .map_err(|e| Refusal::Invalid(format!("Cannot subscribe: {e}")))
    }

    /// The subscription is recorded: SUBSCRIBED goes out on the new stream;
    /// an older stream of the framework gets ERROR and ends; its offers
    /// are rescinded. Returns the framework id.
    pub fn subscribed(
        &mut self,
        ctx: SubscribeCtx,
        applied: &Applied,
        now: Now,
    ) -> Result<String, super::EngineError> {
        let framework_id = match applied {
            Applied::FrameworkAdded { framework_id }
            | Applied::FrameworkReadded { framework_id } => framework_id.clone(),
            other => return Err(unexpected("SUBSCRIBE", other)),
        };
        // The stored info now carries the id.
        let info = self
            .registry
            .framework(&framework_id)
            .map(|r| r.info.clone())
            .unwrap_or(ctx.info);
        self.emit(Effect::ToFramework {
            framework_id: framework_id.clone(),
            stream: ctx.stream.clone(),
            event: Event::Subscribed(Subscribed {
                framework_id: keel_api::mesos::Id::new(&framework_id),
                heartbeat_interval_seconds: Some(
                    self.cfg.framework_heartbeat_interval.as_secs_f64(),
                ),
                master_info: Some(self.master_info()),
            }),
        });
        let known = self.frameworks.contains_key(&framework_id);
        if known {
            // One subscription per framework: the old stream ends, and the
            // offers made on it go back (the new one never saw them).
            offers::recover_framework_offers(self, &framework_id, false);
            if let Some(old) = self
                .frameworks
                .get_mut(&framework_id)
                .and_then(|f| f.stream.take())
            {
                self.close_stream(&framework_id, old, "Framework failed over");
            }
        }
        let fw = FrameworkRuntime {
            info,
            stream: Some(ctx.stream),
            failover_deadline: None,
            suppressed_roles: ctx.suppressed_roles.into_iter().collect(),
        };
        let spec = fw.spec(&framework_id);
        if known {
            self.allocator.update_framework(spec);
            self.allocator.activate_framework(&framework_id);
        } else {
            self.allocator.add_framework(spec, now.unix);
        }
        self.frameworks.insert(framework_id.clone(), fw);
        self.observe_framework(&framework_id, !known);
        tracing::info!(%framework_id, "framework subscribed");
        self.allocate_soon();
        Ok(framework_id)
    }

    /// ERROR on `stream`, then the end of it.
    fn close_stream(&mut self, framework_id: &str, stream: String, message: &str) {
        self.emit(Effect::ToFramework {
            framework_id: framework_id.to_string(),
            stream: stream.clone(),
            event: Event::Error(message.to_string()),
        });
        self.emit(Effect::CloseStream {
            framework_id: framework_id.to_string(),
            stream,
        });
    }

    /// The Mesos rules for every call but SUBSCRIBE.
    pub fn check_stream(&self, framework_id: &str, stream: Option<&str>) -> Result<(), Refusal> {
        if self.registry.framework(framework_id).is_none() {
            return Err(Refusal::UnknownFramework);
        }
        let current = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.stream.as_deref())
            .ok_or(Refusal::NotSubscribed)?;
        match stream {
            None => Err(Refusal::MissingStreamId),
            Some(s) if s != current => Err(Refusal::StreamMismatch {
                given: s.to_string(),
                framework_id: framework_id.to_string(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The framework's stream `stream` ended (its connection closed, or it
    /// could not take an event). Only its current stream counts.
    pub fn stream_closed(&mut self, framework_id: &str, stream: &str, now: Now) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if fw.stream.as_deref() != Some(stream) {
            return;
        }
        fw.stream = None;
        fw.failover_deadline = Some(now.instant + fw.failover_timeout());
        tracing::info!(%framework_id, timeout = ?fw.failover_timeout(), "framework disconnected");
        self.forget_reconciliation(framework_id);
        self.allocator.deactivate_framework(framework_id);
        offers::recover_framework_offers(self, framework_id, false);
        self.emit(Effect::CloseStream {
            framework_id: framework_id.to_string(),
            stream: stream.to_string(),
        });
        self.observe_framework(framework_id, false);
        self.allocate_soon();
    }

    /// TEARDOWN (scheduler or operator), or an expired failover timeout:
    /// the removal to commit. Nothing changes until it is committed.
    pub fn remove_framework(&self, framework_id: &str, now: Now) -> Result<Planned<()>, Refusal> {
        if !self.frameworks.contains_key(framework_id) {
            return Err(Refusal::UnknownFramework);
        }
        let command = Command::RemoveFramework {
            framework_id: framework_id.to_string(),
            at: now.unix,
        };
        self.plan(command, ())
            .map_err(|e| Refusal::Invalid(e.to_string()))
    }

    /// The removal is recorded: the framework's tasks are killed, its
    /// offers go back, its stream gets ERROR and ends.
    pub fn framework_removed(&mut self, framework_id: &str, now: Now) {
        offers::recover_framework_offers(self, framework_id, false);
        loss::framework_removed(self, framework_id, now);
        self.allocator.remove_framework(framework_id);
        self.forget_framework_executors(framework_id);
        if let Some(fw) = self.frameworks.remove(framework_id) {
            if let Some(stream) = fw.stream {
                self.close_stream(framework_id, stream, "Framework has been removed");
            }
            self.observe_framework_removed(fw.info);
        }
        tracing::info!(%framework_id, "framework removed");
        self.allocate_soon();
    }

    /// Frameworks whose failover timeout has passed, to be removed.
    pub fn expired_frameworks(&self, now: Now) -> Vec<String> {
        let mut ids: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| {
                !f.connected() && f.failover_deadline.is_some_and(|d| d <= now.instant)
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// UPDATE_FRAMEWORK: the new info to record.
    pub fn update_framework(
        &self,
        framework_id: &str,
        sub: Subscribe,
    ) -> Result<Planned<UpdateCtx>, Refusal> {
        let info = sub.framework_info;
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(framework_id) {
            return Err(Refusal::Invalid(
                "'framework_info.id' must equal 'framework_id'".into(),
            ));
        }
        validate_info(&info)?;
        let old = &self
            .frameworks
            .get(framework_id)
            .ok_or(Refusal::UnknownFramework)?
            .info;
        if old.principal != info.principal
            || old.user != info.user
            || old.checkpoint != info.checkpoint
        {
            return Err(Refusal::Invalid(
                "'principal', 'user' and 'checkpoint' cannot be changed".into(),
            ));
        }
        let command = Command::UpdateFramework {
            framework_id: framework_id.to_string(),
            info: info.clone(),
        };
        let ctx = UpdateCtx {
            framework_id: framework_id.to_string(),
            info,
            suppressed_roles: sub.suppressed_roles,
        };
        self.plan(command, ctx)
            .map_err(|e| Refusal::Invalid(e.to_string()))
    }

    /// The update is recorded: roles and suppression change, offers made
    /// under the old info are rescinded.
    pub fn framework_updated(&mut self, ctx: UpdateCtx) -> Result<(), Refusal> {
        let fw = self
            .frameworks
            .get_mut(&ctx.framework_id)
            .ok_or(Refusal::UnknownFramework)?;
        fw.info = ctx.info;
        fw.suppressed_roles = ctx.suppressed_roles.into_iter().collect();
        let spec = fw.spec(&ctx.framework_id);
        self.allocator.update_framework(spec);
        offers::recover_framework_offers(self, &ctx.framework_id, true);
        self.observe_framework(&ctx.framework_id, false);
        self.allocate_soon();
        Ok(())
    }

    /// HEARTBEAT to every subscribed framework.
    pub fn framework_heartbeats(&mut self) {
        let mut ids: Vec<String> = self.frameworks.keys().cloned().collect();
        ids.sort();
        for id in ids {
            self.send_framework(&id, Event::Heartbeat);
        }
    }

    /// SUPPRESS (`revive` false) or REVIVE; no roles means all of the
    /// framework's.
    pub fn suppress(&mut self, framework_id: &str, roles: &[String], revive: bool) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let target: Vec<String> = if roles.is_empty() {
            fw.roles()
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
            self.allocator.revive(framework_id, &target);
            self.allocate_soon();
        } else {
            self.allocator.suppress(framework_id, &target);
        }
    }

    /// Frameworks for the operator views, sorted by id.
    pub fn framework_views(&self) -> Vec<FrameworkView> {
        self.registry
            .frameworks()
            .map(|r| FrameworkView {
                id: r.id.clone(),
                info: r.info.clone(),
                connected: self.frameworks.get(&r.id).is_some_and(|f| f.connected()),
                registered_time: r.registered_time,
                reregistered_time: r.reregistered_time,
            })
            .collect()
    }
}
