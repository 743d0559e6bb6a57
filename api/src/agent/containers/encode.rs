//! Calls written back as JSON (for clients: keel-client, the tests), the
//! inverse of [`super::parse_call`].

use serde_json::{Value as Json, json};

use super::{ContainerCall, Launch};

fn launch_body(l: &Launch) -> Json {
    let mut body = json!({ "container_id": l.container_id });
    if let Some(c) = &l.command {
        body["command"] = json!(c);
    }
    if let Some(c) = &l.container {
        body["container"] = json!(c);
    }
    if !l.resources.is_empty() {
        body["resources"] = Json::Array(l.resources.clone());
    }
    body
}

/// The JSON of `call`, as a client sends it.
pub fn call_json(call: &ContainerCall) -> Json {
    let kind = call.type_name();
    let field = kind.to_ascii_lowercase();
    let body = match call {
        ContainerCall::LaunchSession(l) | ContainerCall::Launch(l, _) => launch_body(l),
        ContainerCall::Kill(id, signal, _) => json!({ "container_id": id, "signal": signal }),
        ContainerCall::Wait(id, _)
        | ContainerCall::Remove(id, _)
        | ContainerCall::AttachOutput(id) => {
            json!({ "container_id": id })
        }
    };
    json!({ "type": kind, field: body })
}
