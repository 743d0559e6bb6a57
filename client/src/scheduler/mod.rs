//! The Mesos v1 scheduler API (`POST /api/v1/scheduler`): SUBSCRIBE opens
//! a chunked RecordIO stream of [`Event`]s on the leader (followers'
//! redirects are followed), and every other [`Call`] goes to that master
//! with the subscription's `framework_id` and `Mesos-Stream-Id`.
//!
//! A task reads the stream into a bounded queue, so events keep arriving
//! while the framework makes calls; [`Subscription::next`] takes them.

mod call;
pub mod compose;
mod event;

pub use call::{
    Accept, Acknowledge, Call, Decline, InverseOffers, Kill, Launch, LaunchGroup, Operation,
    ReconcileTask, Resources, Subscribe, TaskGroup, Volumes,
};
pub use event::{Event, Failure, Message, OperationStatus, Subscribed};

use std::time::Duration;

use bytes::Bytes;
use keel_api::mesos::{Filters, FrameworkInfo, Id, TaskInfo, TaskStatus};
use keel_api::operator::Offer;
use reqwest::StatusCode;

use crate::records::{self, Stream};
use crate::{Client, ClientError};

const SCHEDULER: &str = "/api/v1/scheduler";

/// Makes calls for one subscription; cheap to clone.
#[derive(Clone)]
pub struct Caller {
    http: reqwest::Client,
    url: String,
    framework_id: Id,
    stream_id: String,
    timeout: Duration,
}

impl Caller {
    /// Sends `call`: `202 Accepted` (or `200 OK` for the synchronous
    /// UPDATE_FRAMEWORK) is success and returned, anything else is
    /// [`ClientError::Status`] with Mesos' reason.
    pub async fn call(&self, call: &Call) -> Result<StatusCode, ClientError> {
        let body = call
            .to_json(Some(&self.framework_id))
            .map_err(|e| ClientError::Decode {
                url: self.url.clone(),
                source: e,
            })?;
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(body.to_string())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ClientError::Http {
                url: self.url.clone(),
                source: e,
            })?;
        let status = resp.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            return Ok(status);
        }
        Err(ClientError::Status {
            method: call.kind().to_string(),
            url: self.url.clone(),
            status: status.as_u16(),
            reason: resp.text().await.unwrap_or_default(),
        })
    }

    pub fn framework_id(&self) -> &Id {
        &self.framework_id
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }
}

/// A framework's subscription: its event stream and its calls.
pub struct Subscription {
    caller: Caller,
    subscribed: Subscribed,
    /// The master that serves the subscription.
    master: String,
    events: Stream<Event>,
}

impl Client {
    /// SUBSCRIBE: opens the event stream on the leader and waits for
    /// `SUBSCRIBED`. A `framework_info.id` re-subscribes that framework.
    pub async fn subscribe(&self, subscribe: Subscribe) -> Result<Subscription, ClientError> {
        let framework_id = subscribe.framework_info.id.clone();
        let call = Call::Subscribe(subscribe);
        let body = call
            .to_json(framework_id.as_ref())
            .map_err(|e| ClientError::Decode {
                url: SCHEDULER.to_string(),
                source: e,
            })?;
        let answer =
            records::subscribe(&self.transport, SCHEDULER, Bytes::from(body.to_string())).await?;
        let url = answer.url;
        let response = answer.response;
        let stream_id = response
            .headers()
            .get("Mesos-Stream-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Subscribe(format!("{url} sent no Mesos-Stream-Id")))?;
        let mut events = Stream::read(response, url.clone(), |r| {
            serde_json::from_slice(r).and_then(Event::from_json)
        });
        let subscribed = match events.next().await {
            Some(Ok(Event::Subscribed(s))) => s,
            Some(Ok(Event::Error(message))) => return Err(ClientError::Subscribe(message)),
            Some(Ok(other)) => {
                return Err(ClientError::Subscribe(format!(
                    "the first event was {}, not SUBSCRIBED",
                    other.kind()
                )));
            }
            Some(Err(e)) => return Err(e),
            None => return Err(ClientError::StreamEnded),
        };
        Ok(Subscription {
            caller: Caller {
                http: self.transport.http(),
                url,
                framework_id: subscribed.framework_id.clone(),
                stream_id,
                timeout: self.transport.timeout(),
            },
            subscribed,
            master: answer.master,
            events,
        })
    }

    /// SUBSCRIBE a new framework described by `info`.
    pub async fn subscribe_framework(
        &self,
        info: FrameworkInfo,
    ) -> Result<Subscription, ClientError> {
        self.subscribe(Subscribe::new(info)).await
    }
}

impl Subscription {
    /// The next event; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        self.events.next().await
    }

    /// Ends the event stream (the master sees the framework disconnect);
    /// calls can still be made.
    pub fn close(&mut self) {
        self.events.close();
    }

    pub fn framework_id(&self) -> &Id {
        &self.caller.framework_id
    }

    pub fn stream_id(&self) -> &str {
        &self.caller.stream_id
    }

    /// The master the subscription lives on.
    pub fn master(&self) -> &str {
        &self.master
    }

    /// The `SUBSCRIBED` event.
    pub fn subscribed(&self) -> &Subscribed {
        &self.subscribed
    }

    /// A handle for calls from elsewhere (another task).
    pub fn caller(&self) -> Caller {
        self.caller.clone()
    }

    /// Sends `call`; the success status (202, or 200 for UPDATE_FRAMEWORK).
    pub async fn call(&self, call: &Call) -> Result<StatusCode, ClientError> {
        self.caller.call(call).await
    }

    async fn send(&self, call: Call) -> Result<(), ClientError> {
        self.caller.call(&call).await.map(drop)
    }

    /// ACCEPT `offer_ids` with `operations`.
    pub async fn accept(
        &self,
        offer_ids: Vec<Id>,
        operations: Vec<Operation>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        self.send(Call::Accept(Accept {
            offer_ids,
            operations,
            filters: refuse_seconds.map(filters),
        }))
        .await
    }

    /// ACCEPT one offer with one LAUNCH of `tasks`.
    pub async fn launch(
        &self,
        offer: &Offer,
        tasks: Vec<TaskInfo>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        self.accept(
            vec![offer.id.clone()],
            vec![Operation::launch(tasks)],
            refuse_seconds,
        )
        .await
    }

    pub async fn decline(
        &self,
        offer_ids: Vec<Id>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        self.send(Call::Decline(Decline {
            offer_ids,
            filters: refuse_seconds.map(filters),
        }))
        .await
    }

    /// ACCEPT_INVERSE_OFFERS (`accept`) or DECLINE_INVERSE_OFFERS: the
    /// framework's answer to maintenance on the inverse offers' agents.
    pub async fn answer_inverse_offers(
        &self,
        accept: bool,
        inverse_offer_ids: Vec<Id>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        let body = InverseOffers {
            inverse_offer_ids,
            filters: refuse_seconds.map(filters),
        };
        self.send(match accept {
            true => Call::AcceptInverseOffers(body),
            false => Call::DeclineInverseOffers(body),
        })
        .await
    }

    /// ACKNOWLEDGE `status` if it asks for it (it carries a uuid); whether
    /// it did.
    pub async fn acknowledge(&self, status: &TaskStatus) -> Result<bool, ClientError> {
        match Acknowledge::of(status) {
            Some(ack) => self.send(Call::Acknowledge(ack)).await.map(|()| true),
            None => Ok(false),
        }
    }

    pub async fn kill(&self, task_id: &str) -> Result<(), ClientError> {
        self.send(Call::Kill(Kill {
            task_id: Id::new(task_id),
            agent_id: None,
            kill_policy: None,
        }))
        .await
    }

    /// RECONCILE `tasks` (none: every task the master knows).
    pub async fn reconcile(&self, tasks: Vec<ReconcileTask>) -> Result<(), ClientError> {
        self.send(Call::Reconcile(tasks)).await
    }

    pub async fn revive(&self, roles: Vec<String>) -> Result<(), ClientError> {
        self.send(Call::Revive(roles)).await
    }

    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), ClientError> {
        self.send(Call::Suppress(roles)).await
    }

    pub async fn teardown(&self) -> Result<(), ClientError> {
        self.send(Call::Teardown).await
    }

    pub async fn update_framework(&self, info: FrameworkInfo) -> Result<(), ClientError> {
        self.send(Call::UpdateFramework(Subscribe::new(info))).await
    }
}

fn filters(refuse_seconds: f64) -> Filters {
    Filters {
        refuse_seconds: Some(refuse_seconds),
    }
}
