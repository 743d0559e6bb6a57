//! Scheduler events and their RecordIO framing.
//!
//! Each event is compact JSON with every non-ASCII character escaped as
//! `\uXXXX` (clients compare byte lengths with character counts), framed as
//! `<length>\n<json>` with no trailing newline, and sent as its own HTTP chunk.

use bytes::Bytes;
use keel_api::mesos::TaskStatus;
use serde_json::{Value as Json, json};

/// Serializes `v` compactly with non-ASCII escaped.
pub fn ascii_json(v: &Json) -> String {
    let text = v.to_string();
    if text.is_ascii() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// One RecordIO record.
pub fn record(event: &Json) -> Bytes {
    let body = ascii_json(event);
    Bytes::from(format!("{}\n{}", body.len(), body))
}

pub fn subscribed(framework_id: &str, heartbeat_secs: f64, master_info: Json) -> Json {
    json!({
        "type": "SUBSCRIBED",
        "subscribed": {
            "framework_id": { "value": framework_id },
            "heartbeat_interval_seconds": heartbeat_secs,
            "master_info": master_info,
        }
    })
}

pub fn heartbeat() -> Json {
    json!({ "type": "HEARTBEAT" })
}

pub fn offers(offers: Vec<Json>) -> Json {
    json!({ "type": "OFFERS", "offers": { "offers": offers } })
}

pub fn rescind(offer_id: &str) -> Json {
    json!({ "type": "RESCIND", "rescind": { "offer_id": { "value": offer_id } } })
}

pub fn update(status: &TaskStatus) -> Json {
    json!({ "type": "UPDATE", "update": { "status": status } })
}

pub fn failure(agent_id: &str) -> Json {
    json!({ "type": "FAILURE", "failure": { "agent_id": { "value": agent_id } } })
}

pub fn error(message: &str) -> Json {
    json!({ "type": "ERROR", "error": { "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_length_prefixed_without_trailing_newline() {
        let r = record(&heartbeat());
        assert_eq!(&r[..], b"20\n{\"type\":\"HEARTBEAT\"}");
    }

    #[test]
    fn non_ascii_is_escaped_and_lengths_count_bytes() {
        let e = error("caf\u{e9} \u{1F600}");
        let r = record(&e);
        let text = std::str::from_utf8(&r).unwrap();
        assert!(text.is_ascii());
        assert!(text.contains("caf\\u00e9 \\ud83d\\ude00"));
        let (len, body) = text.split_once('\n').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), body.len());
        let back: Json = serde_json::from_str(body).unwrap();
        assert_eq!(back, e);
    }
}
