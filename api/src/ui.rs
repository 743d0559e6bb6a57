//! The web UI's live notices (`GET /ui/events` on the master, as
//! server-sent events): what changed, not the change itself; the page
//! fetches what it shows again.

use serde::{Deserialize, Serialize};

/// What kind of object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Agent,
    Task,
    Framework,
}

/// One change: its kind, the object's id and, for tasks and agents, its
/// state after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    pub kind: NoticeKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_compact_json() {
        let n = Notice {
            kind: NoticeKind::Task,
            id: "t1".into(),
            state: Some("TASK_RUNNING".into()),
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(text, r#"{"kind":"task","id":"t1","state":"TASK_RUNNING"}"#);
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), n);
        let agent = r#"{"kind":"agent","id":"a"}"#;
        assert_eq!(serde_json::from_str::<Notice>(agent).unwrap().state, None);
    }
}
