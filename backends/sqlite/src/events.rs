//! The event log: gap-free appends in commit order, listings and log reads.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::*;
use rusqlite::{params, Connection};

use crate::error::map;
use crate::sql::*;
use crate::store::*;

/// The event listing for `q`'s shape: only the filters given, in the
/// order asked, so "the latest of one kind" is a range scan on
/// `events_by_kind`.
pub(crate) fn list_events_statement<'a>(ns: &'a str, q: &'a EventQuery) -> Query<'a> {
    let mut b = Query::new(LIST_EVENTS_FROM);
    b.bind(ns);
    if let Some(f) = q.from {
        b.push(" AND occurred_at >= ").bind(f.as_micros());
    }
    if let Some(t) = q.to {
        b.push(" AND occurred_at < ").bind(t.as_micros());
    }
    if !q.kinds.is_empty() {
        // One placeholder per kind: a statement per number of kinds.
        b.push(" AND kind IN (");
        for (i, k) in q.kinds.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind(k.as_str());
        }
        b.push(")");
    }
    if let Some((t, id)) = q.after {
        b.push(if q.newest_first {
            " AND (occurred_at, id) < ("
        } else {
            " AND (occurred_at, id) > ("
        })
        .bind(t.as_micros())
        .push(", ")
        .bind(id as i64)
        .push(")");
    }
    b.push(if q.newest_first {
        LIST_EVENTS_NEWEST_FIRST
    } else {
        LIST_EVENTS_ORDER
    })
    .bind(q.limit as i64);
    b
}

/// Append `events` to `ns` in one IMMEDIATE transaction: positions follow
/// commit order, duplicates get the original's id and position, a full
/// log fails the whole batch.
pub(crate) fn append_in(
    c: &mut Connection,
    ns: &str,
    events: &[PreparedEvent],
) -> Result<Vec<Appended>> {
    let tx = immediate(c)?;
    let out = append_on(&tx, ns, events)?;
    tx.commit().map_err(map)?;
    Ok(out)
}

/// Append inside the caller's IMMEDIATE transaction `tx`.
pub(crate) fn append_on(
    tx: &Connection,
    ns: &str,
    events: &[PreparedEvent],
) -> Result<Vec<Appended>> {
    let start: i64 = first(tx, LOG_HEAD, [ns], |r| col(r, 0, "last_position"))?.unwrap_or(0);
    let mut head = u64_of(start);
    let mut out = Vec::with_capacity(events.len());
    {
        let mut insert = tx
            .prepare_cached(INSERT_EVENT_UNLESS_DUPLICATE)
            .map_err(map)?;
        let duplicate_of = |e: &PreparedEvent| {
            first(
                tx,
                FIND_EVENT,
                params![ns, e.kind, e.occurred_at.as_micros(), e.digest],
                |r| {
                    Ok(Appended {
                        id: seq(r, 0, "events.id")?,
                        position: seq(r, 1, "events.position")?,
                        duplicate: true,
                    })
                },
            )
        };
        for e in events {
            let next = match next_position(ns, head) {
                Ok(next) => next,
                // A full log still resolves duplicates; anything new fails
                // the whole batch, and the transaction rolls back.
                Err(full) => {
                    out.push(duplicate_of(e)?.ok_or(full)?);
                    continue;
                }
            };
            let mut rows = insert
                .query(params![
                    ns,
                    next as i64,
                    e.kind,
                    e.occurred_at.as_micros(),
                    e.digest,
                    e.canonical
                ])
                .map_err(map)?;
            if rows.next().map_err(map)?.is_some() {
                head = next;
                out.push(Appended {
                    id: head,
                    position: head,
                    duplicate: false,
                });
                continue;
            }
            drop(rows);
            out.push(
                duplicate_of(e)?
                    .ok_or_else(|| Error::internal("a duplicate event is missing from the log"))?,
            );
        }
    }
    if head != u64_of(start) {
        exec(tx, SET_LOG_HEAD, params![ns, head as i64])?;
    }
    Ok(out)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let ns = cx.ns();
        let events = op.events;
        self.pool
            .run_by(cx.deadline(), |c| append_in(c, ns, events))
            .await
    }

    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let b = list_events_statement(ns, q);
        self.pool
            .run_by(cx.deadline(), |c| b.rows(c, event_row))
            .await
    }

    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let ReadLog { after, limit, .. } = *op;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.pool
            .run_by(cx.deadline(), |c| {
                all(c, READ_LOG, params![ns, after, limit as i64], event_row)
            })
            .await
    }
}
