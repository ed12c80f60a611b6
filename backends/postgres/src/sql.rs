//! Every SQL statement of the backend, by name, as a template: `{s}` stands
//! for the store's schema, so every statement names its tables in full and
//! nothing depends on the session's `search_path` (which poolers do not
//! keep). [`Statements`] renders them once per store. Times are
//! `timestamptz`.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AssertSqlSafe;

pub(crate) const INSERT_METRICS: &str = "
INSERT INTO {s}.metrics (ns, at, component, name, kind, value)
SELECT $1, u.at, u.component, u.name, u.kind, u.value
FROM UNNEST($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::float8[])
     WITH ORDINALITY AS u(at, component, name, kind, value, n)
ORDER BY u.n";

/// Large batches: binary COPY straight into the table. One statement, so
/// all-or-nothing; the identity column numbers the rows in the order sent.
pub(crate) const COPY_METRICS: &str =
    "COPY {s}.metrics (ns, at, component, name, kind, value) FROM STDIN (FORMAT binary)";

// Reads are built per filter shape (store.rs): only the predicates a call
// uses appear, so the planner sees them, for custom and generic plans alike.
pub(crate) const READ_METRICS_FROM: &str =
    "SELECT seq, at, component, name, kind, value FROM {s}.metrics WHERE ns = ";
pub(crate) const READ_METRICS_ORDER: &str = " ORDER BY at, component, name, seq LIMIT ";

pub(crate) const LIST_COMPONENTS: &str =
    "SELECT DISTINCT component FROM {s}.metrics WHERE ns = $1 ORDER BY component";
pub(crate) const LIST_METRIC_NAMES: &str =
    "SELECT DISTINCT name FROM {s}.metrics WHERE ns = $1 AND component = $2 ORDER BY name";

// Bucket start = floor(µs / width) * width, in exact integer microseconds;
// `{w}` is the width, bound where it appears.
pub(crate) const AGGREGATE_HEAD: &str = "WITH f AS (
  SELECT (EXTRACT(EPOCH FROM at) * 1000000)::bigint AS us, seq, component, name, value
  FROM {s}.metrics WHERE ns = ";
pub(crate) const AGGREGATE_BUCKETS: &str = "), b AS (
  SELECT us - (((us % {w}) + {w}) % {w}) AS b, us, seq, component, name, value FROM f
)
SELECT b, component, name, COUNT(*), SUM(value), MIN(value), MAX(value),
       (ARRAY_AGG(value ORDER BY us DESC, seq DESC))[1]";
// Only when quantiles are asked for: nearest rank, as core's `quantile_rank`.
pub(crate) const AGGREGATE_QUANTILES: &str =
    ", percentile_disc({q}::float8[]) WITHIN GROUP (ORDER BY value)";
pub(crate) const AGGREGATE_GROUP: &str = "
FROM b
GROUP BY b, component, name
ORDER BY b, component, name";

pub(crate) const LOCK_LOG_HEAD: &str = "
INSERT INTO {s}.event_log_heads (ns, last_position) VALUES ($1, 0)
ON CONFLICT (ns) DO UPDATE SET last_position = event_log_heads.last_position
RETURNING last_position";
pub(crate) const SET_LOG_HEAD: &str = "
INSERT INTO {s}.event_log_heads (ns, last_position) VALUES ($1, $2)
ON CONFLICT (ns) DO UPDATE SET last_position = GREATEST(event_log_heads.last_position, $2)";
/// One round trip per append: the function migration 2 creates.
pub(crate) const APPEND_EVENTS: &str = "SELECT event_id, event_position, duplicate FROM {s}.append_events($1, $2::text[], $3::timestamptz[], $4::text[], $5::text[])";
/// What `append_events` raises when the log is full.
pub(crate) const LOG_FULL_SQLSTATE: &str = "PK001";
pub(crate) const INSERT_EVENTS: &str = "
INSERT INTO {s}.events (ns, position, id, kind, occurred_at, digest, data)
SELECT $1, u.position, u.id, u.kind, u.occurred_at, u.digest, u.data::jsonb
FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
     AS u(position, id, kind, occurred_at, digest, data)";

pub(crate) const LIST_EVENTS_FROM: &str =
    "SELECT id, position, kind, occurred_at, data::text FROM {s}.events WHERE ns = ";
pub(crate) const LIST_EVENTS_ORDER: &str = " ORDER BY occurred_at, id LIMIT ";
pub(crate) const LIST_EVENTS_NEWEST_FIRST: &str = " ORDER BY occurred_at DESC, id DESC LIMIT ";
pub(crate) const READ_LOG: &str = "
SELECT id, position, kind, occurred_at, data::text FROM {s}.events
WHERE ns = $1 AND position > $2 ORDER BY position LIMIT $3";

pub(crate) const CLAIM: &str = "
INSERT INTO {s}.idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response)
VALUES ($1, $2, $3, $4, $5, $6, NULL)
ON CONFLICT (ns, scope, key) DO UPDATE
  SET token = excluded.token, claimed_at = excluded.claimed_at,
      expires_at = excluded.expires_at, response = NULL
  WHERE idempotency_keys.expires_at <= excluded.claimed_at
RETURNING token";
pub(crate) const GET_KEY: &str = "
SELECT scope, key, token, claimed_at, expires_at, response::text FROM {s}.idempotency_keys
WHERE ns = $1 AND scope = $2 AND key = $3";
pub(crate) const COMPLETE_KEY: &str = "
UPDATE {s}.idempotency_keys SET response = $5::jsonb
WHERE ns = $1 AND scope = $2 AND key = $3 AND token = $4 AND expires_at > $6 AND response IS NULL";
pub(crate) const RELEASE_KEY: &str = "
DELETE FROM {s}.idempotency_keys
WHERE ns = $1 AND scope = $2 AND key = $3 AND token = $4 AND expires_at > $5 AND response IS NULL";
pub(crate) const SCAN_KEYS: &str = "
SELECT scope, key, token, claimed_at, expires_at, response::text FROM {s}.idempotency_keys
WHERE ns = $1 AND ($2::text IS NULL OR (scope, key) > ($2, $3::text))
ORDER BY scope, key LIMIT $4";

// Records. A record whose expires_at is at or before now ($5 in writes) is
// absent: reads skip it, a put over it starts again at version 1, a delete
// does not see it.
pub(crate) const INSERT_RECORD_IF_ABSENT: &str = "
INSERT INTO {s}.records AS r (ns, collection, id, data, version, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4::jsonb, 1, $5, $5, $6)
ON CONFLICT (ns, collection, id) DO UPDATE
  SET data = excluded.data, version = 1, created_at = excluded.created_at,
      updated_at = excluded.updated_at, expires_at = excluded.expires_at
  WHERE r.expires_at <= $5
RETURNING collection, id, data::text, version, created_at, updated_at, expires_at";
pub(crate) const UPSERT_RECORD: &str = "
INSERT INTO {s}.records AS r (ns, collection, id, data, version, created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4::jsonb, 1, $5, $5, $6)
ON CONFLICT (ns, collection, id) DO UPDATE
  SET data = excluded.data,
      version = CASE WHEN r.expires_at <= $5 THEN 1 ELSE r.version + 1 END,
      created_at = CASE WHEN r.expires_at <= $5 THEN excluded.created_at ELSE r.created_at END,
      updated_at = excluded.updated_at, expires_at = excluded.expires_at
  -- the last version is never written again
  WHERE r.version < 9223372036854775807 OR r.expires_at <= $5
RETURNING collection, id, data::text, version, created_at, updated_at, expires_at";
pub(crate) const UPDATE_RECORD_AT_VERSION: &str = "
UPDATE {s}.records SET data = $4::jsonb, version = version + 1, updated_at = $5, expires_at = $7
WHERE ns = $1 AND collection = $2 AND id = $3 AND version = $6
  AND version < 9223372036854775807 AND (expires_at IS NULL OR expires_at > $5)
RETURNING collection, id, data::text, version, created_at, updated_at, expires_at";
pub(crate) const GET_RECORD: &str = "
SELECT collection, id, data::text, version, created_at, updated_at, expires_at FROM {s}.records
WHERE ns = $1 AND collection = $2 AND id = $3 AND (expires_at IS NULL OR expires_at > $4)";
/// A range of the primary key (ns, collection, id): the collection's
/// records and nothing else are read.
pub(crate) const COUNT_RECORDS: &str = "
SELECT COUNT(*) FROM {s}.records
WHERE ns = $1 AND collection = $2 AND (expires_at IS NULL OR expires_at > $3)";
pub(crate) const RECORD_VERSION: &str = "
SELECT version FROM {s}.records
WHERE ns = $1 AND collection = $2 AND id = $3 AND (expires_at IS NULL OR expires_at > $4)";
pub(crate) const DELETE_RECORD: &str = "
DELETE FROM {s}.records WHERE ns = $1 AND collection = $2 AND id = $3
  AND ($4::bigint IS NULL OR version = $4) AND (expires_at IS NULL OR expires_at > $5)";
pub(crate) const DELETE_EXPIRED_RECORD: &str = "
DELETE FROM {s}.records WHERE ns = $1 AND collection = $2 AND id = $3 AND expires_at <= $4";
pub(crate) const LIST_RECORDS: &str = "
SELECT collection, id, data::text, version, created_at, updated_at, expires_at FROM {s}.records
WHERE ns = $1 AND collection = $2 AND ($3::text IS NULL OR id > $3)
  AND (expires_at IS NULL OR expires_at > $5)
ORDER BY id LIMIT $4";
pub(crate) const LIST_COLLECTIONS: &str =
    "SELECT DISTINCT collection FROM {s}.records WHERE ns = $1 ORDER BY collection";
pub(crate) const INSERT_RECORDS: &str = "
INSERT INTO {s}.records (ns, collection, id, data, version, created_at, updated_at, expires_at)
SELECT $1, u.collection, u.id, u.data::jsonb, u.version, u.created_at, u.updated_at, u.expires_at
FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[],
            $8::timestamptz[])
     AS u(collection, id, data, version, created_at, updated_at, expires_at)";

// Indexes.
pub(crate) const LOCK_INDEXES: &str =
    "SELECT pg_advisory_xact_lock({s}.persistkit_index_lock($1, $2))";
pub(crate) const INDEX_DEFINITION: &str = "
SELECT collection, name, fields, is_unique FROM {s}.record_indexes
WHERE ns = $1 AND collection = $2 AND name = $3";
pub(crate) const LIST_INDEXES: &str = "
SELECT collection, name, fields, is_unique FROM {s}.record_indexes
WHERE ns = $1 AND ($2::text IS NULL OR collection = $2) ORDER BY collection, name";
pub(crate) const INSERT_INDEX: &str = "
INSERT INTO {s}.record_indexes (ns, collection, name, fields, paths, is_unique)
VALUES ($1, $2, $3, $4::text[], $5::jsonb, $6)";
pub(crate) const DELETE_EXPIRED_IN_COLLECTION: &str =
    "DELETE FROM {s}.records WHERE ns = $1 AND collection = $2 AND expires_at <= $3";
/// A record sharing its key with another, for a unique index being declared.
pub(crate) const DUPLICATE_KEY: &str = "
SELECT MIN(id) FROM (
  SELECT id, {s}.persistkit_index_key(data, $3::jsonb) AS k
  FROM {s}.records WHERE ns = $1 AND collection = $2) x
WHERE k IS NOT NULL GROUP BY k HAVING COUNT(*) > 1 LIMIT 1";
pub(crate) const BACKFILL_INDEX: &str = "
INSERT INTO {s}.record_index_entries (ns, collection, name, key, id, is_unique)
SELECT ns, collection, $3, k, id, $4
FROM (SELECT ns, collection, id, {s}.persistkit_index_key(data, $5::jsonb) AS k
      FROM {s}.records WHERE ns = $1 AND collection = $2) x
WHERE k IS NOT NULL";
/// The unique index and record holding the key that data `$4` would take,
/// other than record `$3`, and whether that record expired at `$5`.
pub(crate) const UNIQUE_HOLDER: &str = "
SELECT i.name, e.id, coalesce(r.expires_at <= $5, false) FROM {s}.record_indexes i
JOIN {s}.record_index_entries e
  ON e.ns = i.ns AND e.collection = i.collection AND e.name = i.name
 AND e.key = {s}.persistkit_index_key($4::jsonb, i.paths)
JOIN {s}.records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE i.ns = $1 AND i.collection = $2 AND i.is_unique AND e.id <> $3
ORDER BY i.name LIMIT 1";
pub(crate) const FIND_FIRST: &str = "
SELECT e.key, r.collection, r.id, r.data::text, r.version, r.created_at, r.updated_at, r.expires_at
FROM {s}.record_index_entries e
JOIN {s}.records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE e.ns = $1 AND e.collection = $2 AND e.name = $3 AND e.key >= $4 AND e.key < $5
  AND (r.expires_at IS NULL OR r.expires_at > $6)
ORDER BY e.key, e.id LIMIT $7";
pub(crate) const FIND_AFTER: &str = "
SELECT e.key, r.collection, r.id, r.data::text, r.version, r.created_at, r.updated_at, r.expires_at
FROM {s}.record_index_entries e
JOIN {s}.records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE e.ns = $1 AND e.collection = $2 AND e.name = $3 AND (e.key, e.id) > ($8, $9::text)
  AND e.key >= $4 AND e.key < $5
  AND (r.expires_at IS NULL OR r.expires_at > $6)
ORDER BY e.key, e.id LIMIT $7";
pub(crate) const INSERT_KEYS: &str = "
INSERT INTO {s}.idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response)
SELECT $1, u.scope, u.key, u.token, u.claimed_at, u.expires_at, u.response::jsonb
FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])
     AS u(scope, key, token, claimed_at, expires_at, response)";

pub(crate) const COUNTS: &str = "
SELECT (SELECT COUNT(*) FROM {s}.metrics WHERE ns = $1),
       (SELECT COUNT(*) FROM {s}.events WHERE ns = $1),
       (SELECT COUNT(*) FROM {s}.idempotency_keys WHERE ns = $1),
       (SELECT COUNT(*) FROM {s}.records WHERE ns = $1)";
pub(crate) const NAMESPACES: &str = "
SELECT ns FROM {s}.metrics UNION SELECT ns FROM {s}.events
UNION SELECT ns FROM {s}.idempotency_keys UNION SELECT ns FROM {s}.records
ORDER BY 1";
// One statement, so one transaction: everything of the namespace, the
// log's head included (the log starts again at position 1).
pub(crate) const CLEAR: &str = "
WITH m AS (DELETE FROM {s}.metrics WHERE ns = $1 RETURNING 1),
     e AS (DELETE FROM {s}.events WHERE ns = $1 RETURNING 1),
     h AS (DELETE FROM {s}.event_log_heads WHERE ns = $1 RETURNING 1),
     k AS (DELETE FROM {s}.idempotency_keys WHERE ns = $1 RETURNING 1),
     x AS (DELETE FROM {s}.record_index_entries WHERE ns = $1),
     r AS (DELETE FROM {s}.records WHERE ns = $1 RETURNING 1)
SELECT (SELECT COUNT(*) FROM m), (SELECT COUNT(*) FROM e),
       (SELECT COUNT(*) FROM k), (SELECT COUNT(*) FROM r), (SELECT COUNT(*) FROM h)";
/// Metrics before `$2`, except the components in `$3`, which have
/// cut-offs of their own.
pub(crate) const PURGE_METRICS: &str =
    "DELETE FROM {s}.metrics WHERE ns = $1 AND at < $2 AND component <> ALL($3::text[])";
pub(crate) const PURGE_COMPONENT: &str =
    "DELETE FROM {s}.metrics WHERE ns = $1 AND component = $2 AND at < $3";
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM {s}.events WHERE ns = $1 AND occurred_at < $2";
pub(crate) const PURGE_KEYS: &str =
    "DELETE FROM {s}.idempotency_keys WHERE ns = $1 AND expires_at <= $2";
/// Records updated before `$2`, except the collections in `$3`, which have
/// cut-offs of their own.
pub(crate) const PURGE_RECORDS: &str = "
DELETE FROM {s}.records WHERE ns = $1 AND updated_at < $2 AND collection <> ALL($3::text[])";
pub(crate) const PURGE_COLLECTION: &str =
    "DELETE FROM {s}.records WHERE ns = $1 AND collection = $2 AND updated_at < $3";
pub(crate) const PURGE_EXPIRED_RECORDS: &str =
    "DELETE FROM {s}.records WHERE ns = $1 AND expires_at <= $2";
pub(crate) const STORAGE_BYTES: &str = "SELECT pg_database_size(current_database())";
pub(crate) const PING: &str = "SELECT 1";

/// Every template above, to render once per store.
const ALL: &[&str] = &[
    INSERT_METRICS,
    COPY_METRICS,
    READ_METRICS_FROM,
    READ_METRICS_ORDER,
    LIST_COMPONENTS,
    LIST_METRIC_NAMES,
    AGGREGATE_HEAD,
    AGGREGATE_BUCKETS,
    AGGREGATE_QUANTILES,
    AGGREGATE_GROUP,
    LOCK_LOG_HEAD,
    SET_LOG_HEAD,
    APPEND_EVENTS,
    INSERT_EVENTS,
    LIST_EVENTS_FROM,
    LIST_EVENTS_ORDER,
    LIST_EVENTS_NEWEST_FIRST,
    READ_LOG,
    CLAIM,
    GET_KEY,
    COMPLETE_KEY,
    RELEASE_KEY,
    SCAN_KEYS,
    INSERT_RECORD_IF_ABSENT,
    UPSERT_RECORD,
    UPDATE_RECORD_AT_VERSION,
    GET_RECORD,
    COUNT_RECORDS,
    RECORD_VERSION,
    DELETE_RECORD,
    LIST_RECORDS,
    LIST_COLLECTIONS,
    INSERT_RECORDS,
    DELETE_EXPIRED_RECORD,
    LOCK_INDEXES,
    INDEX_DEFINITION,
    LIST_INDEXES,
    INSERT_INDEX,
    DELETE_EXPIRED_IN_COLLECTION,
    DUPLICATE_KEY,
    BACKFILL_INDEX,
    UNIQUE_HOLDER,
    FIND_FIRST,
    FIND_AFTER,
    PURGE_EXPIRED_RECORDS,
    PURGE_COMPONENT,
    PURGE_COLLECTION,
    INSERT_KEYS,
    COUNTS,
    NAMESPACES,
    CLEAR,
    PURGE_METRICS,
    PURGE_EVENTS,
    PURGE_KEYS,
    PURGE_RECORDS,
    STORAGE_BYTES,
    PING,
];

/// The templates rendered for one schema.
#[derive(Debug)]
pub(crate) struct Statements {
    schema: String,
    rendered: HashMap<&'static str, Arc<str>>,
}

impl Statements {
    /// Render every template for `schema` (already checked to be a plain
    /// lower-case identifier).
    pub(crate) fn new(schema: &str) -> Self {
        let schema = format!("\"{schema}\"");
        let rendered = ALL
            .iter()
            .map(|t| (*t, Arc::from(t.replace("{s}", &schema))))
            .collect();
        Statements { schema, rendered }
    }

    /// A statement fragment for this store's schema.
    pub(crate) fn render(&self, t: &str) -> String {
        t.replace("{s}", &self.schema)
    }

    /// Template `t` for this store's schema.
    pub(crate) fn get(&self, t: &'static str) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(match self.rendered.get(t) {
            Some(s) => s.clone(),
            None => Arc::from(t.replace("{s}", &self.schema)),
        })
    }
}
