-- persistkit schema version 1 (SQLite).
-- Times are INTEGER microseconds since the Unix epoch, UTC.
-- Text compares with the default BINARY collation: byte-wise, as the contract asks.
-- JSON is stored as canonical text (keys sorted, no whitespace).

CREATE TABLE metrics (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion sequence
    ns        TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    component TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('counter', 'gauge')),
    value     REAL    NOT NULL
);
CREATE INDEX metrics_by_time ON metrics (ns, at, component, name, seq);
CREATE INDEX metrics_by_series ON metrics (ns, component, name, at);

-- One row per namespace: the last log position handed out. Appends update it
-- inside their transaction, so positions follow commit order.
CREATE TABLE event_log_heads (
    ns            TEXT    PRIMARY KEY,
    last_position INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    ns          TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL,
    digest      TEXT    NOT NULL, -- hex SHA-256 of the canonical JSON of data
    data        TEXT    NOT NULL,
    PRIMARY KEY (ns, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_dedupe ON events (ns, kind, occurred_at, digest);
CREATE UNIQUE INDEX events_by_time ON events (ns, occurred_at, id);

CREATE TABLE idempotency_keys (
    ns         TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    response   TEXT,             -- NULL while in progress
    PRIMARY KEY (ns, scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (ns, expires_at);

CREATE TABLE records (
    ns         TEXT    NOT NULL,
    collection TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (ns, collection, id)
) WITHOUT ROWID;
CREATE INDEX records_by_update ON records (ns, updated_at);
