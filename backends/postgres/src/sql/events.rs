//! The event log: the statements, by name.

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
