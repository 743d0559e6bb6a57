//! The container's network namespace: attached to the bridge before the
//! task starts (the task's init joins it), host ports forwarded while it
//! runs (again after an agent restart), detached when the container's last
//! task is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{HookError, TaskContext, TaskHook};
use crate::executor::launcher::LaunchSpec;
use crate::isolation::network::Network;
use crate::isolation::network::proxy::PortProxies;

pub struct NetworkHook {
    pub network: Arc<dyn Network>,
    pub proxies: PortProxies,
    /// Tasks per container using its namespace (a task group shares one).
    users: Mutex<HashMap<String, usize>>,
}

impl NetworkHook {
    pub fn new(network: Arc<dyn Network>) -> Self {
        NetworkHook {
            network,
            proxies: PortProxies::default(),
            users: Mutex::default(),
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TaskHook for NetworkHook {
    fn name(&self) -> &'static str {
        "network"
    }

    fn prestart(&self, ctx: &TaskContext, spec: &mut LaunchSpec) -> Result<(), HookError> {
        let Some(att) = &ctx.isolation.network else {
            return Ok(());
        };
        let path = self.network.attach(&ctx.container_id, att)?;
        *self.users().entry(ctx.container_id.clone()).or_insert(0) += 1;
        self.proxies
            .start(&ctx.container_id, att.ip, &att.port_mappings)?;
        spec.netns = Some(path);
        Ok(())
    }

    fn recover(&self, ctx: &TaskContext) -> Result<(), HookError> {
        let Some(att) = &ctx.isolation.network else {
            return Ok(());
        };
        *self.users().entry(ctx.container_id.clone()).or_insert(0) += 1;
        Ok(self
            .proxies
            .start(&ctx.container_id, att.ip, &att.port_mappings)?)
    }

    fn poststop(&self, ctx: &TaskContext) -> Result<(), HookError> {
        if ctx.isolation.network.is_none() {
            return Ok(());
        }
        let last = {
            let mut users = self.users();
            let n = users.entry(ctx.container_id.clone()).or_insert(0);
            *n = n.saturating_sub(1);
            let last = *n == 0;
            if last {
                users.remove(&ctx.container_id);
            }
            last
        };
        if last {
            self.proxies.stop(&ctx.container_id);
            self.network.detach(&ctx.container_id)?;
        }
        Ok(())
    }
}
