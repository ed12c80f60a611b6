//! Idempotency keys: the statements, by name.

pub(crate) const CLAIM: &str = "
INSERT INTO idempotency_keys (ns, scope, key, token, claimed_at, expires_at, response, fingerprint)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
ON CONFLICT (ns, scope, key) DO UPDATE
  SET token = excluded.token, claimed_at = excluded.claimed_at,
      expires_at = excluded.expires_at, response = NULL, fingerprint = excluded.fingerprint
  WHERE idempotency_keys.expires_at <= excluded.claimed_at
RETURNING token";
pub(crate) const GET_KEY: &str = "
SELECT scope, key, token, claimed_at, expires_at, response, fingerprint FROM idempotency_keys
WHERE ns = ? AND scope = ? AND key = ?";
pub(crate) const COMPLETE_KEY: &str = "
UPDATE idempotency_keys SET response = ?5
WHERE ns = ?1 AND scope = ?2 AND key = ?3 AND token = ?4 AND expires_at > ?6 AND response IS NULL";
pub(crate) const RELEASE_KEY: &str = "
DELETE FROM idempotency_keys
WHERE ns = ?1 AND scope = ?2 AND key = ?3 AND token = ?4 AND expires_at > ?5 AND response IS NULL";
pub(crate) const SCAN_KEYS: &str = "
SELECT scope, key, token, claimed_at, expires_at, response, fingerprint FROM idempotency_keys
WHERE ns = ?1 AND (?2 IS NULL OR (scope, key) > (?2, ?3))
ORDER BY scope, key LIMIT ?4";
pub(crate) const EXTEND_KEY: &str = "
UPDATE idempotency_keys SET expires_at = ?5
WHERE ns = ?1 AND scope = ?2 AND key = ?3 AND token = ?4 AND expires_at > ?6 AND response IS NULL";
