//! The server side of Raft between masters: the `RaftService` gRPC service,
//! mounted on the master's API port. Each call's header is checked
//! ([`super::cluster`]) before the message reaches openraft; openraft's
//! answer, error or not, goes back as JSON. With TLS, every call, `Hello`
//! included, must come from a peer whose certificate names the master
//! role: anyone else learns nothing and moves nothing.

use std::sync::Arc;

use keel_api::raft_pb::raft_service_server::{RaftService, RaftServiceServer};
use keel_api::raft_pb::{HelloReply, HelloRequest, RaftReply, RaftRequest};
use openraft::Raft;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::cluster::{Cluster, ClusterError};
use super::network::MAX_MESSAGE_BYTES;
use super::types::TypeConfig;
use super::wire;

/// The service type to mount: `RaftServiceServer<RaftGrpc>`.
pub type RaftGrpcServer = RaftServiceServer<RaftGrpc>;

#[derive(Clone)]
pub struct RaftGrpc {
    raft: Raft<TypeConfig>,
    cluster: Arc<Cluster>,
    /// Only peers with a master certificate may call (TLS is on).
    masters_only: bool,
}

impl RaftGrpc {
    pub(crate) fn server(
        raft: Raft<TypeConfig>,
        cluster: Arc<Cluster>,
        masters_only: bool,
    ) -> RaftGrpcServer {
        RaftServiceServer::new(RaftGrpc {
            raft,
            cluster,
            masters_only,
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Refuses a caller that is not a master (when TLS is on).
    fn check_peer<T>(&self, request: &Request<T>, call: &str) -> Result<(), Status> {
        if !self.masters_only {
            return Ok(());
        }
        match request.extensions().get::<keel_pki::PeerIdentity>() {
            Some(id) if id.role == keel_pki::Role::Master => Ok(()),
            other => {
                let who = other.map_or("a peer without a certificate".to_string(), |id| {
                    format!("{} {:?}", id.role, id.name)
                });
                tracing::warn!(call, peer = %who, "raft call refused: not a master");
                Err(Status::permission_denied(format!(
                    "raft {call}: only masters may call (the caller is {who})"
                )))
            }
        }
    }

    async fn admit(&self, request: &RaftRequest) -> Result<(), Status> {
        let header = request
            .header
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("raft call without a header"))?;
        self.cluster.admit(header).await.map_err(|e| match e {
            ClusterError::Store(_) => Status::internal(e.to_string()),
            _ => Status::failed_precondition(e.to_string()),
        })
    }
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    let payload =
        wire::encode("raft reply", result).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftReply { payload }))
}

fn bad_request(e: wire::WireError) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.check_peer(&request, "append entries")?;
        let request = request.into_inner();
        self.admit(&request).await?;
        let rpc = wire::decode("append entries", &request.payload).map_err(bad_request)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.check_peer(&request, "vote")?;
        let request = request.into_inner();
        self.admit(&request).await?;
        let rpc = wire::decode("vote", &request.payload).map_err(bad_request)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.check_peer(&request, "install snapshot")?;
        let request = request.into_inner();
        self.admit(&request).await?;
        let rpc = wire::decode_chunk(&request.payload, request.data).map_err(bad_request)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.check_peer(&request, "hello")?;
        let request = request.into_inner();
        if request.masters != self.cluster.masters {
            tracing::debug!(
                from = request.from,
                theirs = ?request.masters,
                ours = ?self.cluster.masters,
                "a master was started with a different --masters list"
            );
        }
        let identity = self.cluster.identity();
        let initialized = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some();
        Ok(Response::new(HelloReply {
            node_id: identity.node_id,
            incarnation: identity.incarnation,
            cluster_id: identity.cluster_id.unwrap_or_default(),
            masters: self.cluster.masters.clone(),
            initialized,
            addr: identity.addr,
        }))
    }
}
