//! The event log: gap-free appends in commit order, listings and log reads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::*;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Postgres, QueryBuilder};

use crate::error::map;
use crate::sql::*;
use crate::store::*;

/// An append's error; the function's own code for a full log is said as
/// every backend says it.
pub(crate) fn append_error(ns: &str, e: sqlx::Error) -> Error {
    match e.as_database_error().and_then(|d| d.code()) {
        Some(code) if code == LOG_FULL_SQLSTATE => {
            next_position(ns, validate::MAX_SEQUENCE).expect_err("the last position")
        }
        _ => map(e),
    }
}

pub(crate) fn appended_row(r: &PgRow) -> Result<Appended> {
    Ok(Appended {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        duplicate: col(r, 2, "duplicate")?,
    })
}

impl PgStore {
    /// Append `events` on `c` (a connection of its own, or a batch's
    /// transaction): the one body both `append` and `apply` use.
    pub(crate) async fn append_on(
        &self,
        c: &mut PgConnection,
        ns: &str,
        events: &[PreparedEvent],
    ) -> Result<Vec<Appended>> {
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| dt(e.occurred_at)).collect();
        let digests: Vec<&str> = events.iter().map(|e| e.digest.as_str()).collect();
        let datas: Vec<&str> = events.iter().map(|e| e.canonical.as_str()).collect();
        let rows = self
            .q(APPEND_EVENTS)
            .bind(ns)
            .bind(&kinds)
            .bind(&times)
            .bind(&digests)
            .bind(&datas)
            .fetch_all(&mut *c)
            .await
            .map_err(|e| append_error(ns, e))?;
        rows.iter().map(appended_row).collect()
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let ns = cx.ns();
        let events = op.events;
        // One round trip: the migrations' `append_events` takes the log head
        // (locked until commit, so positions follow commit order), dedupes,
        // inserts and moves the head, in the call's own transaction.
        one!(self, |c| self.append_on(c, ns, events).await)
    }

    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let make = || {
            let mut b = QueryBuilder::<Postgres>::new(self.sql.render(LIST_EVENTS_FROM));
            b.push_bind(ns.to_string());
            if let Some(f) = q.from {
                b.push(" AND occurred_at >= ").push_bind(dt(f));
            }
            if let Some(t) = q.to {
                b.push(" AND occurred_at < ").push_bind(dt(t));
            }
            if !q.kinds.is_empty() {
                b.push(" AND kind = ANY(")
                    .push_bind(q.kinds.clone())
                    .push(")");
            }
            if let Some((t, id)) = q.after {
                b.push(if q.newest_first {
                    " AND (occurred_at, id) < ("
                } else {
                    " AND (occurred_at, id) > ("
                })
                .push_bind(dt(t))
                .push(", ")
                .push_bind(id as i64)
                .push(")");
            }
            b.push(if q.newest_first {
                LIST_EVENTS_NEWEST_FIRST
            } else {
                LIST_EVENTS_ORDER
            })
            .push_bind(q.limit as i64);
            b
        };
        let rows = self.fetch_built(make).await?;
        rows.iter().map(event_row).collect()
    }

    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let ns = cx.ns();
        let ReadLog { after, limit, .. } = *op;
        let rows = one!(read self, |c| self
            .q(READ_LOG)
            .bind(ns)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(event_row).collect()
    }
}
