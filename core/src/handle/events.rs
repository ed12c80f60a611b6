//! The event log through a handle.

use crate::cursor::{self, Page};
use crate::error::Result;
use crate::events::{Appended, Event, EventFilter, EventQuery, NewEvent};
use crate::limits::DEFAULT_LIMIT;
use crate::time::Timestamp;
use crate::validate;
use crate::validate::{check_range, prepare_event};

use super::{paginate, Handle};
use crate::op::*;

impl Handle {
    /// Append events idempotently; one result per event, in order.
    ///
    /// # Errors
    /// `InvalidInput` with the index of the first bad event; nothing is written.
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<Appended>> {
        let mut prepared = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            prepared.push(prepare_event(e).map_err(|err| err.at_index(i))?);
        }
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(
            "append",
            self.store
                .append(&self.cx(self.now()), &Append::new(&prepared)),
        )
        .await
    }

    /// List events ordered by `(occurred_at, id)`, oldest first, or newest
    /// first with [`EventFilter::newest_first`]. A cursor continues in the
    /// order of the listing that returned it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad kind, limit, range or cursor.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Page<Event>> {
        for k in &filter.kinds {
            validate::name("event kind", k)?;
        }
        check_range(filter.from, filter.to)?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        validate::limit(limit)?;
        let mut kinds = filter.kinds.clone();
        kinds.sort();
        kinds.dedup();
        let scope = cursor::scope(
            &self.ns,
            &(filter.from, filter.to, &kinds, filter.newest_first),
        );
        let after = match &filter.cursor {
            Some(c) => {
                let k = cursor::decode::<(Timestamp, u64)>("events", &scope, c)?;
                cursor::check_sequence("events", c, k.1)?;
                Some(k)
            }
            None => None,
        };
        let query = EventQuery {
            from: filter.from,
            to: filter.to,
            kinds,
            limit: limit + 1,
            after,
            newest_first: filter.newest_first,
        };
        let items = self
            .timed(
                "list_events",
                self.store.list_events(&self.cx(self.now()), &query),
            )
            .await?;
        Ok(paginate(items, limit, |e| {
            cursor::encode("events", &scope, &(e.occurred_at, e.id))
        }))
    }

    /// Events with `position > after`, in commit order, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a limit outside 1..=10 000.
    pub async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        validate::limit(limit)?;
        self.timed(
            "read_log",
            self.store
                .read_log(&self.cx(self.now()), &ReadLog::new(after, limit)),
        )
        .await
    }
}
