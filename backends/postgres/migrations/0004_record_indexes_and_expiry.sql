-- persistkit schema version 4 (Postgres): record expiry and declared indexes.
--
-- Each record's key in each index of its collection is computed here, in
-- the database, by persistkit_index_key: the same bytes as the Rust code
-- that plans queries computes (type tag, then an order-preserving value),
-- so byte-wise order on bytea is the index order on every backend. A
-- trigger keeps the entries in step with every write to records, in the
-- writing statement's transaction; a partial unique index enforces unique
-- indexes, so two transactions racing for one key cannot both win.
--
-- Declaring an index takes an exclusive transaction-level advisory lock on
-- (namespace, collection), and every record write takes it shared first,
-- so a write is either seen by the declaration's backfill or sees the
-- declaration itself: no record is left out of the index.
--
-- The functions name their tables and each other with the schema, written
-- in when this migration runs (current_schema() is the store's schema
-- here), rather than with `SET search_path`: a function with a SET clause
-- costs a GUC save and restore per call, about 25 µs on every record write.

ALTER TABLE records ADD COLUMN expires_at timestamptz;
CREATE INDEX records_by_expiry ON records (ns, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE record_indexes (
    ns         text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    fields     text[]           NOT NULL, -- JSON pointers
    paths      jsonb            NOT NULL, -- the pointers' tokens, for #>
    is_unique  boolean          NOT NULL,
    PRIMARY KEY (ns, collection, name)
);

CREATE TABLE record_index_entries (
    ns         text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    key        bytea            NOT NULL,
    id         text COLLATE "C" NOT NULL,
    is_unique  boolean          NOT NULL,
    PRIMARY KEY (ns, collection, name, key, id)
);
CREATE UNIQUE INDEX record_index_unique
    ON record_index_entries (ns, collection, name, key) WHERE is_unique;
CREATE INDEX record_index_entries_by_record ON record_index_entries (ns, collection, id);

-- The functions, created with the store's schema written in.
DO $migration$
DECLARE
    s text := quote_ident(current_schema());
BEGIN
    -- One scalar's encoding; NULL for an array or an object.
    EXECUTE format($f$
CREATE FUNCTION %1$s.persistkit_index_value(v jsonb) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    f float8;
    b bytea;
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'null' THEN
        RETURN '\x01'::bytea;
    WHEN 'boolean' THEN
        IF v = 'true'::jsonb THEN RETURN '\x03'::bytea; END IF;
        RETURN '\x02'::bytea;
    WHEN 'number' THEN
        f := (v::float8) + 0.0::float8; -- -0 becomes 0
        b := float8send(f);
        IF f < 0 THEN
            FOR i IN 0 .. 7 LOOP
                b := set_byte(b, i, 255 - get_byte(b, i));
            END LOOP;
        ELSE
            b := set_byte(b, 0, get_byte(b, 0) # 128);
        END IF;
        RETURN '\x04'::bytea || b;
    WHEN 'string' THEN
        RETURN '\x05'::bytea || convert_to(v #>> '{}', 'UTF8') || '\x00'::bytea;
    ELSE
        RETURN NULL;
    END CASE;
END;
$$ $f$, s);

    -- A record's key for an index's paths; NULL when it is not in the index.
    EXECUTE format($f$
CREATE FUNCTION %1$s.persistkit_index_key(data jsonb, paths jsonb) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    k bytea := '\x'::bytea;
    part bytea;
    p jsonb;
BEGIN
    FOR p IN SELECT value FROM jsonb_array_elements(paths) LOOP
        part := %1$s.persistkit_index_value(data #> ARRAY(SELECT jsonb_array_elements_text(p)));
        IF part IS NULL THEN
            RETURN NULL;
        END IF;
        k := k || part;
    END LOOP;
    RETURN k;
END;
$$ $f$, s);

    -- The lock key of a (namespace, collection) for index declarations.
    -- The trigger computes the same expression inline: a call of an SQL
    -- function from PL/pgSQL is planned again on every call.
    EXECUTE format($f$
CREATE FUNCTION %1$s.persistkit_index_lock(p_ns text, p_collection text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended('persistkit-index:' || length(p_ns) || ':' || p_ns || p_collection, 0) $$
$f$, s);

    EXECUTE format($f$
CREATE FUNCTION %1$s.persistkit_index_record() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    r_ns text;
    r_collection text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r_ns := OLD.ns; r_collection := OLD.collection;
    ELSE
        r_ns := NEW.ns; r_collection := NEW.collection;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(
        hashtextextended('persistkit-index:' || length(r_ns) || ':' || r_ns || r_collection, 0));
    IF NOT EXISTS (SELECT 1 FROM %1$s.record_indexes i
                   WHERE i.ns = r_ns AND i.collection = r_collection) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM %1$s.record_index_entries
        WHERE ns = OLD.ns AND collection = OLD.collection AND id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO %1$s.record_index_entries (ns, collection, name, key, id, is_unique)
        SELECT NEW.ns, NEW.collection, i.name, k.key, NEW.id, i.is_unique
        FROM %1$s.record_indexes i
        CROSS JOIN LATERAL (SELECT %1$s.persistkit_index_key(NEW.data, i.paths) AS key) k
        WHERE i.ns = NEW.ns AND i.collection = NEW.collection AND k.key IS NOT NULL;
    END IF;
    RETURN NULL;
END;
$$ $f$, s);
END;
$migration$;

CREATE TRIGGER records_indexed AFTER INSERT OR UPDATE OR DELETE ON records
FOR EACH ROW EXECUTE FUNCTION persistkit_index_record();
