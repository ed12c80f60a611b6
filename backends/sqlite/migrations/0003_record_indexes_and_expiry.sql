-- persistkit schema version 3 (SQLite): record expiry and declared indexes.
--
-- Index keys are computed by persistkit_index_key(data, fields), a function
-- the store registers on every connection it opens (the same Rust code that
-- plans queries), so every write path keeps the entries in step through
-- the triggers below, in the writing statement's own transaction. A
-- connection without the function cannot write records of an indexed
-- collection: it fails instead of leaving the index behind.

ALTER TABLE records ADD COLUMN expires_at INTEGER;
CREATE INDEX records_by_expiry ON records (ns, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE record_indexes (
    ns         TEXT    NOT NULL,
    collection TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    fields     TEXT    NOT NULL,  -- JSON array of JSON pointers
    is_unique  INTEGER NOT NULL,
    PRIMARY KEY (ns, collection, name)
) WITHOUT ROWID;

CREATE TABLE record_index_entries (
    ns         TEXT    NOT NULL,
    collection TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    id         TEXT    NOT NULL,
    is_unique  INTEGER NOT NULL,
    PRIMARY KEY (ns, collection, name, key, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX record_index_unique
    ON record_index_entries (ns, collection, name, key) WHERE is_unique;
CREATE INDEX record_index_entries_by_record ON record_index_entries (ns, collection, id);

CREATE TRIGGER records_indexed_on_insert AFTER INSERT ON records
WHEN EXISTS (SELECT 1 FROM record_indexes i WHERE i.ns = NEW.ns AND i.collection = NEW.collection)
BEGIN
    INSERT INTO record_index_entries (ns, collection, name, key, id, is_unique)
    SELECT NEW.ns, NEW.collection, k.name, k.key, NEW.id, k.is_unique
    FROM (SELECT i.name, i.is_unique, persistkit_index_key(NEW.data, i.fields) AS key
          FROM record_indexes i WHERE i.ns = NEW.ns AND i.collection = NEW.collection) k
    WHERE k.key IS NOT NULL;
END;

CREATE TRIGGER records_indexed_on_update AFTER UPDATE OF data ON records
WHEN EXISTS (SELECT 1 FROM record_indexes i WHERE i.ns = NEW.ns AND i.collection = NEW.collection)
BEGIN
    DELETE FROM record_index_entries
    WHERE ns = OLD.ns AND collection = OLD.collection AND id = OLD.id;
    INSERT INTO record_index_entries (ns, collection, name, key, id, is_unique)
    SELECT NEW.ns, NEW.collection, k.name, k.key, NEW.id, k.is_unique
    FROM (SELECT i.name, i.is_unique, persistkit_index_key(NEW.data, i.fields) AS key
          FROM record_indexes i WHERE i.ns = NEW.ns AND i.collection = NEW.collection) k
    WHERE k.key IS NOT NULL;
END;

CREATE TRIGGER records_unindexed_on_delete AFTER DELETE ON records
WHEN EXISTS (SELECT 1 FROM record_indexes i WHERE i.ns = OLD.ns AND i.collection = OLD.collection)
BEGIN
    DELETE FROM record_index_entries
    WHERE ns = OLD.ns AND collection = OLD.collection AND id = OLD.id;
END;
