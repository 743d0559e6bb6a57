//! openraft messages <-> the bytes in `raft.proto`: JSON, except snapshot
//! chunk data, which travels raw next to a JSON header.

use openraft::raft::InstallSnapshotRequest;
use openraft::{SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{MasterNode, NodeId, TypeConfig};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value).map_err(|source| WireError::Encode { what, source })
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(bytes).map_err(|source| WireError::Decode { what, source })
}

/// An install-snapshot request without its chunk data.
#[derive(Serialize, Deserialize)]
struct ChunkHeader {
    vote: Vote<NodeId>,
    meta: SnapshotMeta<NodeId, MasterNode>,
    offset: u64,
    done: bool,
}

/// Splits a snapshot chunk into (JSON header, raw data).
pub fn encode_chunk(
    req: InstallSnapshotRequest<TypeConfig>,
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let header = ChunkHeader {
        vote: req.vote,
        meta: req.meta,
        offset: req.offset,
        done: req.done,
    };
    Ok((encode("snapshot chunk", &header)?, req.data))
}

pub fn decode_chunk(
    header: &[u8],
    data: Vec<u8>,
) -> Result<InstallSnapshotRequest<TypeConfig>, WireError> {
    let h: ChunkHeader = decode("snapshot chunk", header)?;
    Ok(InstallSnapshotRequest {
        vote: h.vote,
        meta: h.meta,
        offset: h.offset,
        data,
        done: h.done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Command;
    use crate::replication::raft::types::Batch;
    use openraft::raft::AppendEntriesRequest;
    use openraft::testing::log_id;
    use openraft::{Entry, EntryPayload, StoredMembership};

    #[test]
    fn append_entries_round_trip() {
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 9),
            prev_log_id: Some(log_id(1, 9, 4)),
            entries: vec![Entry {
                log_id: log_id(2, 9, 5),
                payload: EntryPayload::Normal(Batch(vec![Command::Bootstrap {
                    master_id: "m".into(),
                }])),
            }],
            leader_commit: Some(log_id(1, 9, 4)),
        };
        let bytes = encode("append", &req).unwrap();
        let back: AppendEntriesRequest<TypeConfig> = decode("append", &bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }

    #[test]
    fn snapshot_chunks_carry_data_raw() {
        let req = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3, 1, 100)),
                last_membership: StoredMembership::default(),
                snapshot_id: "s".into(),
            },
            offset: 1024,
            data: vec![0, 159, 255, 7],
            done: true,
        };
        let (header, data) = encode_chunk(req.clone()).unwrap();
        assert_eq!(data, req.data);
        assert!(header.len() < 400, "{}", String::from_utf8_lossy(&header));
        assert_eq!(decode_chunk(&header, data).unwrap(), req);
    }

    #[test]
    fn times_survive_exactly() {
        // Every master applies the command as decoded from JSON: floats
        // must come back bit for bit, or registries drift apart.
        let mut x: f64 = 1.0;
        for i in 0..20_000u32 {
            x = x * 1.000_123_456_789 + f64::from(i) * 1e-7;
            let at = 1_763_787_000.0 + x.fract() * 1e6 / 7.0;
            let cmd = Batch(vec![Command::DisconnectAgent {
                agent_id: "a".into(),
                at,
            }]);
            let back: Batch = decode("batch", &encode("batch", &cmd).unwrap()).unwrap();
            assert_eq!(back, cmd, "{at:?}");
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = decode::<Vote<NodeId>>("vote", b"{").unwrap_err();
        assert!(err.to_string().starts_with("cannot decode vote"), "{err}");
    }
}
