//! `GET_METRICS`: the process's metrics as `{name, value}` pairs, the keys
//! and values of `/metrics/snapshot`.

use serde::{Deserialize, Serialize};

/// `get_metrics` of the call: how long the master may take to collect
/// (Keel answers at once and ignores it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMetricsCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Mesos' `DurationInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duration {
    pub nanoseconds: i64,
}

/// One metric: its Mesos key and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// The answer to `GET_METRICS`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetMetrics {
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

#[cfg(test)]
mod tests {
    use super::super::{Call, Response};
    use super::*;
    use serde_json::json;

    #[test]
    fn get_metrics_travels_as_mesos_writes_it() {
        let call = Call::GetMetrics(GetMetricsCall {
            timeout: Some(Duration {
                nanoseconds: 5_000_000_000,
            }),
        });
        let j = serde_json::to_value(&call).unwrap();
        assert_eq!(
            j,
            json!({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 5_000_000_000i64}}})
        );
        assert_eq!(serde_json::from_value::<Call>(j).unwrap(), call);
        let answer: Response = serde_json::from_value(json!({
            "type": "GET_METRICS",
            "get_metrics": {"metrics": [{"name": "master/elected", "value": 1.0}]}
        }))
        .unwrap();
        let Response::GetMetrics(m) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(m.metrics[0].name, "master/elected");
        assert_eq!(m.metrics[0].value, Some(1.0));
    }
}
