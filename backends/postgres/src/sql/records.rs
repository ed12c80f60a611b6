//! Records, their indexes and `find`: the statements, by name.

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
/// The live record, locked until the transaction ends (incr).
pub(crate) const GET_RECORD_FOR_UPDATE: &str = "
SELECT collection, id, data::text, version, created_at, updated_at, expires_at FROM {s}.records
WHERE ns = $1 AND collection = $2 AND id = $3 AND (expires_at IS NULL OR expires_at > $4)
FOR UPDATE";
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
