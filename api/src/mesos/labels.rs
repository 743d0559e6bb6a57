//! `Labels`: free-form key/value pairs on a task (and elsewhere in Mesos).
//! The agent reads some of a TaskInfo's (`keel.io/*` bandwidth requests).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default)]
    pub labels: Vec<Label>,
}

impl Labels {
    /// Every label with `key`, in order (a key may repeat).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.labels
            .iter()
            .filter(move |l| l.key == key)
            .map(|l| l.value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::parse;
    use serde_json::json;

    #[test]
    fn round_trip_and_lookup() {
        let v = json!({"labels": [{"key": "a", "value": "1"}, {"key": "b"}, {"key": "a", "value": "2"}]});
        let l: Labels = parse(v.clone()).unwrap();
        assert_eq!(l.values("a").collect::<Vec<_>>(), [Some("1"), Some("2")]);
        assert_eq!(l.values("b").collect::<Vec<_>>(), [None]);
        assert_eq!(serde_json::to_value(&l).unwrap(), v);
        let empty: Labels = parse(json!({"labels": null})).unwrap();
        assert!(empty.labels.is_empty());
        let e = parse::<Labels>(json!({"labels": [{"value": "x"}]})).unwrap_err();
        assert_eq!(e.to_string(), "Missing required fields: key");
    }
}
