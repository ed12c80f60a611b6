//! The event log: the statements, by name.

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
