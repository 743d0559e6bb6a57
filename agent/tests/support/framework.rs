//! A small Mesos v1 framework for tests that go through a real master, on
//! keel-client: SUBSCRIBE, launch one task per offer, acknowledge updates,
//! kill.

use std::collections::VecDeque;
use std::time::Duration;

use keel_api::mesos::{Capability, TaskInfo, TaskState, TaskStatus};
use keel_api::operator::Offer;
use keel_api::resources::v1::{Resource, Scalar};
use keel_client::Client;
use keel_client::scheduler::compose::framework_info;
use keel_client::scheduler::{Event, Subscription};
use serde_json::Value as Json;

pub struct Framework {
    sub: Subscription,
    pub id: String,
    backlog: VecDeque<Event>,
}

/// `amount` of `name` from the first entry of `offer` that has that much.
fn take(offer: &Offer, name: &str, amount: f64) -> Option<Resource> {
    let r = offer
        .resources
        .iter()
        .find(|r| r.name == name && r.scalar_value() >= amount)?;
    let mut r = r.clone();
    r.scalar = Some(Scalar { value: amount });
    Some(r)
}

/// Whether `offer` holds every range of the RANGES resource `r`.
fn has_ranges(offer: &Offer, r: &Resource) -> bool {
    let offered: Vec<(u64, u64)> = offer
        .resources
        .iter()
        .filter(|o| o.name == r.name)
        .flat_map(|o| o.ranges.iter().flat_map(|x| &x.range))
        .map(|x| (x.begin, x.end))
        .collect();
    r.ranges
        .iter()
        .flat_map(|x| &x.range)
        .all(|x| offered.iter().any(|(b, e)| *b <= x.begin && x.end <= *e))
}

impl Framework {
    pub async fn subscribe(master: &str, name: &str) -> Framework {
        let client = Client::new(master).expect("master address");
        let mut info = framework_info("root", name);
        info.capabilities = vec![Capability {
            kind: "TASK_KILLING_STATE".into(),
        }];
        let sub = client.subscribe_framework(info).await.expect("subscribe");
        let id = sub.framework_id().value.clone();
        Framework {
            sub,
            id,
            backlog: VecDeque::new(),
        }
    }

    /// The next event of `kind` (others are kept), skipping heartbeats.
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Event {
        if let Some(i) = self.backlog.iter().position(|e| e.kind() == kind) {
            return self.backlog.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.sub.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} within {within:?}; kept {:?}", self.backlog))
                .expect("event stream ended")
                .expect("event");
            match e {
                e if e.kind() == kind => return e,
                Event::Heartbeat => {}
                e => self.backlog.push_back(e),
            }
        }
    }

    /// Launches `task` (TaskInfo JSON without agent_id and resources) with
    /// `cpus`/`mem` and the given extra resources, on the first offer that
    /// has them; every other offer is declined (its resources come back).
    pub async fn launch(&mut self, mut task: Json, cpus: f64, mem: f64, extra: Vec<Json>) {
        let extra: Vec<Resource> = extra
            .into_iter()
            .map(|r| serde_json::from_value(r).expect("extra resource"))
            .collect();
        loop {
            let Event::Offers(offers) = self.expect("OFFERS", Duration::from_secs(60)).await else {
                panic!("expect returned another kind than OFFERS")
            };
            let mut decline = Vec::new();
            let mut launched = false;
            for offer in offers {
                let fits = (take(&offer, "cpus", cpus), take(&offer, "mem", mem));
                let has_extra = extra.iter().all(|r| has_ranges(&offer, r));
                let (Some(c), Some(m), false, true) = (fits.0, fits.1, launched, has_extra) else {
                    decline.push(offer.id);
                    continue;
                };
                let mut resources = vec![c, m];
                for mut r in extra.clone() {
                    if let Some(alloc) = offer
                        .resources
                        .first()
                        .and_then(|o| o.allocation_info.clone())
                    {
                        r.allocation_info = Some(alloc);
                    }
                    resources.push(r);
                }
                task["agent_id"] = serde_json::to_value(&offer.agent_id).unwrap();
                task["resources"] = serde_json::to_value(&resources).unwrap();
                let info: TaskInfo = keel_api::mesos::parse(task.clone()).expect("task info");
                self.sub
                    .launch(&offer, vec![info], Some(0.0))
                    .await
                    .expect("accept");
                launched = true;
            }
            if !decline.is_empty() {
                self.sub.decline(decline, Some(0.0)).await.expect("decline");
            }
            if launched {
                return;
            }
        }
    }

    /// The next update of `task_id`, acknowledged.
    pub async fn update(&mut self, task_id: &str, within: Duration) -> TaskStatus {
        loop {
            let Event::Update(status) = self.expect("UPDATE", within).await else {
                panic!("expect returned another kind than UPDATE")
            };
            self.sub.acknowledge(&status).await.expect("acknowledge");
            if status.task_id.value == task_id {
                return status;
            }
        }
    }

    /// Updates of `task_id` until `state` (or a terminal one); returns it.
    pub async fn until(&mut self, task_id: &str, state: TaskState, within: Duration) -> TaskStatus {
        loop {
            let st = self.update(task_id, within).await;
            let terminal = matches!(
                st.state,
                TaskState::TASK_FINISHED
                    | TaskState::TASK_FAILED
                    | TaskState::TASK_KILLED
                    | TaskState::TASK_ERROR
                    | TaskState::TASK_LOST
            );
            if st.state == state || terminal {
                return st;
            }
        }
    }

    pub async fn kill(&self, task_id: &str) {
        self.sub.kill(task_id).await.expect("kill");
    }
}
