//! Who this master is to the other masters, and whom it lets in.
//!
//! A master's store carries an [`Identity`]: its node id, its address, a
//! random *incarnation* drawn when the store was created, and the id of the
//! cluster it belongs to (set by the master that formed the cluster, adopted
//! by the others from the first Raft call they accept). Every Raft call
//! carries a header with the sender's cluster id and the incarnation the
//! sender's membership knows for the receiver; [`admit`] checks it before
//! the call reaches Raft. So a master whose store was wiped answers with a
//! new incarnation and is refused (it would otherwise vote and acknowledge
//! entries with an empty log, which Raft's safety does not survive), and a
//! master that belongs to another cluster is refused too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};

use keel_api::raft_pb::Header;
use serde::{Deserialize, Serialize};

use super::db::{Db, StoreError, key};
use super::log_store::blocking;
use super::types::{MasterNode, NodeId};

/// This master's identity, persisted in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    pub addr: String,
    pub incarnation: u64,
    pub cluster_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("call meant for node {to} reached node {me}")]
    WrongNode { to: NodeId, me: NodeId },
    #[error("call from node {from} carries no cluster id")]
    NoClusterId { from: NodeId },
    #[error(
        "the cluster knows node {me} as store incarnation {known}, but this store is \
         incarnation {mine}: this master's data was wiped or replaced, and it rejoins only \
         when an operator adds it again (keelctl masters add)"
    )]
    Wiped { me: NodeId, known: u64, mine: u64 },
    #[error("call from node {from} of cluster {theirs}, but this master belongs to cluster {mine}")]
    OtherCluster {
        from: NodeId,
        theirs: String,
        mine: String,
    },
    #[error("cannot record the cluster id: {0}")]
    Store(String),
}

/// The checks on an incoming Raft call. `Ok(Some(id))`: accept and adopt
/// cluster `id` (this master has not joined one yet).
pub fn admit(me: &Identity, h: &Header) -> Result<Option<String>, ClusterError> {
    if h.to != me.node_id {
        return Err(ClusterError::WrongNode {
            to: h.to,
            me: me.node_id,
        });
    }
    if h.cluster_id.is_empty() {
        return Err(ClusterError::NoClusterId { from: h.from });
    }
    if h.to_incarnation != 0 && h.to_incarnation != me.incarnation {
        return Err(ClusterError::Wiped {
            me: me.node_id,
            known: h.to_incarnation,
            mine: me.incarnation,
        });
    }
    match &me.cluster_id {
        Some(mine) if *mine != h.cluster_id => Err(ClusterError::OtherCluster {
            from: h.from,
            theirs: h.cluster_id.clone(),
            mine: mine.clone(),
        }),
        Some(_) => Ok(None),
        None => Ok(Some(h.cluster_id.clone())),
    }
}

/// Runtime state shared by the gRPC service, the network client and the
/// node: the identity, the latest membership, problems to report.
pub(crate) struct Cluster {
    pub id: NodeId,
    pub addr: String,
    /// The `--masters` list, sorted.
    pub masters: Vec<String>,
    identity: RwLock<Identity>,
    adopting: tokio::sync::Mutex<()>,
    db: Weak<Db>,
    db_path: PathBuf,
    problem: Mutex<Option<String>>,
    last_logged: Mutex<Option<String>>,
    members: RwLock<BTreeMap<NodeId, MasterNode>>,
}

impl Cluster {
    pub fn new(identity: Identity, masters: Vec<String>, db: &Arc<Db>) -> Cluster {
        Cluster {
            id: identity.node_id,
            addr: identity.addr.clone(),
            masters,
            identity: RwLock::new(identity),
            adopting: tokio::sync::Mutex::new(()),
            db: Arc::downgrade(db),
            db_path: db.path().to_path_buf(),
            problem: Mutex::new(None),
            last_logged: Mutex::new(None),
            members: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks an incoming call; adopts the caller's cluster id (durably)
    /// when this master has none yet.
    pub async fn admit(&self, h: &Header) -> Result<(), ClusterError> {
        let checked = admit(&self.identity(), h);
        let adopt = match checked {
            Ok(None) => return Ok(()),
            Ok(Some(id)) => id,
            Err(e) => {
                if matches!(
                    e,
                    ClusterError::Wiped { .. } | ClusterError::OtherCluster { .. }
                ) {
                    self.report(format!("refusing Raft calls: {e}"));
                }
                return Err(e);
            }
        };
        let _one_at_a_time = self.adopting.lock().await;
        if self.identity().cluster_id.is_none() {
            tracing::info!(cluster = %adopt, from = h.from, "joining the masters' cluster");
            self.set_cluster_id(adopt)
                .await
                .map_err(|e| ClusterError::Store(e.to_string()))?;
        }
        admit(&self.identity(), h).map(|_| ())
    }

    /// Records the cluster id in the store, then in memory.
    pub async fn set_cluster_id(&self, cluster_id: String) -> Result<(), StoreError> {
        let mut next = self.identity();
        next.cluster_id = Some(cluster_id);
        let db = self.db.upgrade().ok_or_else(|| StoreError::Closed {
            path: self.db_path.clone(),
        })?;
        let stored = next.clone();
        blocking(&db, move |db| db.put(key::IDENTITY, &stored)).await?;
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The header of a call to `to`, whose incarnation the membership
    /// knows (else `fallback`, from the node record openraft passed).
    pub fn header_for(&self, to: NodeId, fallback: u64) -> Header {
        let to_incarnation = self
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&to)
            .map_or(fallback, |n| n.incarnation);
        Header {
            cluster_id: self.identity().cluster_id.unwrap_or_default(),
            from: self.id,
            to,
            to_incarnation,
        }
    }

    pub fn set_members(&self, members: BTreeMap<NodeId, MasterNode>) {
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = members;
    }

    /// Records a problem an operator must see (logged once per change).
    pub fn report(&self, problem: String) {
        let mut logged = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.as_deref() != Some(problem.as_str()) {
            tracing::error!("{problem}");
            *logged = Some(problem.clone());
        }
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(problem);
    }

    pub fn clear_problem(&self) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(cluster: Option<&str>) -> Identity {
        Identity {
            node_id: 7,
            addr: "127.0.0.1:5050".into(),
            incarnation: 42,
            cluster_id: cluster.map(str::to_string),
        }
    }

    fn header(cluster: &str, to: NodeId, to_incarnation: u64) -> Header {
        Header {
            cluster_id: cluster.into(),
            from: 1,
            to,
            to_incarnation,
        }
    }

    #[test]
    fn members_of_the_same_cluster_are_admitted() {
        assert_eq!(admit(&me(Some("c")), &header("c", 7, 42)), Ok(None));
        // Not yet bound to an incarnation: admitted too.
        assert_eq!(admit(&me(Some("c")), &header("c", 7, 0)), Ok(None));
    }

    #[test]
    fn a_fresh_master_adopts_the_callers_cluster() {
        assert_eq!(
            admit(&me(None), &header("c", 7, 0)),
            Ok(Some("c".to_string()))
        );
        assert_eq!(
            admit(&me(None), &header("c", 7, 42)),
            Ok(Some("c".to_string()))
        );
    }

    #[test]
    fn a_wiped_store_is_refused() {
        // The cluster knew incarnation 41; this store was created since.
        let err = admit(&me(None), &header("c", 7, 41)).unwrap_err();
        assert_eq!(
            err,
            ClusterError::Wiped {
                me: 7,
                known: 41,
                mine: 42
            }
        );
        assert!(err.to_string().contains("keelctl masters add"), "{err}");
    }

    #[test]
    fn other_clusters_and_misaddressed_calls_are_refused() {
        assert!(matches!(
            admit(&me(Some("c")), &header("d", 7, 42)),
            Err(ClusterError::OtherCluster { .. })
        ));
        assert_eq!(
            admit(&me(Some("c")), &header("c", 8, 42)),
            Err(ClusterError::WrongNode { to: 8, me: 7 })
        );
        assert_eq!(
            admit(&me(Some("c")), &header("", 7, 42)),
            Err(ClusterError::NoClusterId { from: 1 })
        );
    }
}
