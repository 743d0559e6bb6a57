//! `ProcessIO`: the records streamed out of a container (its output) and
//! into it (ATTACH_CONTAINER_INPUT after the first record), checked as
//! Mesos' I/O switchboard checks them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{ContainerId, WindowSize};

/// A record after the first of an ATTACH_CONTAINER_INPUT stream, checked
/// as the I/O switchboard does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRecord {
    /// Bytes for the container's stdin; empty: end of input.
    Stdin(Vec<u8>),
    /// The terminal's new size.
    Window(WindowSize),
    Heartbeat,
}

/// Parses one input record (a `Call` of type ATTACH_CONTAINER_INPUT with
/// a `process_io`); `Err` is the switchboard's message.
pub fn parse_input_record(body: &[u8]) -> Result<InputRecord, String> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| format!("Failed to parse body into JSON: {e}"))?;
    if json.get("type").and_then(Json::as_str) != Some("ATTACH_CONTAINER_INPUT") {
        return Err("Expecting 'type' to be ATTACH_CONTAINER_INPUT".into());
    }
    let input = json
        .get("attach_container_input")
        .ok_or("Expecting 'attach_container_input' to be present")?;
    if input.get("type").and_then(Json::as_str) != Some("PROCESS_IO") {
        return Err("Expecting 'attach_container_input.type' to be PROCESS_IO".into());
    }
    let pio = input
        .get("process_io")
        .ok_or("Expecting 'attach_container_input.process_io' to be present")?;
    let field = |v: &Json, name: &str| v.get(name).and_then(Json::as_str).map(str::to_string);
    match field(pio, "type").as_deref() {
        None => Err("Expecting 'process_io.type' to be present".into()),
        Some("CONTROL") => {
            let control = pio
                .get("control")
                .ok_or("Expecting 'process_io.control' to be present")?;
            match field(control, "type").as_deref() {
                None => Err("Expecting 'process_io.control.type' to be present".into()),
                Some("TTY_INFO") => {
                    let tty = control
                        .get("tty_info")
                        .ok_or("Expecting 'process_io.control.tty_info' to be present")?;
                    let size = tty
                        .get("window_size")
                        .ok_or("Expecting 'tty_info.window_size' to be present")?;
                    serde_json::from_value(size.clone())
                        .map(InputRecord::Window)
                        .map_err(|e| format!("Failed to convert JSON into Call protobuf: {e}"))
                }
                Some("HEARTBEAT") => match control.get("heartbeat") {
                    Some(_) => Ok(InputRecord::Heartbeat),
                    None => Err("Expecting 'process_io.control.heartbeat' to be present".into()),
                },
                Some(_) => Err("'process_io.control.type' is unknown".into()),
            }
        }
        Some("DATA") => {
            let data = pio
                .get("data")
                .ok_or("Expecting 'process_io.data' to be present")?;
            match field(data, "type").as_deref() {
                None => Err("Expecting 'process_io.data.type' to be present".into()),
                Some("STDIN") => {
                    let text = field(data, "data")
                        .ok_or("Expecting 'process_io.data.data' to be present")?;
                    B64.decode(text.as_bytes())
                        .map(InputRecord::Stdin)
                        .map_err(|e| format!("Failed to convert JSON into Call protobuf: {e}"))
                }
                Some(_) => Err("Expecting 'process_io.data.type' to be 'STDIN'".into()),
            }
        }
        Some(_) => Err("'process_io.type' is unknown".into()),
    }
}

/// Which stream output bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    #[serde(rename = "STDIN")]
    Stdin,
    #[serde(rename = "STDOUT")]
    Stdout,
    #[serde(rename = "STDERR")]
    Stderr,
}

/// `ProcessIO`: one record of output (or input) as Mesos writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessIo {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ProcessIoData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Json>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessIoData {
    #[serde(rename = "type")]
    pub stream: Stream,
    /// base64, as protobuf `bytes` are in JSON.
    pub data: String,
}

impl ProcessIo {
    pub fn data(stream: Stream, bytes: &[u8]) -> Self {
        ProcessIo {
            kind: "DATA".into(),
            data: Some(ProcessIoData {
                stream,
                data: B64.encode(bytes),
            }),
            control: None,
        }
    }

    /// The bytes of a DATA record, and their stream.
    pub fn bytes(&self) -> Option<(Stream, Vec<u8>)> {
        let d = self.data.as_ref()?;
        Some((d.stream, B64.decode(d.data.as_bytes()).ok()?))
    }
}

/// The client's side of ATTACH_CONTAINER_INPUT: the first record.
pub fn attach_input_first(id: &ContainerId) -> Json {
    serde_json::json!({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "CONTAINER_ID", "container_id": id},
    })
}

/// The client's side of ATTACH_CONTAINER_INPUT: a later record.
pub fn attach_input_record(record: &InputRecord) -> Json {
    let pio = match record {
        InputRecord::Stdin(bytes) => serde_json::json!({
            "type": "DATA", "data": {"type": "STDIN", "data": B64.encode(bytes)},
        }),
        InputRecord::Window(size) => serde_json::json!({
            "type": "CONTROL", "control": {"type": "TTY_INFO", "tty_info": {"window_size": size}},
        }),
        InputRecord::Heartbeat => serde_json::json!({
            "type": "CONTROL",
            "control": {"type": "HEARTBEAT", "heartbeat": {"interval": {"nanoseconds": 30_000_000_000u64}}},
        }),
    };
    serde_json::json!({
        "type": "ATTACH_CONTAINER_INPUT",
        "attach_container_input": {"type": "PROCESS_IO", "process_io": pio},
    })
}
