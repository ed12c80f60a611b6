//! The event log: positions, a time index and the dedupe map.

use async_trait::async_trait;
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{Appended, Event, EventQuery, EventStore, Result, Timestamp};
use std::ops::Bound;

use crate::store::*;

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let ns = cx.ns();
        let events = op.events;
        let mut s = self.lock()?;
        s.events
            .entry(ns.to_string())
            .or_default()
            .append(ns, events)
    }

    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let s = self.lock()?;
        let Some(log) = s.events.get(ns) else {
            return Ok(Vec::new());
        };
        let after = match q.after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let keep = |e: &&Event| {
            (q.kinds.is_empty() || q.kinds.contains(&e.kind))
                && q.from.is_none_or(|f| e.occurred_at >= f)
                && q.to.is_none_or(|t| e.occurred_at < t)
        };
        let event = |(_, pos): (&(Timestamp, u64), &u64)| &log.by_position[pos];
        let page = if q.newest_first {
            log.by_time
                .range((Bound::Unbounded, after))
                .rev()
                .map(event)
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        } else {
            log.by_time
                .range((after, Bound::Unbounded))
                .map(event)
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        };
        Ok(page)
    }

    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let ReadLog { after, limit, .. } = *op;
        let s = self.lock()?;
        let Some(log) = s.events.get(ns) else {
            return Ok(Vec::new());
        };
        Ok(log
            .by_position
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
