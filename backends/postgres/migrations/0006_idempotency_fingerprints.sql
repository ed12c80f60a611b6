-- persistkit schema version 6 (Postgres): idempotency fingerprints.
--
-- A claim may carry the fingerprint of the request it is for (a hash of
-- its body, say). NULL for a claim without one, and for every key claimed
-- before this version: those keep answering claims without a fingerprint.
-- Adding a nullable column without a default rewrites no rows.
ALTER TABLE idempotency_keys ADD COLUMN fingerprint text COLLATE "C";
