-- persistkit schema version 4 (SQLite): idempotency fingerprints.
--
-- A claim may carry the fingerprint of the request it is for (a hash of
-- its body, say). NULL for a claim without one, and for every key claimed
-- before this version: those keep answering claims without a fingerprint.
ALTER TABLE idempotency_keys ADD COLUMN fingerprint TEXT;
