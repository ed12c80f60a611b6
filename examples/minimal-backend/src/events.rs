//! The event log: gap-free positions, dedupe, listings by time.

use std::collections::HashMap;

use async_trait::async_trait;
use persistkit_core::backend::next_position;
use persistkit_core::op::{Append, ReadLog};
use persistkit_core::{Appended, Cx, Event, EventQuery, EventStore, Result, Timestamp};

use crate::store::BTreeStore;

#[async_trait]
impl EventStore for BTreeStore {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let ns = cx.ns();
        let mut s = self.lock()?;
        let space = s.spaces.entry(ns.to_string()).or_default();
        // Plan the whole batch before changing anything: a full log refuses
        // all of it, and a duplicate inside the batch gets the first one's
        // position.
        let mut head = space.last_position;
        let mut planned: HashMap<(String, Timestamp, String), u64> = HashMap::new();
        let mut out = Vec::with_capacity(op.events.len());
        for e in op.events {
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(&pos) = space.dedupe.get(&key).or_else(|| planned.get(&key)) {
                out.push(Appended {
                    id: pos,
                    position: pos,
                    duplicate: true,
                });
                continue;
            }
            head = next_position(ns, head)?;
            planned.insert(key, head);
            out.push(Appended {
                id: head,
                position: head,
                duplicate: false,
            });
        }
        space.last_position = head;
        for (e, a) in op.events.iter().zip(&out).filter(|(_, a)| !a.duplicate) {
            space.dedupe.insert(
                (e.kind.clone(), e.occurred_at, e.digest.clone()),
                a.position,
            );
            space.events.insert(
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
        Ok(out)
    }

    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        let mut page: Vec<&Event> = space
            .events
            .values()
            .filter(|e| q.kinds.is_empty() || q.kinds.contains(&e.kind))
            .filter(|e| q.from.is_none_or(|f| e.occurred_at >= f))
            .filter(|e| q.to.is_none_or(|t| e.occurred_at < t))
            .filter(|e| match q.after {
                None => true,
                Some(after) if q.newest_first => (e.occurred_at, e.id) < after,
                Some(after) => (e.occurred_at, e.id) > after,
            })
            .collect();
        page.sort_by_key(|e| (e.occurred_at, e.id));
        if q.newest_first {
            page.reverse();
        }
        Ok(page.into_iter().take(q.limit).cloned().collect())
    }

    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let s = self.lock()?;
        let Some(space) = s.spaces.get(cx.ns()) else {
            return Ok(Vec::new());
        };
        Ok(space
            .events
            .range(op.after.saturating_add(1)..)
            .take(op.limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
