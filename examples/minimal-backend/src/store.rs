//! The store: one lock over every namespace's data.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use persistkit_core::{Error, Event, IdempotencyEntry, MetricPoint, Record, Result, Timestamp};

/// A store on `BTreeMap`s, in this process's memory. Clones share the data.
#[derive(Debug, Clone, Default)]
pub struct BTreeStore {
    state: Arc<Mutex<State>>,
    closed: Arc<AtomicBool>,
}

/// Every namespace's data, and the sequence that orders identical points.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_seq: u64,
    pub(crate) spaces: BTreeMap<String, Space>,
}

/// One namespace.
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// Points in read order: time, component, name, then insertion.
    pub(crate) metrics: BTreeMap<(Timestamp, String, String, u64), MetricPoint>,
    /// Events by position (an event's id is its position).
    pub(crate) events: BTreeMap<u64, Event>,
    /// The last position handed out: purged events never give theirs back.
    pub(crate) last_position: u64,
    /// (kind, occurred_at, digest of the data) → position, for dedupe.
    pub(crate) dedupe: HashMap<(String, Timestamp, String), u64>,
    /// Idempotency keys by (scope, key).
    pub(crate) keys: BTreeMap<(String, String), IdempotencyEntry>,
    /// Records by (collection, id).
    pub(crate) records: BTreeMap<(String, String), Record>,
}

impl Space {
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty()
            && self.events.is_empty()
            && self.keys.is_empty()
            && self.records.is_empty()
    }
}

impl BTreeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, or `Closed` once the store was closed.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("the store is closed"));
        }
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn close_now(&self) {
        self.closed.store(true, Ordering::Release);
    }
}
