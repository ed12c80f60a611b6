//! Events: an append-only, deduplicated, gap-free log.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cx::Cx;
use crate::error::{Error, Result};
use crate::limits::MAX_SEQUENCE;
use crate::time::Timestamp;

pub mod op;

use op::{Append, ReadLog};

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// What happened.
    pub kind: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Details: a JSON object or array.
    pub data: Value,
}

impl NewEvent {
    /// A new event.
    pub fn new(kind: &str, occurred_at: Timestamp, data: Value) -> Self {
        NewEvent {
            kind: kind.into(),
            occurred_at,
            data,
        }
    }
}

/// An event the store has accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Store-assigned id; unique within the namespace.
    pub id: u64,
    /// Position in the namespace's log; strictly increasing in commit order.
    pub position: u64,
    /// What happened.
    pub kind: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Details.
    pub data: Value,
}

/// The outcome of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The event's id (the existing one for a duplicate).
    pub id: u64,
    /// The event's log position (the existing one for a duplicate).
    pub position: u64,
    /// True when an identical event was already stored and nothing was written.
    pub duplicate: bool,
}

/// An event as a backend receives it: validated, with its dedupe digest.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEvent {
    /// What happened.
    pub kind: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Details.
    pub data: Value,
    /// Canonical JSON of `data` (keys sorted, no whitespace).
    pub canonical: String,
    /// Lower-case hex SHA-256 of `canonical`. Events dedupe on
    /// `(namespace, kind, occurred_at, digest)`.
    pub digest: String,
}

/// What to list. `limit` defaults to 1 000 and may be at most 10 000.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventFilter {
    /// Inclusive lower bound on `occurred_at`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on `occurred_at`.
    pub to: Option<Timestamp>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// Page size; `None` means 1 000.
    pub limit: Option<usize>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
    /// List newest first: by `(occurred_at, id)` descending. Default: oldest
    /// first.
    pub newest_first: bool,
}

/// A validated event listing, as a backend receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Inclusive lower bound on `occurred_at`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on `occurred_at`.
    pub to: Option<Timestamp>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<String>,
    /// At most this many.
    pub limit: usize,
    /// Only events strictly after `(occurred_at, id)` in listing order:
    /// greater when oldest first, smaller when newest first.
    pub after: Option<(Timestamp, u64)>,
    /// Order by `(occurred_at, id)` descending instead of ascending.
    pub newest_first: bool,
}

/// Event primitives a backend implements. Inputs arrive validated.
///
/// # Contract
/// - `append` is atomic and idempotent: an event equal in
///   `(kind, occurred_at, digest)` to a stored one (or an earlier one in the
///   same batch) returns that one's id with `duplicate: true` and writes
///   nothing, under any concurrency.
/// - `list_events` orders by `(occurred_at, id)`, ascending, or descending
///   when `newest_first`.
/// - `read_log` returns events with `position > after` in position order, and
///   positions follow commit order: a poller never skips a late commit.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Append events; one result per input, in input order.
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>>;
    /// List by time.
    async fn list_events(&self, cx: &Cx, query: &EventQuery) -> Result<Vec<Event>>;
    /// Read the log after a position.
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>>;
}

/// The position after `head` in the log of `ns`.
///
/// Every backend hands out positions through this, so a log at the end of
/// its range fails the same way everywhere.
///
/// # Errors
/// `InvalidInput` when `head` is already the largest position
/// ([`MAX_SEQUENCE`]): the log is full and nothing may be appended.
pub fn next_position(ns: &str, head: u64) -> Result<u64> {
    if head >= MAX_SEQUENCE {
        return Err(Error::invalid(format!(
            "the event log of namespace {ns:?} is full: position {head} is the last one; nothing was appended"
        )));
    }
    Ok(head + 1)
}
