//! A blocking Mesos v1 scheduler for tests, on keel-client's blocking
//! facade: SUBSCRIBE with its event stream read in the background, typed
//! events kept in order while waiting for another kind, calls with the
//! subscription's stream id.

#![allow(dead_code)]

use std::time::Duration;

use keel_api::mesos::{CommandInfo, FrameworkInfo, Id, TaskInfo, TaskStatus};
use keel_api::operator::Offer;
use keel_api::resources::v1::Resource;
use keel_client::blocking::{self, Subscription};
use keel_client::scheduler::compose::task_info;
use keel_client::scheduler::{Acknowledge, Call, Event, Operation, Subscribe};
use keel_client::{Client, ClientError};
use serde_json::Value as Json;

pub struct Scheduler {
    pub port: u16,
    pub framework_id: String,
    pub stream_id: String,
    sub: Subscription,
    _client: blocking::Client,
}

impl Scheduler {
    /// SUBSCRIBE with `framework_info`; panics unless SUBSCRIBED arrives.
    pub fn subscribe(port: u16, framework_info: FrameworkInfo) -> Scheduler {
        Self::subscribe_with(port, Subscribe::new(framework_info))
    }

    /// SUBSCRIBE (a `framework_info.id` re-subscribes that framework, with
    /// the same top-level `framework_id`).
    pub fn subscribe_with(port: u16, subscribe: Subscribe) -> Scheduler {
        // One master: its redirects are reported, not followed.
        let builder = Client::builder(&format!("127.0.0.1:{port}")).discover_leader(false);
        let client = blocking::Client::from_builder(builder).expect("client");
        let sub = client.subscribe(subscribe).expect("SUBSCRIBED");
        Scheduler {
            port,
            framework_id: sub.framework_id().value.clone(),
            stream_id: sub.stream_id().to_string(),
            sub,
            _client: client,
        }
    }

    pub fn next(&mut self, within: Duration) -> Option<Event> {
        self.sub.next(within).map(|e| e.expect("event"))
    }

    /// The next event of `kind` (others are kept for later), skipping heartbeats.
    pub fn expect(&mut self, kind: &str, within: Duration) -> Event {
        match self.sub.next_of(kind, within).expect("event stream") {
            Some(e) => e,
            None => panic!(
                "no {kind} event within {within:?}; backlog: {:?}",
                self.sub.backlog().collect::<Vec<_>>()
            ),
        }
    }

    /// Whether an event of `kind` arrives within `within`.
    pub fn sees(&mut self, kind: &str, within: Duration) -> Option<Event> {
        self.sub.next_of(kind, within).expect("event stream")
    }

    /// The offers of the next OFFERS event.
    pub fn offers(&mut self, within: Duration) -> Vec<Offer> {
        match self.expect("OFFERS", within) {
            Event::Offers(offers) => offers,
            other => panic!("not OFFERS: {other:?}"),
        }
    }

    /// The first offer of the next OFFERS event.
    pub fn offer(&mut self, within: Duration) -> Offer {
        self.offers(within).remove(0)
    }

    /// The status of the next UPDATE event.
    pub fn update(&mut self, within: Duration) -> TaskStatus {
        match self.expect("UPDATE", within) {
            Event::Update(status) => status,
            other => panic!("not UPDATE: {other:?}"),
        }
    }

    /// A call on behalf of this framework: the answer's status and, for a
    /// refusal, Mesos' reason.
    pub fn call(&self, call: Call) -> (u16, String) {
        match self.sub.call(&call) {
            Ok(status) => (status.as_u16(), String::new()),
            Err(ClientError::Status { status, reason, .. }) => (status, reason),
            Err(e) => panic!("{}: {e}", call.kind()),
        }
    }

    pub fn ack(&self, status: &TaskStatus) {
        let ack = Acknowledge::of(status).expect("an update with a uuid");
        let (code, body) = self.call(Call::Acknowledge(ack));
        assert_eq!(code, 202, "{body}");
    }

    /// Closes the subscription connection.
    pub fn disconnect(&mut self) {
        self.sub.close();
    }
}

/// A FrameworkInfo from its Mesos JSON.
pub fn info(json: Json) -> FrameworkInfo {
    keel_api::mesos::parse(json).expect("FrameworkInfo")
}

pub fn framework(name: &str) -> FrameworkInfo {
    keel_client::scheduler::compose::framework_info("root", name)
}

pub fn scalar(offer: &Offer, name: &str) -> f64 {
    offer.scalar(name)
}

/// A command task taking `cpus`/`mem` from `offer`, in the offer's role.
pub fn command_task(offer: &Offer, id: &str, cmd: &str, cpus: f64, mem: f64) -> TaskInfo {
    let role = offer.role();
    let resources = vec![
        Resource::scalar("cpus", cpus).allocated_to(role),
        Resource::scalar("mem", mem).allocated_to(role),
    ];
    let command = CommandInfo {
        value: Some(cmd.to_string()),
        ..CommandInfo::default()
    };
    task_info(id, &offer.agent_id, resources, command)
}

/// ACCEPT `offer` with one LAUNCH of `tasks`; the answer's status. (That
/// a 202 comes with an empty body is checked on the wire in
/// `scheduler.rs`'s protocol test.)
pub fn launch(s: &Scheduler, offer: &Offer, tasks: Vec<TaskInfo>) -> u16 {
    s.call(accept(offer, vec![Operation::launch(tasks)])).0
}

/// ACCEPT `offer` with `operations`, declining the rest for 0 s.
pub fn accept(offer: &Offer, operations: Vec<Operation>) -> Call {
    Call::Accept(keel_client::scheduler::Accept {
        offer_ids: vec![offer.id.clone()],
        operations,
        filters: Some(keel_api::mesos::Filters {
            refuse_seconds: Some(0.5),
        }),
    })
}

/// An offer the master never made.
pub fn fake_offer(id: &str, agent: &str) -> Offer {
    Offer {
        id: Id::new(id),
        framework_id: Id::new("unknown"),
        agent_id: Id::new(agent),
        hostname: None,
        url: None,
        resources: Vec::new(),
        attributes: Vec::new(),
        executor_ids: Vec::new(),
        allocation_info: Some(keel_api::resources::v1::AllocationInfo::role("*")),
        domain: None,
        unavailability: None,
    }
}
