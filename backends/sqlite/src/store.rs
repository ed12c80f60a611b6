//! The store: its struct, opening, connection handling and row decoding.
//! Each domain is a module of its own beside this one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use persistkit_core::*;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, Params, Row, TransactionBehavior};
use serde_json::Value;

use crate::config::SqliteConfig;
use crate::error::map;
use crate::pool::Pool;
use crate::schema;
use crate::sql::*;

/// A persistkit store in one SQLite file (WAL, `synchronous=NORMAL`).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: Arc<Pool>,
    pub(crate) config: SqliteConfig,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.config.path)
            .finish()
    }
}

impl SqliteStore {
    /// Open `sqlite://path?options` (see [`SqliteConfig::from_url`]).
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL, `Unavailable` when the file cannot be
    /// opened, `Schema` when it is newer than this code.
    pub async fn open(url: &str) -> Result<Self> {
        Self::connect(SqliteConfig::from_url(url)?).await
    }

    /// Open with a configuration.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn connect(config: SqliteConfig) -> Result<Self> {
        if config.inspect && !config.path.exists() {
            return Err(Error::unavailable(format!(
                "the SQLite file {} does not exist",
                config.path.display()
            )));
        }
        if config.create {
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::unavailable(format!("cannot create {}", dir.display())).with_source(e)
                })?;
            }
        }
        let pool = Arc::new(Pool::open(config.clone())?);
        if config.inspect {
            // Health and similar read-only looks: no migration, no check.
        } else if config.migrate {
            pool.run(schema::migrate).await?;
        } else {
            pool.run(schema::require_current).await?;
        }
        Ok(SqliteStore { pool, config })
    }

    /// The plan SQLite uses for `find` with `query` (the first page, or
    /// the next when `query.after` is set), as `EXPLAIN QUERY PLAN` lines.
    ///
    /// # Errors
    /// As any read.
    pub async fn explain_find(
        &self,
        ns: &str,
        collection: &str,
        query: &FindQuery,
    ) -> Result<String> {
        let sql = if query.after.is_some() {
            FIND_AFTER
        } else {
            FIND_FIRST
        };
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        self.pool
            .run(|c| {
                let mut st = c.prepare(&sql).map_err(map)?;
                let head = params![
                    ns,
                    collection,
                    query.index,
                    query.from,
                    query.to,
                    0i64,
                    100i64
                ];
                let mut rows = match &query.after {
                    None => st.query(head),
                    Some((key, id)) => st.query(params![
                        ns,
                        collection,
                        query.index,
                        query.from,
                        query.to,
                        0i64,
                        100i64,
                        key,
                        id
                    ]),
                }
                .map_err(map)?;
                let mut lines = Vec::new();
                while let Some(r) = rows.next().map_err(map)? {
                    lines.push(col::<String>(r, 3, "plan")?);
                }
                Ok(lines.join("\n"))
            })
            .await
    }

    /// Run your own statements on one of the store's connections (a
    /// closure on a blocking `rusqlite` connection; keep it short).
    ///
    /// # Errors
    /// `Closed` once the store is closed, `Unavailable` when no connection
    /// frees up in time, and what `f` fails with, mapped as the store's own
    /// errors are.
    pub async fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T> {
        self.pool.run(|c| f(c).map_err(map)).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }
}

pub(crate) fn ts(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros)
        .map_err(|e| Error::internal("a stored timestamp is out of range").with_source(e))
}

pub(crate) fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal("stored JSON does not parse").with_source(e))
}

pub(crate) fn bad_column(name: &str, e: impl Into<BoxError>) -> Error {
    Error::internal(format!("column {name} of a stored row cannot be read")).with_source(e)
}

/// Column `i` (called `name`) of a row, or `Internal` naming it: a row of
/// the wrong shape is an error, never a panic.
pub(crate) fn col<T: rusqlite::types::FromSql>(r: &Row<'_>, i: usize, name: &str) -> Result<T> {
    r.get(i).map_err(|e| bad_column(name, e))
}

/// A text column, borrowed from the row.
pub(crate) fn text<'r>(r: &'r Row<'_>, i: usize, name: &str) -> Result<&'r str> {
    r.get_ref(i)
        .map_err(|e| bad_column(name, e))?
        .as_str()
        .map_err(|e| bad_column(name, e))
}

/// A text column that may be NULL.
pub(crate) fn text_or_null<'r>(r: &'r Row<'_>, i: usize, name: &str) -> Result<Option<&'r str>> {
    match r.get_ref(i).map_err(|e| bad_column(name, e))? {
        ValueRef::Null => Ok(None),
        v => v.as_str().map(Some).map_err(|e| bad_column(name, e)),
    }
}

/// A stored id, position, version or sequence, which is never negative.
pub(crate) fn seq(r: &Row<'_>, i: usize, name: &str) -> Result<u64> {
    let v: i64 = col(r, i, name)?;
    u64::try_from(v).map_err(|_| Error::internal(format!("column {name} holds {v}, below zero")))
}

pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn metric_row(r: &Row<'_>) -> Result<StoredMetric> {
    Ok(StoredMetric {
        seq: seq(r, 0, "metrics.seq")?,
        point: MetricPoint {
            at: ts(col(r, 1, "metrics.at")?)?,
            component: col(r, 2, "metrics.component")?,
            name: col(r, 3, "metrics.name")?,
            kind: MetricKind::parse(text(r, 4, "metrics.kind")?)?,
            value: col(r, 5, "metrics.value")?,
        },
    })
}

pub(crate) fn event_row(r: &Row<'_>) -> Result<Event> {
    Ok(Event {
        id: seq(r, 0, "events.id")?,
        position: seq(r, 1, "events.position")?,
        kind: col(r, 2, "events.kind")?,
        occurred_at: ts(col(r, 3, "events.occurred_at")?)?,
        data: json(text(r, 4, "events.data")?)?,
    })
}

pub(crate) fn key_row(r: &Row<'_>) -> Result<IdempotencyEntry> {
    Ok(IdempotencyEntry {
        scope: col(r, 0, "idempotency_keys.scope")?,
        key: col(r, 1, "idempotency_keys.key")?,
        token: col(r, 2, "idempotency_keys.token")?,
        claimed_at: ts(col(r, 3, "idempotency_keys.claimed_at")?)?,
        expires_at: ts(col(r, 4, "idempotency_keys.expires_at")?)?,
        response: text_or_null(r, 5, "idempotency_keys.response")?
            .map(json)
            .transpose()?,
        fingerprint: col(r, 6, "idempotency_keys.fingerprint")?,
    })
}

pub(crate) fn record_row(r: &Row<'_>) -> Result<Record> {
    record_row_from(r, 0)
}

/// A record from the seven columns starting at `at`.
pub(crate) fn record_row_from(r: &Row<'_>, at: usize) -> Result<Record> {
    Ok(Record {
        collection: col(r, at, "records.collection")?,
        id: col(r, at + 1, "records.id")?,
        data: json(text(r, at + 2, "records.data")?)?,
        version: seq(r, at + 3, "records.version")?,
        created_at: ts(col(r, at + 4, "records.created_at")?)?,
        updated_at: ts(col(r, at + 5, "records.updated_at")?)?,
        expires_at: col::<Option<i64>>(r, at + 6, "records.expires_at")?
            .map(ts)
            .transpose()?,
    })
}

pub(crate) fn index_row(r: &Row<'_>) -> Result<Index> {
    let fields: String = col(r, 2, "record_indexes.fields")?;
    Ok(Index {
        collection: col(r, 0, "record_indexes.collection")?,
        name: col(r, 1, "record_indexes.name")?,
        fields: serde_json::from_str(&fields).map_err(|e| {
            Error::internal("record_indexes.fields is not a JSON array of strings").with_source(e)
        })?,
        unique: col::<i64>(r, 3, "record_indexes.is_unique")? != 0,
    })
}

/// Every row of a cached statement, each turned into a `T` by `f`.
pub(crate) fn all<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(map)?;
    let mut rows = st.query(params).map_err(map)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(map)? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row of a cached statement, if any.
pub(crate) fn first<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut st = c.prepare_cached(sql).map_err(map)?;
    let mut rows = st.query(params).map_err(map)?;
    rows.next().map_err(map)?.map(f).transpose()
}

/// Run a cached statement; the rows it changed.
pub(crate) fn exec(c: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    c.prepare_cached(sql)
        .map_err(map)?
        .execute(params)
        .map_err(map)
}

/// `BEGIN IMMEDIATE`: the write lock first, so writers serialize and
/// positions follow commit order.
pub(crate) fn immediate(c: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map)
}

/// A statement built for one call's shape: the SQL text, and its values in
/// placeholder order.
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    pub(crate) sql: String,
    params: Vec<ToSqlOutput<'a>>,
}

impl<'a> Query<'a> {
    pub(crate) fn new(sql: &str) -> Self {
        Query {
            sql: sql.to_string(),
            params: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub(crate) fn bind(&mut self, v: impl Into<ToSqlOutput<'a>>) -> &mut Self {
        self.sql.push('?');
        self.params.push(v.into());
        self
    }

    /// Call `f` on each row in turn, collecting nothing.
    pub(crate) fn each(
        &self,
        c: &Connection,
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut st = c.prepare_cached(&self.sql).map_err(map)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(&self.params))
            .map_err(map)?;
        while let Some(r) = rows.next().map_err(map)? {
            f(r)?;
        }
        Ok(())
    }

    pub(crate) fn rows<T>(
        &self,
        c: &Connection,
        f: impl Fn(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        all(c, &self.sql, rusqlite::params_from_iter(&self.params), f)
    }
}
