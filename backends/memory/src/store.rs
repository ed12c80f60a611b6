//! The store: shared state behind one lock. Each domain is a module of
//! its own beside this one, holding its part of the state.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use persistkit_core::{Error, Result, StoredMetric};

use crate::events::Log;
use crate::idempotency::Keys;
use crate::metrics::MetricOrder;
use crate::records::Records;

/// An in-memory store. Clones share the same data, which is how the
/// conformance suite gets a "second handle". Closing one closes them all.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) closed: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_seq: u64,
    pub(crate) metrics: HashMap<String, BTreeMap<MetricOrder, StoredMetric>>,
    pub(crate) events: HashMap<String, Log>,
    pub(crate) keys: HashMap<String, Keys>,
    pub(crate) records: HashMap<String, Records>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, or `Closed` once [`AdminStore::close`] was called.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("the memory store is closed"));
        }
        // A panic while holding the lock leaves plain data behind; keep going.
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
