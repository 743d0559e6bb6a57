//! The pure decision of what one container gets from `--isolation`, what
//! this host offers, the task's `cpus`/`mem` and the bandwidth its labels
//! ask for.

use super::cgroups::io::{Bandwidth, IoMax};
use super::cgroups::{Controller, LimitOptions, Limits, limits_for};
use super::{Feature, HostSupport, Isolation, Namespaces};

/// What one container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The container gets a cgroup with these limits (only what this host
    /// enforces); `None`: no cgroup.
    pub limits: Option<Limits>,
    pub namespaces: Namespaces,
    /// What was asked but cannot be enforced here (`auto` only).
    pub unenforced: Vec<String>,
}

impl Plan {
    /// The note a task's TASK_STARTING carries, if anything is missing.
    pub fn note(&self) -> Option<String> {
        (!self.unenforced.is_empty()).then(|| {
            format!(
                "Isolation not enforced on this agent: {}",
                self.unenforced.join(", ")
            )
        })
    }
}

/// The container's isolation given its `cpus`, `mem` and `io` bandwidth;
/// `Err` (the TASK_FAILED message) when a required feature is missing.
pub fn plan(
    iso: &Isolation,
    host: &HostSupport,
    opts: LimitOptions,
    cpus: Option<f64>,
    mem_mb: Option<f64>,
    io: &Bandwidth,
) -> Result<Plan, String> {
    let wanted = iso.wanted();
    let want = |f| wanted.contains(&f);
    let asked = limits_for(cpus, mem_mb, opts);
    let mut limits = Limits::default();
    let mut unenforced = Vec::new();
    let mut refused = Vec::new();
    let mut need = |f: Feature, what: String, present: bool| -> bool {
        if !want(f) || !present {
            return false;
        }
        if host.supports(f) {
            return true;
        }
        let text = format!(
            "{what} ({f}: no {} controller)",
            f.controller().map_or("", Controller::name)
        );
        if iso.required(f) {
            refused.push(text);
        } else {
            unenforced.push(text);
        }
        false
    };
    if need(
        Feature::Cpu,
        format!("cpus={}", cpus.unwrap_or(0.0)),
        asked.cpu_weight.is_some(),
    ) {
        limits.cpu_max = asked.cpu_max;
        limits.cpu_weight = asked.cpu_weight;
    }
    if need(
        Feature::Mem,
        format!("mem={}", mem_mb.unwrap_or(0.0)),
        asked.memory_max.is_some(),
    ) {
        limits.memory_max = asked.memory_max;
        limits.memory_high = asked.memory_high;
        limits.memory_swap_max = asked.memory_swap_max;
    }
    if need(Feature::Pids, format!("pids.max={}", opts.pids_max), true) {
        limits.pids_max = asked.pids_max;
    }
    if need(Feature::Io, "io.weight".into(), asked.io_weight.is_some()) {
        limits.io_weight = asked.io_weight;
    }
    if need(Feature::Io, io.describe(), !io.is_empty()) {
        match host.io_device {
            Some(device) => {
                limits.io_max = Some(IoMax {
                    device,
                    limits: *io,
                })
            }
            None => {
                let f = Feature::Io;
                let text = format!(
                    "{} ({f}: the sandboxes are on no block device)",
                    io.describe()
                );
                if iso.required(f) {
                    refused.push(text);
                } else {
                    unenforced.push(text);
                }
            }
        }
    }
    let mut ns = Namespaces::default();
    for (f, slot) in [
        (Feature::PidNs, &mut ns.pid),
        (Feature::MountNs, &mut ns.mount),
        (Feature::UtsNs, &mut ns.uts),
        (Feature::IpcNs, &mut ns.ipc),
    ] {
        if !want(f) {
            continue;
        }
        if host.supports(f) {
            *slot = true;
        } else if iso.required(f) {
            refused.push(format!("{f} (the agent cannot create namespaces)"));
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "Isolation required by the agent cannot be enforced: {}",
            refused.join(", ")
        ));
    }
    let cgroup = host.cgroups && wanted.iter().any(|f| f.controller().is_some());
    Ok(Plan {
        limits: cgroup.then_some(limits),
        namespaces: ns,
        unenforced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn host(controllers: &[Controller], ns: bool) -> HostSupport {
        HostSupport {
            cgroups: true,
            controllers: controllers.iter().copied().collect(),
            namespaces: if ns {
                [
                    Feature::PidNs,
                    Feature::MountNs,
                    Feature::UtsNs,
                    Feature::IpcNs,
                ]
                .into()
            } else {
                BTreeSet::new()
            },
            io_device: Some((8, 0)),
        }
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!("auto".parse(), Ok(Isolation::Auto));
        assert_eq!("strict".parse(), Ok(Isolation::Strict));
        assert_eq!("none".parse(), Ok(Isolation::none()));
        assert_eq!(
            "cgroups/mem, namespaces/pid".parse(),
            Ok(Isolation::Only([Feature::Mem, Feature::PidNs].into()))
        );
        let err = "cgroups/gpu".parse::<Isolation>().unwrap_err();
        assert!(err.to_string().contains("cgroups/gpu"), "{err}");
    }

    #[test]
    fn auto_takes_what_the_host_has_and_says_what_it_lacks() {
        let h = host(&[Controller::Pids], false);
        let p = plan(
            &Isolation::Auto,
            &h,
            LimitOptions::default(),
            Some(1.0),
            Some(64.0),
            &Bandwidth::default(),
        )
        .unwrap();
        let limits = p.limits.clone().unwrap();
        assert_eq!(limits.pids_max, Some(4096));
        assert_eq!((limits.memory_max, limits.cpu_max), (None, None));
        assert_eq!(p.namespaces, Namespaces::default());
        let note = p.note().unwrap();
        assert!(
            note.contains("mem=64 (cgroups/mem: no memory controller)"),
            "{note}"
        );
        assert!(note.contains("cpus=1"), "{note}");

        let full = host(&Controller::ALL, true);
        let p = plan(
            &Isolation::Auto,
            &full,
            LimitOptions::default(),
            Some(1.0),
            Some(64.0),
            &Bandwidth::default(),
        )
        .unwrap();
        assert_eq!(p.note(), None);
        assert_eq!(p.limits.unwrap().memory_max, Some(64 << 20));
        assert!(p.namespaces.pid && p.namespaces.mount && p.namespaces.uts && p.namespaces.ipc);
    }

    #[test]
    fn strict_refuses_what_it_cannot_enforce() {
        let h = host(&[Controller::Pids, Controller::Cpu, Controller::Io], true);
        let err = plan(
            &Isolation::Strict,
            &h,
            LimitOptions::default(),
            Some(1.0),
            Some(64.0),
            &Bandwidth::default(),
        )
        .unwrap_err();
        assert!(err.contains("mem=64"), "{err}");
        // Without a mem resource nothing needs the memory controller.
        assert!(
            plan(
                &Isolation::Strict,
                &h,
                LimitOptions::default(),
                Some(1.0),
                None,
                &Bandwidth::default(),
            )
            .is_ok()
        );
        let only: Isolation = "cgroups/cpu,namespaces/pid".parse().unwrap();
        let none = Bandwidth::default();
        let p = plan(
            &only,
            &h,
            LimitOptions::default(),
            Some(1.0),
            Some(64.0),
            &none,
        )
        .unwrap();
        let limits = p.limits.unwrap();
        assert!(
            limits.cpu_max.is_some() && limits.memory_max.is_none() && limits.pids_max.is_none()
        );
        assert!(p.namespaces.pid && !p.namespaces.mount);
        let no_ns = host(&Controller::ALL, false);
        assert!(plan(&only, &no_ns, LimitOptions::default(), None, None, &none).is_err());
    }

    #[test]
    fn bandwidth_needs_the_io_controller_and_a_disk() {
        let bw = Bandwidth {
            wbps: Some(4096),
            ..Bandwidth::default()
        };
        let opts = LimitOptions::default();
        let p = plan(
            &Isolation::Strict,
            &host(&Controller::ALL, true),
            opts,
            None,
            None,
            &bw,
        );
        let io_max = p.unwrap().limits.unwrap().io_max.unwrap();
        assert_eq!((io_max.device, io_max.limits), ((8, 0), bw));
        let no_disk = HostSupport {
            io_device: None,
            ..host(&Controller::ALL, true)
        };
        let err = plan(&Isolation::Strict, &no_disk, opts, None, None, &bw).unwrap_err();
        assert!(
            err.contains(
                "keel.io/write-bps=4096 (cgroups/io: the sandboxes are on no block device)"
            ),
            "{err}"
        );
        let p = plan(&Isolation::Auto, &no_disk, opts, None, None, &bw).unwrap();
        assert!(p.note().unwrap().contains("keel.io/write-bps=4096"));
        assert_eq!(p.limits.unwrap().io_max, None);
        // Not asked: nothing needed.
        let p = plan(
            &Isolation::Strict,
            &no_disk,
            opts,
            None,
            None,
            &Bandwidth::default(),
        );
        assert_eq!(p.unwrap().limits.unwrap().io_max, None);
    }

    #[test]
    fn none_isolates_nothing() {
        let p = plan(
            &Isolation::none(),
            &host(&Controller::ALL, true),
            LimitOptions::default(),
            Some(1.0),
            Some(1.0),
            &Bandwidth::default(),
        )
        .unwrap();
        assert_eq!(p, Plan::default());
    }
}
