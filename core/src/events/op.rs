//! The operations of the event log, as a backend receives them.

use super::PreparedEvent;

/// Append events (EVT-1, EVT-3): all or none, duplicates flagged.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Append<'a> {
    /// The events, validated, with their canonical JSON and digest.
    pub events: &'a [PreparedEvent],
}

impl<'a> Append<'a> {
    /// Append `events`. The handle builds this after validating them; a
    /// layer builds one only to pass on a changed append.
    pub fn new(events: &'a [PreparedEvent]) -> Self {
        Append { events }
    }
}

/// Read the log by position (EVT-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadLog {
    /// Events after this position (0: from the start).
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl ReadLog {
    /// At most `limit` events after position `after`.
    pub fn new(after: u64, limit: usize) -> Self {
        ReadLog { after, limit }
    }
}
