//! [`RaftOptions`]: timing and log compaction, and the openraft `Config`
//! made from them.

use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, ConfigError, SnapshotPolicy};

/// Timing and log compaction. The defaults suit masters on one LAN: a
/// killed leader is replaced well within a second. (openraft 0.9 lets a
/// follower campaign `election_timeout_max` + a random election timeout
/// after the last heartbeat it heard: 450 to 600 ms by default.)
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Also the time limit of every AppendEntries call in openraft 0.9, so
    /// it must cover a follower's fsync on a slow disk.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range
    /// starts an election.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Snapshot after this many applied entries since the last snapshot.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so that slightly lagging
    /// followers catch up from the log instead of the whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// How long [`super::RaftNode::propose`] waits for the commit.
    pub propose_timeout: Duration,
    /// For this long after start, the cluster forms only once every master
    /// in `--masters` answers (so that a disagreeing list is noticed);
    /// afterwards a majority suffices.
    pub formation_grace: Duration,
    /// Whether the leader replicates its new entries while its own fsync
    /// runs (the default) instead of after it (openraft 0.9's own order).
    /// Both keep every applied write on a quorum's disks (see
    /// `log_writer`); `false` is there to measure the difference.
    pub overlap_leader_fsync: bool,
    /// Bytes preallocated per log segment ([`super::wal::SEGMENT_SIZE`]).
    /// Tests make it small; a store must be reopened with the size it was
    /// written with.
    pub segment_size: u64,
    /// TLS between masters (`docs/design/0006-trust.md`): the client
    /// configuration that reaches the others with this master's
    /// certificate. With it, the Raft service answers only peers whose
    /// certificate names the master role.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            snapshot_every: 5000,
            logs_kept_after_snapshot: 1000,
            propose_timeout: Duration::from_secs(5),
            formation_grace: Duration::from_secs(10),
            overlap_leader_fsync: true,
            tls: None,
            segment_size: super::wal::SEGMENT_SIZE,
        }
    }
}

impl RaftOptions {
    /// The lease for [`super::RaftReplicator::with_lease`]: at least
    /// [`super::replicator::LEADER_LEASE`], and never shorter than three
    /// times the longest election timeout, so that a leader does not give
    /// up before the others would have replaced it.
    pub fn leader_lease(&self) -> Duration {
        super::replicator::LEADER_LEASE.max(self.election_timeout_max * 3)
    }

    pub(super) fn config(&self) -> Result<Config, Box<ConfigError>> {
        let ms = |d: Duration| d.as_millis() as u64;
        Config {
            cluster_name: "keel-masters".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: 5000,
            // Entries per AppendEntries; each holds up to
            // `proposer::MAX_BATCH` commands.
            max_payload_entries: 16,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            snapshot_max_chunk_size: 4 << 20,
            ..Default::default()
        }
        .validate()
        .map_err(Box::new)
    }
}
