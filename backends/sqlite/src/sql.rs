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

pub(crate) const INSERT_RECORD_IF_ABSENT: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
ON CONFLICT (ns, collection, id) DO NOTHING
RETURNING collection, id, data, version, created_at, updated_at";
pub(crate) const UPSERT_RECORD: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
ON CONFLICT (ns, collection, id) DO UPDATE
  SET data = excluded.data, version = records.version + 1, updated_at = excluded.updated_at
  WHERE records.version < 9223372036854775807 -- the last version is never written again
RETURNING collection, id, data, version, created_at, updated_at";
pub(crate) const UPDATE_RECORD_AT_VERSION: &str = "
UPDATE records SET data = ?4, version = version + 1, updated_at = ?5
WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND version = ?6
  AND version < 9223372036854775807
RETURNING collection, id, data, version, created_at, updated_at";
pub(crate) const GET_RECORD: &str = "
SELECT collection, id, data, version, created_at, updated_at FROM records
WHERE ns = ? AND collection = ? AND id = ?";
pub(crate) const RECORD_VERSION: &str =
    "SELECT version FROM records WHERE ns = ? AND collection = ? AND id = ?";
pub(crate) const DELETE_RECORD: &str =
    "DELETE FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3 AND (?4 IS NULL OR version = ?4)";
pub(crate) const LIST_RECORDS: &str = "
SELECT collection, id, data, version, created_at, updated_at FROM records
WHERE ns = ?1 AND collection = ?2 AND (?3 IS NULL OR id > ?3)
ORDER BY id LIMIT ?4";
pub(crate) const LIST_COLLECTIONS: &str =
    "SELECT DISTINCT collection FROM records WHERE ns = ? ORDER BY collection";
pub(crate) const INSERT_RECORD_FULL: &str = "
INSERT INTO records (ns, collection, id, data, version, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)";
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
pub(crate) const CLEAR_RECORDS: &str = "DELETE FROM records WHERE ns = ?";
pub(crate) const PURGE_METRICS: &str = "DELETE FROM metrics WHERE ns = ? AND at < ?";
pub(crate) const PURGE_EVENTS: &str = "DELETE FROM events WHERE ns = ? AND occurred_at < ?";
pub(crate) const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE ns = ? AND expires_at <= ?";
pub(crate) const PURGE_RECORDS: &str = "DELETE FROM records WHERE ns = ? AND updated_at < ?";
pub(crate) const STORAGE_BYTES: &str =
    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
pub(crate) const PING: &str = "SELECT 1";
pub(crate) const VACUUM_INTO: &str = "VACUUM INTO ?";
