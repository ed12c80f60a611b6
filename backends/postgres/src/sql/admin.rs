//! Administration: counts, clear, purge, size, backup: the statements, by name.

pub(crate) const INSERT_KEYS: &str = "
INSERT INTO {s}.idempotency_keys
  (ns, scope, key, token, claimed_at, expires_at, response, fingerprint)
SELECT $1, u.scope, u.key, u.token, u.claimed_at, u.expires_at, u.response::jsonb, u.fingerprint
FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[],
            $8::text[])
     AS u(scope, key, token, claimed_at, expires_at, response, fingerprint)";

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
