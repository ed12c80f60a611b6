//! The operations of the metrics domain, as a backend receives them.

use super::MetricPoint;

/// Append points (MET-1): all of them, in one transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct WriteMetrics<'a> {
    /// The points, validated and normalized (no negative zero).
    pub points: &'a [MetricPoint],
}

impl<'a> WriteMetrics<'a> {
    /// Write `points`. The handle builds this after validating them; a
    /// layer builds one only to pass on a changed write.
    pub fn new(points: &'a [MetricPoint]) -> Self {
        WriteMetrics { points }
    }
}

/// The metric names of one component (COM-4: byte-wise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListMetricNames<'a> {
    /// The component.
    pub component: &'a str,
}

impl<'a> ListMetricNames<'a> {
    /// The names of `component`.
    pub fn new(component: &'a str) -> Self {
        ListMetricNames { component }
    }
}
