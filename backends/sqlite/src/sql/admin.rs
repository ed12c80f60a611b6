//! Administration: counts, clear, purge, size, backup: the statements, by name.

pub(crate) const INSERT_KEY_FULL: &str = "
INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response, fingerprint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

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
