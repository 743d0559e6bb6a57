//! A blocking Mesos v1 scheduler client for tests: SUBSCRIBE on its own
//! connection, events read by a thread (chunked + RecordIO), calls on
//! short-lived connections.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_api::recordio::Decoder;
use serde_json::{Value as Json, json};

use super::{Reply, http};

pub struct Scheduler {
    pub port: u16,
    pub framework_id: String,
    pub stream_id: String,
    events: mpsc::Receiver<Json>,
    /// Events taken while waiting for another kind, kept in order.
    backlog: Vec<Json>,
    conn: Option<TcpStream>,
}

/// Reads an HTTP/1.1 chunked body and feeds RecordIO records to `tx`.
fn pump(mut reader: BufReader<TcpStream>, tx: mpsc::Sender<Json>) {
    let mut decoder = Decoder::default();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
            return;
        }
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            eprintln!("event stream: bad chunk size line {size_line:?}");
            return;
        };
        if size == 0 {
            return;
        }
        let mut chunk = vec![0; size + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return;
        }
        chunk.truncate(size);
        for record in decoder.push(&chunk).expect("valid recordio") {
            let event: Json = serde_json::from_slice(&record).expect("event json");
            if tx.send(event).is_err() {
                return;
            }
        }
    }
}

impl Scheduler {
    /// SUBSCRIBE with `framework_info`; panics unless SUBSCRIBED arrives.
    pub fn subscribe(port: u16, framework_info: Json) -> Scheduler {
        Self::subscribe_with(
            port,
            json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info}}),
        )
    }

    pub fn subscribe_with(port: u16, call: Json) -> Scheduler {
        let mut s = Self::open(port, call);
        let first = s.next(Duration::from_secs(10)).expect("first event");
        assert_eq!(first["type"], "SUBSCRIBED", "{first}");
        s.framework_id = first["subscribed"]["framework_id"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        s
    }

    /// Opens the subscription without checking the first event.
    pub fn open(port: u16, call: Json) -> Scheduler {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = call.to_string();
        write!(
            conn,
            "POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "subscribe answered {status}");
        let mut stream_id = String::new();
        let mut chunked = false;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "mesos-stream-id" => stream_id = v.trim().to_string(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
        assert!(chunked, "the event stream must be chunked");
        assert_eq!(content_type, "application/json");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || pump(reader, tx));
        Scheduler {
            port,
            framework_id: String::new(),
            stream_id,
            events: rx,
            backlog: Vec::new(),
            conn: Some(conn),
        }
    }

    pub fn next(&mut self, within: Duration) -> Option<Json> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.events.recv_timeout(within).ok()
    }

    /// The next event of `kind` (others are kept for later), skipping heartbeats.
    pub fn expect(&mut self, kind: &str, within: Duration) -> Json {
        if let Some(i) = self.backlog.iter().position(|e| e["type"] == kind) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e["type"] == kind => return e,
                Ok(e) if e["type"] == "HEARTBEAT" => {}
                Ok(e) => self.backlog.push(e),
                Err(_) => panic!(
                    "no {kind} event within {within:?}; backlog: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Whether an event of `kind` arrives within `within`.
    pub fn sees(&mut self, kind: &str, within: Duration) -> Option<Json> {
        if let Some(i) = self.backlog.iter().position(|e| e["type"] == kind) {
            return Some(self.backlog.remove(i));
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e["type"] == kind => return Some(e),
                Ok(e) if e["type"] == "HEARTBEAT" => {}
                Ok(e) => self.backlog.push(e),
                Err(_) => return None,
            }
        }
    }

    /// A call on behalf of this framework: adds framework_id and the stream id.
    pub fn call(&self, mut call: Json) -> Reply {
        call["framework_id"] = json!({ "value": self.framework_id });
        http(
            self.port,
            "POST",
            "/api/v1/scheduler",
            &[
                ("Content-Type", "application/json"),
                ("Mesos-Stream-Id", &self.stream_id),
            ],
            call.to_string().as_bytes(),
        )
        .unwrap()
    }

    pub fn ack(&self, status: &Json) {
        let (code, _, body) = self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}}));
        assert_eq!(code, 202, "{body}");
    }

    /// Closes the subscription connection.
    pub fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

pub fn framework(name: &str) -> Json {
    json!({"user": "root", "name": name})
}

pub fn scalar(offer: &Json, name: &str) -> f64 {
    offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == name)
        .map(|r| r["scalar"]["value"].as_f64().unwrap())
        .sum()
}

/// A command task taking `cpus`/`mem` from `offer`, in the offer's role.
pub fn command_task(offer: &Json, id: &str, cmd: &str, cpus: f64, mem: f64) -> Json {
    let role = offer["allocation_info"]["role"].clone();
    json!({
        "name": id, "task_id": {"value": id}, "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*", "allocation_info": {"role": role}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*", "allocation_info": {"role": role}}
        ],
        "command": {"value": cmd}
    })
}

pub fn launch(s: &Scheduler, offer: &Json, tasks: Vec<Json>) -> u16 {
    let (code, _, body) = s.call(json!({"type": "ACCEPT", "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
        "filters": {"refuse_seconds": 0.5}}}));
    assert_eq!(body, "");
    code
}
