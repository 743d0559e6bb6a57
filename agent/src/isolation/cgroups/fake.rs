//! A recording [`Cgroups`] for tests: nothing touches the kernel. Tests
//! choose the controllers it offers and make a container run out of memory
//! with [`FakeCgroups::oom`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{
    CgroupError, CgroupPaths, Cgroups, Controller, Limitation, LimitationWatch, Limits,
    REASON_CONTAINER_LIMITATION_MEMORY, leaf_name,
};

/// One call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupCall {
    Create(CgroupPaths, Limits),
    /// A container's limits rewritten.
    Update(PathBuf, Limits),
    Kill(PathBuf),
    Remove(CgroupPaths),
}

#[derive(Clone)]
pub struct FakeCgroups {
    root: PathBuf,
    controllers: BTreeSet<Controller>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    calls: Vec<CgroupCall>,
    ooms: BTreeMap<PathBuf, watch::Sender<bool>>,
}

impl FakeCgroups {
    pub fn new(controllers: impl IntoIterator<Item = Controller>) -> Self {
        FakeCgroups {
            root: PathBuf::from("/fake/cgroup/keel"),
            controllers: controllers.into_iter().collect(),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> Vec<CgroupCall> {
        self.state().calls.clone()
    }

    /// The limits last written to the container at `container` (by a
    /// create or an update).
    pub fn limits_of(&self, container: &Path) -> Option<Limits> {
        self.state().calls.iter().rev().find_map(|c| match c {
            CgroupCall::Create(p, l) if p.container == container => Some(l.clone()),
            CgroupCall::Update(p, l) if p == container => Some(l.clone()),
            _ => None,
        })
    }

    fn oom_flag(&self, container: &Path) -> watch::Sender<bool> {
        self.state()
            .ooms
            .entry(container.to_path_buf())
            .or_insert_with(|| watch::channel(false).0)
            .clone()
    }

    /// The container at `container` runs out of memory.
    pub fn oom(&self, container: &Path) {
        self.oom_flag(container).send_replace(true);
    }

    fn limitation_of(container: &Path) -> Limitation {
        Limitation {
            reason: REASON_CONTAINER_LIMITATION_MEMORY,
            message: format!("Memory limit exceeded in {}", container.display()),
        }
    }
}

impl Cgroups for FakeCgroups {
    fn controllers(&self) -> BTreeSet<Controller> {
        self.controllers.clone()
    }

    fn paths(&self, container_id: &str, task_id: &str) -> Result<CgroupPaths, CgroupError> {
        if container_id.contains('/') || container_id.is_empty() {
            return Err(CgroupError::InvalidName(container_id.to_string()));
        }
        let container = self.root.join(container_id);
        Ok(CgroupPaths {
            leaf: container.join(leaf_name(task_id)),
            container,
        })
    }

    fn supervisors(&self) -> PathBuf {
        self.root.join("supervisors")
    }

    fn create(&self, paths: &CgroupPaths, limits: &Limits) -> Result<(), CgroupError> {
        self.state()
            .calls
            .push(CgroupCall::Create(paths.clone(), limits.clone()));
        Ok(())
    }

    fn update(&self, container: &Path, limits: &Limits) -> Result<(), CgroupError> {
        self.state()
            .calls
            .push(CgroupCall::Update(container.to_path_buf(), limits.clone()));
        Ok(())
    }

    fn kill(&self, path: &Path) -> Result<(), CgroupError> {
        self.state()
            .calls
            .push(CgroupCall::Kill(path.to_path_buf()));
        Ok(())
    }

    fn remove(&self, paths: &CgroupPaths) -> Result<(), CgroupError> {
        self.state().calls.push(CgroupCall::Remove(paths.clone()));
        Ok(())
    }

    fn limitation(&self, paths: &CgroupPaths) -> Option<Limitation> {
        let oom = *self.oom_flag(&paths.container).borrow();
        oom.then(|| Self::limitation_of(&paths.container))
    }

    fn watch(&self, paths: &CgroupPaths) -> Option<LimitationWatch> {
        let mut rx = self.oom_flag(&paths.container).subscribe();
        let container = paths.container.clone();
        Some(Box::pin(async move {
            let _ = rx.wait_for(|oom| *oom).await;
            Self::limitation_of(&container)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_calls_and_reports_ooms() {
        let f = FakeCgroups::new([Controller::Memory]);
        let p = f.paths("c", "t").unwrap();
        f.create(&p, &Limits::default()).unwrap();
        f.kill(&p.leaf).unwrap();
        assert_eq!(
            f.calls(),
            [
                CgroupCall::Create(p.clone(), Limits::default()),
                CgroupCall::Kill(p.leaf.clone())
            ]
        );
        let watch = tokio::spawn(f.watch(&p).unwrap());
        assert_eq!(f.limitation(&p), None);
        f.oom(&p.container);
        assert_eq!(
            watch.await.unwrap().reason,
            REASON_CONTAINER_LIMITATION_MEMORY
        );
        assert!(f.limitation(&p).is_some());
    }
}
