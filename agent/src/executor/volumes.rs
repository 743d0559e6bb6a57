//! Persistent volumes in sandboxes, as Mesos places them. A task whose
//! resources hold a `disk` with `disk.persistence.id` and
//! `disk.volume.container_path` gets the volume's directory
//!
//! ```text
//! <work_dir>/volumes/roles/<role>/<persistence id>/     created on first use, kept
//! ```
//!
//! at `<sandbox>/<container_path>`: bind-mounted (read-only for `mode: RO`)
//! when the task has its own mount namespace, else a symlink (Mesos'
//! `filesystem/posix`; `RO` is then not enforced and the task's
//! TASK_STARTING says so). The directory outlives the task, so the next
//! task given the volume sees what the last one wrote.
//!
//! [`parse`] is pure; [`prepare`] and [`link`] touch only the work dir and
//! the sandbox. The mount itself is in `isolation::mounts`, done by the
//! container's init.

use keel_api::mesos;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::isolation::mounts::VolumeBind;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("persistent volume {id:?}: {reason}")]
    Invalid { id: String, reason: String },
    #[error("persistent volume {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One persistent volume a task uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `disk.persistence.id`.
    pub id: String,
    /// The role its disk is reserved to.
    pub role: String,
    /// `<work_dir>/volumes/roles/<role>/<id>`.
    pub host: PathBuf,
    /// Relative to the task's sandbox, without `..`.
    pub container_path: PathBuf,
    /// `disk.volume.mode: RO`.
    pub readonly: bool,
}

impl Volume {
    /// How the container's init mounts it.
    pub fn bind(&self) -> VolumeBind {
        VolumeBind {
            source: self.host.clone(),
            target: self.container_path.clone(),
            readonly: self.readonly,
        }
    }
}

/// One path component of a role or id: non-empty, not `.`/`..`, no `/`
/// or NUL.
fn component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']) && s.len() <= 255
}

/// `<work_dir>/volumes/roles/<role>/<id>`; a hierarchical role
/// (`eng/dev`) is nested directories, as in Mesos.
pub fn host_dir(work_dir: &Path, role: &str, id: &str) -> Option<PathBuf> {
    if !component(id) || role == "*" || !role.split('/').all(component) {
        return None;
    }
    Some(work_dir.join("volumes/roles").join(role).join(id))
}

/// Deletes a destroyed volume's data (`host_dir`); one already gone is
/// not an error.
pub fn destroy(dir: &Path) -> Result<(), VolumeError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(dir)(e)),
        _ => Ok(()),
    }
}

/// `container_path` if it stays inside the sandbox: relative, no `..`
/// (`.` components are dropped).
fn contained(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.contains('\0')
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let normal: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    (ok && normal.components().next().is_some()).then_some(normal)
}

/// The persistent volumes among a TaskInfo's `resources`.
pub fn parse(work_dir: &Path, resources: &[mesos::Resource]) -> Result<Vec<Volume>, VolumeError> {
    let mut out: Vec<Volume> = Vec::new();
    for r in resources {
        let Some(id) = r.persistence_id() else {
            continue;
        };
        let invalid = |reason: &str| VolumeError::Invalid {
            id: id.to_string(),
            reason: reason.to_string(),
        };
        let role = r
            .checked_role()
            .ok_or_else(|| invalid("reservation has no role"))?;
        let host = host_dir(work_dir, role, id)
            .ok_or_else(|| invalid(&format!("no directory for role {role:?} and this id")))?;
        let volume = r.disk.as_ref().and_then(|d| d.volume.as_ref());
        let path = volume
            .map(|v| v.container_path.as_str())
            .ok_or_else(|| invalid("'disk.volume.container_path' is missing"))?;
        let container_path = contained(path).ok_or_else(|| {
            invalid(&format!(
                "container_path {path:?} must be a relative path inside the sandbox"
            ))
        })?;
        let readonly = match volume.and_then(|v| v.mode.as_deref()) {
            None | Some("RW") => false,
            Some("RO") => true,
            Some(m) => return Err(invalid(&format!("mode {m:?} is not RW or RO"))),
        };
        if out.iter().any(|o| {
            o.container_path.starts_with(&container_path)
                || container_path.starts_with(&o.container_path)
        }) {
            return Err(invalid(&format!(
                "container_path {path:?} overlaps another volume's"
            )));
        }
        out.push(Volume {
            id: id.to_string(),
            role: role.to_string(),
            host,
            container_path,
            readonly,
        });
    }
    Ok(out)
}

/// Creates the volume's directory if it is new (given to `owner`, the
/// task's user, as Mesos does on first use); an existing one is kept as
/// it is.
pub fn prepare(v: &Volume, owner: Option<(u32, u32)>) -> Result<(), VolumeError> {
    if v.host.is_dir() {
        return Ok(());
    }
    let parent = v.host.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(io(parent))?;
    match fs::create_dir(&v.host) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io(&v.host)(e)),
    }
    if let Some((uid, gid)) = owner {
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        rustix::fs::chown(&v.host, Some(uid), Some(gid)).map_err(|e| io(&v.host)(e.into()))?;
    }
    // The new entry must survive a crash like the data written into it.
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

/// Creates `<sandbox>/<container_path>` as the mount point of a bind
/// mount (an empty directory).
pub fn mount_point(sandbox: &Path, v: &Volume) -> Result<PathBuf, VolumeError> {
    let at = sandbox.join(&v.container_path);
    fs::create_dir_all(&at).map_err(io(&at))?;
    Ok(at)
}

/// Points `<sandbox>/<container_path>` at the volume (idempotent: a link
/// already there to the volume is kept; anything else is an error).
pub fn link(sandbox: &Path, v: &Volume) -> Result<(), VolumeError> {
    let at = sandbox.join(&v.container_path);
    if let Some(parent) = at.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    match fs::read_link(&at) {
        Ok(to) if to == v.host => return Ok(()),
        Ok(_) => {
            return Err(io(&at)(std::io::Error::other(
                "a different link is in the way",
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => {
            return Err(io(&at)(std::io::Error::other(
                "something that is not a link is in the way",
            )));
        }
    }
    std::os::unix::fs::symlink(&v.host, &at).map_err(io(&at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    /// `parse` over resources written as JSON.
    fn parse(work_dir: &Path, list: &[Json]) -> Result<Vec<Volume>, VolumeError> {
        let typed: Vec<mesos::Resource> = list
            .iter()
            .map(|j| mesos::parse(j.clone()).unwrap())
            .collect();
        super::parse(work_dir, &typed)
    }

    fn disk(id: &str, path: &str, mode: Option<&str>) -> Json {
        let mut volume = json!({"container_path": path});
        if let Some(m) = mode {
            volume["mode"] = json!(m);
        }
        json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 64},
               "reservations": [{"type": "DYNAMIC", "role": "eng"}],
               "disk": {"persistence": {"id": id}, "volume": volume}})
    }

    #[test]
    fn finds_the_volumes_among_the_resources() {
        let w = Path::new("/w");
        let cpus = json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}});
        let plain_disk = json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 1}});
        let vols = parse(
            w,
            &[
                cpus,
                plain_disk,
                disk("db", "data", None),
                disk("logs", "./a/logs", Some("RO")),
            ],
        )
        .unwrap();
        assert_eq!(
            vols,
            [
                Volume {
                    id: "db".into(),
                    role: "eng".into(),
                    host: "/w/volumes/roles/eng/db".into(),
                    container_path: "data".into(),
                    readonly: false,
                },
                Volume {
                    id: "logs".into(),
                    role: "eng".into(),
                    host: "/w/volumes/roles/eng/logs".into(),
                    container_path: "a/logs".into(),
                    readonly: true,
                }
            ]
        );
        // Pre-refinement role, hierarchical.
        let old = json!({"name": "disk", "type": "SCALAR", "role": "eng/dev", "scalar": {"value": 1},
            "disk": {"persistence": {"id": "v"}, "volume": {"container_path": "v"}}});
        assert_eq!(
            parse(w, &[old]).unwrap()[0].host,
            Path::new("/w/volumes/roles/eng/dev/v")
        );
        // Roles are read by the API's one rule, as the master reads them:
        // an empty `role` is unset, a reservation must name its role.
        let mut zero = disk("db", "data", None);
        zero["role"] = json!("");
        assert_eq!(parse(w, &[zero]).unwrap()[0].role, "eng");
        let mut nameless = disk("db", "data", None);
        nameless["reservations"] = json!([{"type": "DYNAMIC"}]);
        let err = parse(w, &[nameless]).unwrap_err().to_string();
        assert!(err.contains("reservation has no role"), "{err}");
    }

    #[test]
    fn escapes_and_bad_ids_are_refused() {
        let w = Path::new("/w");
        for bad in [
            disk("v", "/etc", None),
            disk("v", "../../x", None),
            disk("v", "a/../../x", None),
            disk("v", "", None),
            disk("v", ".", None),
            disk("..", "data", None),
            disk("a/b", "data", None),
            disk("v", "data", Some("WO")),
        ] {
            let err = parse(w, std::slice::from_ref(&bad)).unwrap_err();
            assert!(err.to_string().starts_with("persistent volume"), "{err}");
        }
        let unreserved = json!({"name": "disk", "type": "SCALAR", "role": "*", "scalar": {"value": 1},
            "disk": {"persistence": {"id": "v"}, "volume": {"container_path": "v"}}});
        assert!(parse(w, &[unreserved]).is_err());
        let overlap = [disk("a", "data", None), disk("b", "data/inner", None)];
        assert!(parse(w, &overlap).is_err());
    }

    #[test]
    fn the_directory_is_made_once_and_linked_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let v = &parse(dir.path(), &[disk("db", "a/data", None)]).unwrap()[0];
        prepare(v, None).unwrap();
        fs::write(v.host.join("kept"), "1").unwrap();
        prepare(v, None).unwrap();
        assert!(v.host.join("kept").is_file(), "an existing volume is kept");
        let sandbox = dir.path().join("sandbox");
        link(&sandbox, v).unwrap();
        link(&sandbox, v).unwrap();
        assert_eq!(
            fs::read_to_string(sandbox.join("a/data/kept")).unwrap(),
            "1"
        );
        let other = dir.path().join("other");
        fs::create_dir_all(other.join("a/data")).unwrap();
        assert!(link(&other, v).is_err(), "a directory in the way");
        assert_eq!(mount_point(&other, v).unwrap(), other.join("a/data"));
    }
}
