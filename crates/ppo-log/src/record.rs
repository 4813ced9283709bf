//! One metrics record and its flat, order-preserving JSON form.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::{self, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Keys written by the record itself; metric names may not reuse them.
pub const RESERVED_KEYS: [&str; 3] = ["kind", "step", "timestamp"];

/// Whether a record comes from a training step or an evaluation pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// Training-step metrics (serialised as `"train"`).
    Train,
    /// Evaluation metrics (serialised as `"eval"`).
    Eval,
}

/// One line of the metrics file.
///
/// Serialised flat, with `values` after the fixed fields and in their given
/// order: `{"kind":"train","step":3,"timestamp":"...","policy_loss":0.1}`.
/// Non-finite values are written as `null` and read back as NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRecord {
    /// Train or eval.
    pub kind: RecordKind,
    /// Global optimiser step the values belong to.
    pub step: u64,
    /// Wall-clock time the record was produced (RFC 3339 in the file).
    pub timestamp: DateTime<Utc>,
    /// Named metric values, kept in order.
    pub values: Vec<(String, f64)>,
}

impl MetricsRecord {
    /// A record stamped with the current time.
    pub fn now(kind: RecordKind, step: u64, values: Vec<(String, f64)>) -> Self {
        Self {
            kind,
            step,
            timestamp: Utc::now(),
            values,
        }
    }

    /// The value named `key`, if present.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl Serialize for MetricsRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seen = HashSet::with_capacity(self.values.len());
        for (key, _) in &self.values {
            if RESERVED_KEYS.contains(&key.as_str()) {
                return Err(ser::Error::custom(format!(
                    "metric name {key:?} is reserved"
                )));
            }
            if !seen.insert(key.as_str()) {
                return Err(ser::Error::custom(format!(
                    "metric name {key:?} appears more than once"
                )));
            }
        }
        let mut map = serializer.serialize_map(Some(3 + self.values.len()))?;
        map.serialize_entry("kind", &self.kind)?;
        map.serialize_entry("step", &self.step)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        for (key, value) in &self.values {
            let value = value.is_finite().then_some(*value);
            map.serialize_entry(key, &value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MetricsRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// Reads the map entries in document order so `values` keeps the file's order.
struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = MetricsRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a flat metrics object with kind, step and timestamp")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        let mut step = None;
        let mut timestamp = None;
        let mut values: Vec<(String, f64)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "kind" => set_once(&mut kind, "kind", map.next_value()?)?,
                "step" => set_once(&mut step, "step", map.next_value()?)?,
                "timestamp" => set_once(&mut timestamp, "timestamp", map.next_value()?)?,
                _ => {
                    if values.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    let value: Option<f64> = map.next_value()?;
                    values.push((key, value.unwrap_or(f64::NAN)));
                }
            }
        }
        Ok(MetricsRecord {
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            step: step.ok_or_else(|| de::Error::missing_field("step"))?,
            timestamp: timestamp.ok_or_else(|| de::Error::missing_field("timestamp"))?,
            values,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(values: Vec<(&str, f64)>) -> MetricsRecord {
        MetricsRecord {
            kind: RecordKind::Eval,
            step: 7,
            timestamp: DateTime::parse_from_rfc3339("2026-01-20T14:30:22.5Z")
                .unwrap()
                .with_timezone(&Utc),
            values: values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn serialises_flat_in_order_with_null_for_non_finite() {
        let line = serde_json::to_string(&record(vec![
            ("z", 1.5),
            ("a", f64::INFINITY),
            ("m", f64::NAN),
        ]))
        .unwrap();
        assert_eq!(
            line,
            r#"{"kind":"eval","step":7,"timestamp":"2026-01-20T14:30:22.500Z","z":1.5,"a":null,"m":null}"#
        );
    }

    #[test]
    fn deserialises_in_file_order() {
        let text =
            r#"{"step":7,"b":2.0,"kind":"eval","a":null,"timestamp":"2026-01-20T14:30:22.500Z"}"#;
        let parsed: MetricsRecord = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.kind, RecordKind::Eval);
        assert_eq!(parsed.step, 7);
        assert_eq!(parsed.values[0], ("b".to_owned(), 2.0));
        assert_eq!(parsed.values[1].0, "a");
        assert!(parsed.values[1].1.is_nan());
    }

    #[test]
    fn rejects_reserved_and_duplicate_keys() {
        assert!(serde_json::to_string(&record(vec![("step", 1.0)])).is_err());
        assert!(serde_json::to_string(&record(vec![("x", 1.0), ("x", 2.0)])).is_err());
        let dup = r#"{"kind":"eval","step":1,"step":2,"timestamp":"2026-01-20T14:30:22Z"}"#;
        assert!(serde_json::from_str::<MetricsRecord>(dup).is_err());
        let missing = r#"{"kind":"eval","timestamp":"2026-01-20T14:30:22Z"}"#;
        assert!(serde_json::from_str::<MetricsRecord>(missing).is_err());
    }
}
