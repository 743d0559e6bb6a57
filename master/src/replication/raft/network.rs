//! The client side of Raft between masters: openraft's
//! [`RaftNetworkFactory`]/[`RaftNetwork`] over the `RaftService` gRPC
//! service, one lazily connected channel per peer address, made by the
//! node's [`Connector`].
//!
//! Failures map onto openraft's retry rules: a peer that cannot be reached,
//! refuses the call (see [`super::cluster`]) or sends garbage is
//! `Unreachable` (openraft backs off), a slow one is a `Timeout`, and an
//! error Raft raised on the peer is a `RemoteError`.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_api::raft_pb::raft_service_client::RaftServiceClient;
use keel_api::raft_pb::{HelloReply, HelloRequest, RaftRequest};
use openraft::RPCTypes;
use openraft::error::{
    InstallSnapshotError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::cluster::Cluster;
use super::connector::{ConnectError, Connector};
use super::log_writer::Durability;
use super::types::{MasterNode, NodeId, TypeConfig};
use super::wire;

/// Raft messages may carry many entries or a snapshot chunk.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;

type Client = RaftServiceClient<Channel>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{addr}: {message}")]
    Refused { addr: String, message: String },
    #[error("{addr}: no answer within {timeout:?}")]
    NoAnswer { addr: String, timeout: Duration },
}

/// Channels to peers, shared by every client openraft creates.
#[derive(Clone)]
pub struct Network {
    cluster: Arc<Cluster>,
    connector: Arc<dyn Connector>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// This master's log: followers learn only of commits durable here.
    durable: Durability,
}

impl Network {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        connector: Arc<dyn Connector>,
        durable: Durability,
    ) -> Network {
        Network {
            cluster,
            connector,
            channels: Arc::default(),
            durable,
        }
    }

    /// A client for `addr`, reusing its channel. Connection happens on the
    /// first call, and again after failures.
    pub(crate) fn client(&self, addr: &str) -> Result<Client, ConnectError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = self.connector.connect(addr)?;
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Asks the master at `addr` who it is.
    pub(crate) async fn hello(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<HelloReply, NetworkError> {
        let mut client = self.client(addr)?;
        let request = HelloRequest {
            from: self.cluster.id,
            masters: self.cluster.masters.clone(),
        };
        match tokio::time::timeout(timeout, client.hello(request)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(NetworkError::Refused {
                addr: addr.to_string(),
                message: status.message().to_string(),
            }),
            Err(_) => Err(NetworkError::NoAnswer {
                addr: addr.to_string(),
                timeout,
            }),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MasterNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            client: self.client(&node.addr),
            cluster: self.cluster.clone(),
            durable: self.durable.clone(),
        }
    }
}

/// Raft calls to one peer.
pub struct PeerClient {
    target: NodeId,
    node: MasterNode,
    client: Result<Client, ConnectError>,
    cluster: Arc<Cluster>,
    durable: Durability,
}

/// Why a call produced no reply.
enum Failed {
    Unreachable(Unreachable),
    Timeout(Duration),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl PeerClient {
    async fn call(
        &mut self,
        action: RPCTypes,
        payload: Vec<u8>,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, Failed> {
        let unreachable =
            |e: &dyn Error| Failed::Unreachable(Unreachable::new(&Refused(e.to_string())));
        let mut client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(unreachable(e)),
        };
        let request = RaftRequest {
            header: Some(self.cluster.header_for(self.target, self.node.incarnation)),
            payload,
            data,
        };
        let call = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        match tokio::time::timeout(ttl, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner().payload),
            Ok(Err(status)) => {
                if status.code() == tonic::Code::FailedPrecondition {
                    tracing::warn!(peer = self.target, addr = %self.node.addr,
                        "{action:?} refused: {}", status.message());
                }
                Err(unreachable(&status))
            }
            Err(_) => Err(Failed::Timeout(ttl)),
        }
    }

    fn rpc_error<E: Error>(&self, action: RPCTypes, f: Failed) -> RPCError<NodeId, MasterNode, E> {
        match f {
            Failed::Unreachable(u) => RPCError::Unreachable(u),
            Failed::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.cluster.id,
                target: self.target,
                timeout,
            }),
        }
    }

    /// Sends one message and decodes `Result<Resp, RaftError<E>>` back.
    async fn round_trip<Resp, E>(
        &mut self,
        action: RPCTypes,
        payload: Result<Vec<u8>, wire::WireError>,
        data: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, MasterNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let payload = payload.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let reply = self
            .call(action, payload, data, ttl)
            .await
            .map_err(|f| self.rpc_error(action, f))?;
        let decoded: Result<Resp, RaftError<NodeId, E>> = wire::decode("raft reply", &reply)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        decoded.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MasterNode, RaftError<NodeId>>>
    {
        // openraft may count this leader's entries before they are on its
        // disk (see `log_writer`); followers must not apply them until then.
        rpc.leader_commit = self.durable.commit_bound(rpc.leader_commit);
        let payload = wire::encode("append entries", &rpc);
        self.round_trip(
            RPCTypes::AppendEntries,
            payload,
            Vec::new(),
            option.hard_ttl(),
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, MasterNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let (payload, data) = match wire::encode_chunk(rpc) {
            Ok((p, d)) => (Ok(p), d),
            Err(e) => (Err(e), Vec::new()),
        };
        self.round_trip(RPCTypes::InstallSnapshot, payload, data, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MasterNode, RaftError<NodeId>>> {
        let payload = wire::encode("vote", &rpc);
        self.round_trip(RPCTypes::Vote, payload, Vec::new(), option.hard_ttl())
            .await
    }
}
