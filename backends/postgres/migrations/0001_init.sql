-- persistkit schema version 1 (Postgres), created in the store's schema
-- (default "persistkit"). Names use COLLATE "C" so they compare and sort
-- byte-wise on every server, whatever its default collation.

CREATE TABLE metrics (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- insertion sequence
    ns        text COLLATE "C" NOT NULL,
    at        timestamptz      NOT NULL,
    component text COLLATE "C" NOT NULL,
    name      text COLLATE "C" NOT NULL,
    kind      text             NOT NULL CHECK (kind IN ('counter', 'gauge')),
    value     double precision NOT NULL
);
CREATE INDEX metrics_by_time ON metrics (ns, at, component, name, seq);
CREATE INDEX metrics_by_series ON metrics (ns, component, name, at);

-- One row per namespace: the last log position handed out. An append locks
-- it (SELECT … FOR UPDATE) until commit, so positions follow commit order.
CREATE TABLE event_log_heads (
    ns            text COLLATE "C" PRIMARY KEY,
    last_position bigint NOT NULL
);

CREATE TABLE events (
    ns          text COLLATE "C" NOT NULL,
    position    bigint           NOT NULL,
    id          bigint           NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    occurred_at timestamptz      NOT NULL,
    digest      text             NOT NULL, -- hex SHA-256 of the canonical JSON of data
    data        jsonb            NOT NULL,
    PRIMARY KEY (ns, position)
);
CREATE UNIQUE INDEX events_dedupe ON events (ns, kind, occurred_at, digest);
CREATE UNIQUE INDEX events_by_time ON events (ns, occurred_at, id);

CREATE TABLE idempotency_keys (
    ns         text COLLATE "C" NOT NULL,
    scope      text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    token      text             NOT NULL,
    claimed_at timestamptz      NOT NULL,
    expires_at timestamptz      NOT NULL,
    response   jsonb,                     -- NULL while in progress
    PRIMARY KEY (ns, scope, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (ns, expires_at);

CREATE TABLE records (
    ns         text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    data       jsonb            NOT NULL,
    version    bigint           NOT NULL CHECK (version >= 1),
    created_at timestamptz      NOT NULL,
    updated_at timestamptz      NOT NULL,
    PRIMARY KEY (ns, collection, id)
);
CREATE INDEX records_by_update ON records (ns, updated_at);
