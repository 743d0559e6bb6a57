//! The legacy form-encoded writes: `POST /master/teardown`
//! (`frameworkId=`), `/master/reserve` and `/master/unreserve` (`slaveId=`,
//! `resources=` a JSON array of v1 `Resource`), `/master/create-volumes`
//! and `/master/destroy-volumes` (`slaveId=`, `volumes=` a JSON array of
//! v1 `Resource`), also without `/master`.
//! Each is parsed into the same [`OperatorCall`] as its v1 twin and goes
//! the same way: authorized alike, carried out by the same code.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_api::resources::Resources;

use super::error::ApiError;
use super::operator::{OperatorCall, mutate};
use super::plain;
use crate::auth::Caller;
use crate::core::Master;

/// Which legacy write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Teardown,
    Reserve,
    Unreserve,
    CreateVolumes,
    DestroyVolumes,
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "Missing '{name}' query parameter in the request body"
            ))
        })
}

/// The call a form body asks for.
pub fn parse(form: Form, body: &[u8]) -> Result<OperatorCall, ApiError> {
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(body)
        .map_err(|e| bad(format!("Unable to decode form body: {e}")))?;
    if form == Form::Teardown {
        return Ok(OperatorCall::Teardown {
            framework_id: field(&fields, "frameworkId")?.to_string(),
        });
    }
    let agent_id = field(&fields, "slaveId")?.to_string();
    if matches!(form, Form::CreateVolumes | Form::DestroyVolumes) {
        let text = field(&fields, "volumes")?;
        return super::volumes::parse_form(&agent_id, text, form == Form::CreateVolumes);
    }
    let text = field(&fields, "resources")?;
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("Error in parsing 'resources' query parameter: {e}")))?;
    let resources = Resources::from_v1_json(&json)
        .map_err(|e| bad(format!("Error in parsing 'resources' query parameter: {e}")))?;
    if resources.is_empty() {
        return Err(bad("'resources' is empty"));
    }
    Ok(match form {
        Form::Reserve => OperatorCall::ReserveResources {
            agent_id,
            resources,
        },
        _ => OperatorCall::UnreserveResources {
            agent_id,
            resources,
        },
    })
}

async fn handle(
    form: Form,
    master: Arc<Master>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded");
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting a form body (application/x-www-form-urlencoded), got '{form_type}'"),
        );
    }
    let call = match parse(form, &body) {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    if let Err(r) = super::auth::operator(&master, &caller, &call) {
        return plain(r.status, r.reason);
    }
    match mutate(&master, &call).await {
        Some(resp) => resp,
        None => plain(StatusCode::INTERNAL_SERVER_ERROR, "not a write"),
    }
}

pub async fn teardown(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(Form::Teardown, master, caller, headers, body).await
}

pub async fn reserve(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(Form::Reserve, master, caller, headers, body).await
}

pub async fn unreserve(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(Form::Unreserve, master, caller, headers, body).await
}

pub async fn create_volumes(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(Form::CreateVolumes, master, caller, headers, body).await
}

pub async fn destroy_volumes(
    State(master): State<Arc<Master>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    handle(Form::DestroyVolumes, master, caller, headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_the_v1_calls() {
        assert_eq!(
            parse(Form::Teardown, b"frameworkId=m-0001").unwrap(),
            OperatorCall::Teardown {
                framework_id: "m-0001".into()
            }
        );
        let body = "slaveId=m-S0&resources=%5B%7B%22name%22%3A%22cpus%22%2C%22type%22%3A%22SCALAR%22%2C%22scalar%22%3A%7B%22value%22%3A1%7D%2C%22role%22%3A%22eng%22%2C%22reservation%22%3A%7B%22principal%22%3A%22ops%22%7D%7D%5D";
        let OperatorCall::ReserveResources {
            agent_id,
            resources,
        } = parse(Form::Reserve, body.as_bytes()).unwrap()
        else {
            panic!("not a reservation")
        };
        assert_eq!(agent_id, "m-S0");
        assert_eq!(resources.scalar("cpus"), 1.0);
        for (form, body, needle) in [
            (Form::Teardown, "", "'frameworkId'"),
            (Form::Reserve, "resources=[]", "'slaveId'"),
            (Form::Unreserve, "slaveId=a", "'resources'"),
            (
                Form::Reserve,
                "slaveId=a&resources=nope",
                "parsing 'resources'",
            ),
            (Form::CreateVolumes, "slaveId=a", "'volumes'"),
            (
                Form::DestroyVolumes,
                "slaveId=a&volumes=%5B%5D",
                "no volumes",
            ),
            (
                Form::CreateVolumes,
                "slaveId=a&volumes=nope",
                "parsing 'volumes'",
            ),
        ] {
            let e = parse(form, body.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.reason.contains(needle), "{}", e.reason);
        }
    }
}
