//! The event log: positions, a time index and the dedupe map.

use async_trait::async_trait;
use persistkit_core::backend::next_position;
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{Appended, Event, EventQuery, EventStore, PreparedEvent, Result, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::store::*;

#[derive(Debug, Default, Clone)]
pub(crate) struct Log {
    pub(crate) last_position: u64,
    pub(crate) by_position: BTreeMap<u64, Event>,
    pub(crate) by_time: BTreeMap<(Timestamp, u64), u64>,
    /// (kind, occurred_at, digest) → (id, position).
    pub(crate) dedupe: HashMap<(String, Timestamp, String), (u64, u64)>,
}

impl Log {
    /// Append `events`, all of them or (on a full log) none.
    pub(crate) fn append(&mut self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        let log = self;
        // Plan the whole batch first, so a full log rejects all of it.
        let mut head = log.last_position;
        let mut planned: HashMap<(String, Timestamp, String), (u64, u64)> = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(&(id, position)) = log.dedupe.get(&key).or_else(|| planned.get(&key)) {
                out.push(Appended {
                    id,
                    position,
                    duplicate: true,
                });
                continue;
            }
            head = next_position(ns, head)?;
            planned.insert(key, (head, head));
            out.push(Appended {
                id: head,
                position: head,
                duplicate: false,
            });
        }
        for (e, a) in events.iter().zip(&out).filter(|(_, a)| !a.duplicate) {
            log.dedupe.insert(
                (e.kind.clone(), e.occurred_at, e.digest.clone()),
                (a.id, a.position),
            );
            log.by_time.insert((e.occurred_at, a.id), a.position);
            log.by_position.insert(
                a.position,
                Event {
                    id: a.id,
                    position: a.position,
                    kind: e.kind.clone(),
                    occurred_at: e.occurred_at,
                    data: e.data.clone(),
                },
            );
        }
        log.last_position = head;
        Ok(out)
    }
}

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
