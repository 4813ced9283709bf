//! An ordered list of named scalar metrics.

/// Named values in the order they were added (the log's column order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    /// Appends `name = value`.
    pub fn push(&mut self, name: &str, value: f64) {
        self.0.push((name.to_string(), value));
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Names and values, borrowed.
    pub fn as_pairs(&self) -> Vec<(&str, f64)> {
        self.0.iter().map(|(n, v)| (n.as_str(), *v)).collect()
    }
}
