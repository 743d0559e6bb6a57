//! The scalar kinds DRF shares and quota count (`cpus`, `mem`, `disk`,
//! `gpus`) as integer thousandths: Mesos scalars have three decimals, so
//! sums and differences are exact and shares are deterministic.

use keel_api::resources::{Resource, Resources, UNRESERVED, Value};

/// The kinds, in index order.
pub(super) const KINDS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

/// No bound on a kind.
pub(super) const UNBOUNDED: i64 = i64::MAX;

/// The index of a shared kind.
pub(super) fn kind(name: &str) -> Option<usize> {
    match name {
        "cpus" => Some(0),
        "mem" => Some(1),
        "disk" => Some(2),
        "gpus" => Some(3),
        _ => None,
    }
}

/// A scalar in thousandths.
pub(super) fn millis(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

/// Quantities of the four kinds, in thousandths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Q(pub [i64; 4]);

/// Per-kind upper bounds ([`UNBOUNDED`] = none).
pub(super) type Cap = [i64; 4];

impl Q {
    pub const ZERO: Q = Q([0; 4]);

    /// Adds one resource if it is a scalar of a shared kind.
    pub fn add_resource(&mut self, r: &Resource) {
        if let (Some(k), Value::Scalar(v)) = (kind(&r.name), &r.value) {
            self.0[k] += millis(*v);
        }
    }

    /// All scalars of the shared kinds, whatever their role.
    pub fn of(resources: &Resources) -> Q {
        let mut q = Q::ZERO;
        resources.iter().for_each(|r| q.add_resource(r));
        q
    }

    /// (all, unreserved only).
    pub fn split(resources: &Resources) -> (Q, Q) {
        let (mut all, mut unreserved) = (Q::ZERO, Q::ZERO);
        for r in resources {
            all.add_resource(r);
            if r.role == UNRESERVED {
                unreserved.add_resource(r);
            }
        }
        (all, unreserved)
    }

    pub fn add(&mut self, other: &Q) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `self - other`, never below zero.
    pub fn sub_sat(&mut self, other: &Q) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = (*a - b).max(0);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// The DRF dominant share: the largest fraction of a kind of `total`.
    pub fn dominant_share(&self, total: &Q) -> f64 {
        self.0
            .iter()
            .zip(total.0)
            .filter(|(_, t)| *t > 0)
            .map(|(a, t)| *a as f64 / t as f64)
            .fold(0.0, f64::max)
    }

    /// As unreserved scalar resources (zero kinds left out).
    pub fn to_resources(self) -> Resources {
        KINDS
            .iter()
            .zip(self.0)
            .filter(|(_, v)| *v != 0)
            .map(|(name, v)| Resource::scalar(*name, v as f64 / 1000.0))
            .collect()
    }
}

/// Per-kind bounds from scalar resources; kinds not listed are unbounded.
/// `Err(name)` names a resource that is not a scalar of a shared kind.
pub(super) fn cap_of(resources: &Resources) -> Result<Cap, String> {
    let mut cap = [UNBOUNDED; 4];
    for r in resources {
        match (kind(&r.name), &r.value) {
            (Some(k), Value::Scalar(v)) => {
                let v = millis(*v);
                cap[k] = if cap[k] == UNBOUNDED { v } else { cap[k] + v };
            }
            _ => return Err(r.name.clone()),
        }
    }
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn quantities_are_exact_thousandths() {
        let (all, unreserved) = Q::split(&parse("cpus:0.1;cpus(eng):0.2;mem:32;ports:[1-2];foo:3"));
        assert_eq!(all, Q([300, 32_000, 0, 0]));
        assert_eq!(unreserved, Q([100, 32_000, 0, 0]));
        let mut q = all;
        q.sub_sat(&Q([300, 40_000, 1, 0]));
        assert!(q.is_zero());
        assert_eq!(
            Q([1500, 2_048_000, 0, 1000]).to_resources(),
            parse("cpus:1.5;mem:2048;gpus:1")
        );
    }

    #[test]
    fn dominant_share_ignores_kinds_the_cluster_lacks() {
        let total = Q([10_000, 100_000, 0, 0]);
        assert_eq!(Q([1000, 50_000, 0, 0]).dominant_share(&total), 0.5);
        assert_eq!(Q([5000, 0, 7, 7]).dominant_share(&total), 0.5);
        assert_eq!(Q::ZERO.dominant_share(&Q::ZERO), 0.0);
    }

    #[test]
    fn caps_accept_only_shared_scalars() {
        assert_eq!(
            cap_of(&parse("cpus:2;gpus:1")),
            Ok([2000, UNBOUNDED, UNBOUNDED, 1000])
        );
        assert_eq!(cap_of(&parse("ports:[1-2]")), Err("ports".to_string()));
        assert_eq!(cap_of(&parse("foo:1")), Err("foo".to_string()));
    }
}
