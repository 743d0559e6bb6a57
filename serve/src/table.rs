//! The open connections of one listener, and who gets in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Limits;
use crate::conn::ConnState;

/// Refusals are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Table {
    limits: Limits,
    inner: Mutex<Inner>,
    refused: AtomicU64,
}

struct Inner {
    conns: HashMap<u64, Arc<ConnState>>,
    next_id: u64,
    /// Connections told to close to make room, still open.
    evicting: usize,
    last_log: Option<Instant>,
}

impl Table {
    pub fn new(limits: Limits) -> Self {
        Table {
            limits,
            inner: Mutex::new(Inner {
                conns: HashMap::new(),
                next_id: 0,
                evicting: 0,
                last_log: None,
            }),
            refused: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's state, or `None` when it is refused.
    pub fn admit(&self) -> Option<Arc<ConnState>> {
        let mut t = self.lock();
        let open = t.conns.len() - t.evicting;
        let reserved = if open < self.limits.max_connections {
            false
        } else if let Some(idle) = oldest_idle(&t.conns) {
            idle.evict();
            t.evicting += 1;
            false
        } else if open < self.limits.max_connections + self.limits.reserved_connections {
            true
        } else {
            return None;
        };
        let id = t.next_id;
        t.next_id += 1;
        let state = Arc::new(ConnState::new(id, reserved));
        t.conns.insert(id, state.clone());
        Some(state)
    }

    /// A connection closed.
    pub fn remove(&self, state: &ConnState) {
        let mut t = self.lock();
        if t.conns.remove(&state.id).is_some() && state.evicted() {
            t.evicting -= 1;
        }
    }

    /// A connection told to make room got a request first: it stays.
    pub fn keep(&self, state: &ConnState) {
        let mut t = self.lock();
        if state.unevict() {
            t.evicting -= 1;
        }
    }

    pub fn refused(&self, peer: SocketAddr) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut t = self.lock();
        let now = Instant::now();
        if t.last_log.is_none_or(|at| now - at >= LOG_EVERY) {
            t.last_log = Some(now);
            tracing::warn!(%peer, refused = n, open = t.conns.len(),
                max = self.limits.max_connections,
                reserved = self.limits.reserved_connections,
                "connection limit reached; closing new connections");
        }
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        let t = self.lock();
        t.conns.len() - t.evicting
    }
}

/// The connection with no request in flight for the longest time.
fn oldest_idle(conns: &HashMap<u64, Arc<ConnState>>) -> Option<&Arc<ConnState>> {
    conns
        .values()
        .filter_map(|c| c.idle_since().map(|at| (at, c)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, reserved: usize) -> Limits {
        Limits {
            max_connections: max,
            reserved_connections: reserved,
            ..Limits::MASTER
        }
    }

    #[test]
    fn idle_connections_make_room_then_reserved_then_refused() {
        let t = Table::new(limits(2, 1));
        let a = t.admit().unwrap();
        let b = t.admit().unwrap();
        // Both idle: the third takes the place of the older one.
        let c = t.admit().unwrap();
        assert!(a.evicted() && !b.evicted() && !c.reserved);
        t.remove(&a);
        assert_eq!(t.open(), 2);
        // Busy connections are never taken: a reserved one, then none.
        let _rb = b.request_started();
        let _rc = c.request_started();
        let d = t.admit().unwrap();
        assert!(d.reserved);
        let _rd = d.request_started();
        assert!(t.admit().is_none());
        // One finishes its request: it makes room again.
        drop(_rb);
        let e = t.admit().unwrap();
        assert!(b.evicted() && !e.reserved);
        // An evicted connection that got a request in time stays.
        t.keep(&b);
        assert!(!b.evicted());
        assert_eq!(t.open(), 4);
    }
}
