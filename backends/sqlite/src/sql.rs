//! Every SQL statement of the backend, by name.

pub(crate) const INSERT_METRIC: &str =
    "INSERT INTO metrics (ns, at, component, name, kind, value) VALUES (?, ?, ?, ?, ?, ?)";
pub(crate) const INSERT_METRICS_PREFIX: &str =
    "INSERT INTO metrics (ns, at, component, name, kind, value) ";

// Reads are built per filter shape (store.rs): only the predicates a call
// uses appear, so the planner sees them and picks the index for them.
pub(crate) const READ_METRICS_FROM: &str =
    "SELECT seq, at, component, name, kind, value FROM metrics WHERE ns = ";
pub(crate) const READ_METRICS_ORDER: &str = " ORDER BY at, component, name, seq LIMIT ";

pub(crate) const LIST_COMPONENTS: &str =
    "SELECT DISTINCT component FROM metrics WHERE ns = ? ORDER BY component";
pub(crate) const LIST_METRIC_NAMES: &str =
    "SELECT DISTINCT name FROM metrics WHERE ns = ? AND component = ? ORDER BY name";

// Bucket start = floor(at / width) * width, with a floor that is right for
// negative times too; `{w}` is the width in µs, bound where it appears.
pub(crate) const AGGREGATE_BUCKET: &str = "at - (((at % {w}) + {w}) % {w})";
pub(crate) const AGGREGATE_COLUMNS: &str =
    "SELECT b, component, name, COUNT(*), SUM(value), MIN(value), MAX(value), MAX(last_value)";
// One column per quantile q: the value at rank max(1, ceil(q * n)) (nearest
// rank, as core's `quantile_rank`); `{q}` is bound where it appears.
pub(crate) const AGGREGATE_QUANTILE: &str = ", MAX(CASE WHEN rn = MAX(1, CAST({q} * n AS INTEGER) + ({q} * n > CAST({q} * n AS INTEGER))) THEN value END)";
// `{b}` is the bucket expression above.
pub(crate) const AGGREGATE_FROM: &str = " FROM (SELECT {b} AS b, component, name, value, FIRST_VALUE(value) OVER (PARTITION BY {b}, component, name ORDER BY at DESC, seq DESC) AS last_value";
// Only when quantiles are asked for: each value's rank in its row, and the
// row's size.
pub(crate) const AGGREGATE_RANKS: &str = ", ROW_NUMBER() OVER (PARTITION BY {b}, component, name ORDER BY value) AS rn, COUNT(*) OVER (PARTITION BY {b}, component, name) AS n";
pub(crate) const AGGREGATE_WHERE: &str = " FROM metrics WHERE ns = ";
pub(crate) const AGGREGATE_TAIL: &str = ") GROUP BY b, component, name ORDER BY b, component, name";

pub(crate) const FIND_EVENT: &str =
    "SELECT id, position FROM events WHERE ns = ? AND kind = ? AND occurred_at = ? AND digest = ?";
pub(crate) const LOG_HEAD: &str = "SELECT last_position FROM event_log_heads WHERE ns = ?";
pub(crate) const SET_LOG_HEAD: &str = "
INSERT INTO event_log_heads (ns, last_position) VALUES (?1, ?2)
ON CONFLICT (ns) DO UPDATE SET last_position = MAX(last_position, excluded.last_position)";
pub(crate) const INSERT_EVENT: &str = "
INSERT INTO events (ns, position, id, kind, occurred_at, digest, data)
VALUES (?, ?, ?, ?, ?, ?, ?)";
// A new event at the next position, or nothing when an equal one (same
// kind, time and digest) is already in the log.
pub(crate) const INSERT_EVENT_UNLESS_DUPLICATE: &str = "
INSERT INTO events (ns, position, id, kind, occurred_at, digest, data)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (ns, kind, occurred_at, digest) DO NOTHING
RETURNING position";

pub(crate) const LIST_EVENTS_FROM: &str =
    "SELECT id, position, kind, occurred_at, data FROM events WHERE ns = ";
pub(crate) const LIST_EVENTS_ORDER: &str = " ORDER BY occurred_at, id LIMIT ";
pub(crate) const LIST_EVENTS_NEWEST_FIRST: &str = " ORDER BY occurred_at DESC, id DESC LIMIT ";
pub(crate) const READ_LOG: &str = "
SELECT id, position, kind, occurred_at, data FROM events
WHERE ns = ? AND position > ? ORDER BY position LIMIT ?";

pub(crate) const CLAIM: &str = "
INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
ON CONFLICT (ns, scope, key) DO UPDATE
  SET token = excluded.token, claimed_at = excluded.claimed_at,
      expires_at = excluded.expires_at, response = NULL
  WHERE idempotency_keys.expires_at <= excluded.claimed_at
RETURNING token";
pub(crate) const GET_KEY: &str = "
SELECT scope, key, token, claimed_at, expires_at, response FROM idempotency_keys
WHERE ns = ? AND scope = ? AND key = ?";
pub(crate) const COMPLETE_KEY: &str = "
UPDATE idempotency_keys SET response = ?5
WHERE ns = ?1 AND scope = ?2 AND key = ?3 AND token = ?4 AND expires_at > ?6 AND response IS NULL";
pub(crate) const RELEASE_KEY: &str = "
DELETE FROM idempotency_keys
WHERE ns = ?1 AND scope = ?2 AND key = ?3 AND token = ?4 AND expires_at > ?5 AND response IS NULL";
pub(crate) const SCAN_KEYS: &str = "
SELECT scope, key, token, claimed_at, expires_at, response FROM idempotency_keys
WHERE ns = ?1 AND (?2 IS NULL OR (scope, key) > (?2, ?3))
ORDER BY scope, key LIMIT ?4";

// Records. A record whose expires_at is at or before now (?5 in writes) is
// absent: reads skip it, a put over it starts again at version 1, a delete
// does not see it.
pub(crate) const INSERT_RECORD_IF_ABSENT: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at, expires_at)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)
ON CONFLICT (ns, collection, id) DO UPDATE
  SET data = excluded.data, version = 1, created_at = excluded.created_at,
      updated_at = excluded.updated_at, expires_at = excluded.expires_at
  WHERE records.expires_at <= ?5
RETURNING collection, id, data, version, created_at, updated_at, expires_at";
pub(crate) const UPSERT_RECORD: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at, expires_at)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)
ON CONFLICT (ns, collection, id) DO UPDATE
  SET data = excluded.data,
      version = CASE WHEN records.expires_at <= ?5 THEN 1 ELSE records.version + 1 END,
      created_at = CASE WHEN records.expires_at <= ?5 THEN excluded.created_at ELSE records.created_at END,
      updated_at = excluded.updated_at, expires_at = excluded.expires_at
  -- the last version is never written again
  WHERE records.version < 9223372036854775807 OR records.expires_at <= ?5
RETURNING collection, id, data, version, created_at, updated_at, expires_at";
pub(crate) const UPDATE_RECORD_AT_VERSION: &str = "
UPDATE records SET data = ?4, version = version + 1, updated_at = ?5, expires_at = ?7
WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND version = ?6
  AND version < 9223372036854775807 AND (expires_at IS NULL OR expires_at > ?5)
RETURNING collection, id, data, version, created_at, updated_at, expires_at";
pub(crate) const GET_RECORD: &str = "
SELECT collection, id, data, version, created_at, updated_at, expires_at FROM records
WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND (expires_at IS NULL OR expires_at > ?4)";
/// A range of the primary key (ns, collection, id): the collection's
/// records and nothing else are read.
pub(crate) const COUNT_RECORDS: &str = "
SELECT COUNT(*) FROM records
WHERE ns = ?1 AND collection = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
pub(crate) const RECORD_VERSION: &str = "
SELECT version FROM records
WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND (expires_at IS NULL OR expires_at > ?4)";
pub(crate) const DELETE_RECORD: &str = "
DELETE FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND (?4 IS NULL OR version = ?4)
  AND (expires_at IS NULL OR expires_at > ?5)";
pub(crate) const DELETE_EXPIRED_RECORD: &str = "
DELETE FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND expires_at <= ?4";
pub(crate) const LIST_RECORDS: &str = "
SELECT collection, id, data, version, created_at, updated_at, expires_at FROM records
WHERE ns = ?1 AND collection = ?2 AND (?3 IS NULL OR id > ?3)
  AND (expires_at IS NULL OR expires_at > ?5)
ORDER BY id LIMIT ?4";
pub(crate) const LIST_COLLECTIONS: &str =
    "SELECT DISTINCT collection FROM records WHERE ns = ? ORDER BY collection";
pub(crate) const INSERT_RECORD_FULL: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

// Indexes.
pub(crate) const INDEX_DEFINITION: &str = "
SELECT collection, name, fields, is_unique FROM record_indexes
WHERE ns = ?1 AND collection = ?2 AND name = ?3";
pub(crate) const LIST_INDEXES: &str = "
SELECT collection, name, fields, is_unique FROM record_indexes
WHERE ns = ?1 AND (?2 IS NULL OR collection = ?2) ORDER BY collection, name";
pub(crate) const INSERT_INDEX: &str = "
INSERT INTO record_indexes (ns, collection, name, fields, is_unique) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(crate) const DELETE_EXPIRED_IN_COLLECTION: &str =
    "DELETE FROM records WHERE ns = ?1 AND collection = ?2 AND expires_at <= ?3";
/// Two records with one key, for a unique index being declared.
pub(crate) const DUPLICATE_KEY: &str = "
SELECT MIN(id) FROM records WHERE ns = ?1 AND collection = ?2
  AND persistkit_index_key(data, ?3) IS NOT NULL
GROUP BY persistkit_index_key(data, ?3) HAVING COUNT(*) > 1 LIMIT 1";
pub(crate) const BACKFILL_INDEX: &str = "
INSERT INTO record_index_entries (ns, collection, name, key, id, is_unique)
SELECT ns, collection, ?3, k, id, ?4
FROM (SELECT ns, collection, id, persistkit_index_key(data, ?5) AS k
      FROM records WHERE ns = ?1 AND collection = ?2)
WHERE k IS NOT NULL";
/// The unique index and record holding the key `?4` (a record's data)
/// would take, other than record `?3`, with that record's expiry.
pub(crate) const UNIQUE_HOLDER: &str = "
SELECT i.name, e.id, r.expires_at FROM record_indexes i
JOIN record_index_entries e
  ON e.ns = i.ns AND e.collection = i.collection AND e.name = i.name
 AND e.key = persistkit_index_key(?4, i.fields)
JOIN records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE i.ns = ?1 AND i.collection = ?2 AND i.is_unique AND e.id <> ?3
ORDER BY i.name LIMIT 1";
pub(crate) const FIND_FIRST: &str = "
SELECT e.key, r.collection, r.id, r.data, r.version, r.created_at, r.updated_at, r.expires_at
FROM record_index_entries e
JOIN records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE e.ns = ?1 AND e.collection = ?2 AND e.name = ?3 AND e.key >= ?4 AND e.key < ?5
  AND (r.expires_at IS NULL OR r.expires_at > ?6)
ORDER BY e.key, e.id LIMIT ?7";
/// The next page: the row value after (`?8`, `?9`) bounds the index scan.
pub(crate) const FIND_AFTER: &str = "
SELECT e.key, r.collection, r.id, r.data, r.version, r.created_at, r.updated_at, r.expires_at
FROM record_index_entries e
JOIN records r ON r.ns = e.ns AND r.collection = e.collection AND r.id = e.id
WHERE e.ns = ?1 AND e.collection = ?2 AND e.name = ?3 AND (e.key, e.id) > (?8, ?9)
  AND e.key >= ?4 AND e.key < ?5
  AND (r.expires_at IS NULL OR r.expires_at > ?6)
ORDER BY e.key, e.id LIMIT ?7";
pub(crate) const INSERT_KEY_FULL: &str = "
INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response)
VALUES (?, ?, ?, ?, ?, ?, ?)";

pub(crate) const COUNTS: &str = "
SELECT (SELECT COUNT(*) FROM metrics WHERE ns = ?1),
       (SELECT COUNT(*) FROM events WHERE ns = ?1),
       (SELECT COUNT(*) FROM idempotency_keys WHERE ns = ?1),
       (SELECT COUNT(*) FROM records WHERE ns = ?1)";
pub(crate) const NAMESPACES: &str = "
SELECT ns FROM metrics UNION SELECT ns FROM events
UNION SELECT ns FROM idempotency_keys UNION SELECT ns FROM records
ORDER BY 1";
pub(crate) const CLEAR_METRICS: &str = "DELETE FROM metrics WHERE ns = ?";
pub(crate) const CLEAR_EVENTS: &str = "DELETE FROM events WHERE ns = ?";
pub(crate) const CLEAR_LOG_HEAD: &str = "DELETE FROM event_log_heads WHERE ns = ?";
pub(crate) const CLEAR_KEYS: &str = "DELETE FROM idempotency_keys WHERE ns = ?";
pub(crate) const CLEAR_INDEX_ENTRIES: &str = "DELETE FROM record_index_entries WHERE ns = ?";
pub(crate) const CLEAR_RECORDS: &str = "DELETE FROM records WHERE ns = ?";
/// Metrics before `?2`, except the components in the JSON array `?3`,
/// which have cut-offs of their own.
pub(crate) const PURGE_METRICS: &str = "
DELETE FROM metrics WHERE ns = ?1 AND at < ?2
  AND component NOT IN (SELECT value FROM json_each(?3))";
pub(crate) const PURGE_COMPONENT: &str =
    "DELETE FROM metrics WHERE ns = ?1 AND component = ?2 AND at < ?3";
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events WHERE ns = ? AND occurred_at < ?";
pub(crate) const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE ns = ? AND expires_at <= ?";
/// Records updated before `?2`, except the collections in the JSON array
/// `?3`, which have cut-offs of their own.
pub(crate) const PURGE_RECORDS: &str = "
DELETE FROM records WHERE ns = ?1 AND updated_at < ?2
  AND collection NOT IN (SELECT value FROM json_each(?3))";
pub(crate) const PURGE_COLLECTION: &str =
    "DELETE FROM records WHERE ns = ?1 AND collection = ?2 AND updated_at < ?3";
pub(crate) const PURGE_EXPIRED_RECORDS: &str =
    "DELETE FROM records WHERE ns = ? AND expires_at <= ?";
pub(crate) const STORAGE_BYTES: &str =
    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
pub(crate) const PING: &str = "SELECT 1";
pub(crate) const VACUUM_INTO: &str = "VACUUM INTO ?";
