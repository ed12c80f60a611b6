//! The store: one lock over the state (`state.rs`); each domain is a
//! module of its own beside this one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use persistkit_core::{Error, Result};

use crate::state::State;

/// An in-memory store. Clones share the same data, which is how the
/// conformance suite gets a "second handle". Closing one closes them all.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) closed: Arc<AtomicBool>,
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
