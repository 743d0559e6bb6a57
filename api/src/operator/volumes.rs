//! Persistent volumes by operator: `CREATE_VOLUMES`, `DESTROY_VOLUMES`,
//! `GROW_VOLUME`, `SHRINK_VOLUME` (`master.proto`).

use serde::{Deserialize, Serialize};

use crate::mesos::{Id, Resource};
use crate::resources::v1::Scalar;

/// `create_volumes` / `destroy_volumes`: volumes (disk resources with
/// `disk.persistence`) on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volumes {
    pub agent_id: Id,
    #[serde(default)]
    pub volumes: Vec<Resource>,
}

/// `grow_volume`: `volume` becomes larger by `addition` (reserved disk
/// of the volume's role on the same agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrowVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    pub volume: Box<Resource>,
    pub addition: Box<Resource>,
}

/// `shrink_volume`: `volume` becomes smaller by `subtract` MB, which go
/// back to reserved disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    pub volume: Box<Resource>,
    pub subtract: Scalar,
}
