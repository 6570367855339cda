//! The one JSON object a run prints.

use serde_json::{json, Map, Value};
use std::time::Duration;

/// What a timed workload did: `count` operations in `elapsed`.
#[derive(Debug)]
pub struct Report {
    workload: &'static str,
    count: u64,
    elapsed: Duration,
    /// What the rate counts, e.g. `cmds/s` or `lines/s`.
    unit: &'static str,
    /// The workload's parameters and the target, printed after the figures.
    details: Map<String, Value>,
}

impl Report {
    pub fn new(workload: &'static str, count: u64, elapsed: Duration, unit: &'static str) -> Self {
        Report {
            workload,
            count,
            elapsed,
            unit,
            details: Map::new(),
        }
    }

    /// Adds a parameter to the output.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn to_json(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let mut object = json!({
            "workload": self.workload,
            "count": self.count,
            "seconds": seconds,
            "rate": (self.count as f64 / seconds).round(),
            "unit": self.unit,
        });
        let fields = object.as_object_mut().expect("an object");
        fields.extend(self.details.clone());
        object.to_string()
    }
}
