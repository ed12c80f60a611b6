//! Idempotency keys through a handle.

use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::idempotency::{Claim, KeyStatus};
use crate::time::Timestamp;
use crate::validate;
use crate::validate::{check_key, expiry};

use super::Handle;
use crate::op::*;

impl Handle {
    /// Claim `(scope, key)` for `ttl`.
    ///
    /// # Errors
    /// `InvalidInput` for bad names or a TTL of zero or over 100 years.
    pub async fn claim(&self, scope: &str, key: &str, ttl: Duration) -> Result<Claim> {
        self.claim_for(scope, key, None, ttl).await
    }

    /// Claim `(scope, key)` for `ttl`, for the request `fingerprint`
    /// identifies (a hash of its body, say; IDM-7). An acquired claim
    /// stores the fingerprint. While the key is live, a claim with the same
    /// fingerprint is told the key's state (and its response, once
    /// completed), as [`claim`](Handle::claim) is; a claim with another
    /// fingerprint, or with none, is `Conflict` and is served nothing.
    ///
    /// # Errors
    /// `Conflict` when the live key was claimed for another request;
    /// `InvalidInput` for bad names, a fingerprint that is not 1 to 255
    /// bytes without control characters, or a TTL of zero or over 100
    /// years.
    pub async fn claim_with_fingerprint(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        ttl: Duration,
    ) -> Result<Claim> {
        self.claim_for(scope, key, Some(fingerprint), ttl).await
    }

    async fn claim_for(
        &self,
        scope: &str,
        key: &str,
        fingerprint: Option<&str>,
        ttl: Duration,
    ) -> Result<Claim> {
        check_key(scope, key)?;
        if let Some(f) = fingerprint {
            validate::name("idempotency fingerprint", f)?;
        }
        let now = self.checked_now()?;
        let expires_at = expiry(now, ttl)?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.timed(
            "claim",
            self.store.claim(
                &self.cx(now),
                &ClaimKey::new(scope, key, &token, expires_at).with_fingerprint(fingerprint),
            ),
        )
        .await
    }

    /// Keep an in-progress claim live for `ttl` from now (IDM-8): the claim
    /// `token` holds then lapses at `now + ttl`, which is returned. The
    /// token, the claim time and the fingerprint stay. Long work calls it
    /// before the claim lapses, as a heartbeat.
    ///
    /// # Errors
    /// `Conflict` for a wrong token or a completed key; `NotFound` for an
    /// absent or expired key; `InvalidInput` for bad names or a TTL of zero
    /// or over 100 years.
    pub async fn extend_claim(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Timestamp> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        let expires_at = expiry(now, ttl)?;
        self.timed(
            "extend_claim",
            self.store.extend(
                &self.cx(now),
                &ExtendKey::new(scope, key, token, expires_at),
            ),
        )
        .await?;
        Ok(expires_at)
    }

    /// The state of `(scope, key)` now, read-only: `None` when the key is
    /// absent or expired, else whether it is in progress or completed (with
    /// its response) and its times. It never claims, takes over or extends
    /// a key, and shows no token.
    ///
    /// # Errors
    /// `InvalidInput` for a bad scope or key.
    pub async fn key_state(&self, scope: &str, key: &str) -> Result<Option<KeyStatus>> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        let entry = self
            .timed(
                "key_state",
                self.store.get_key(&self.cx(now), &GetKey::new(scope, key)),
            )
            .await?;
        Ok(entry.and_then(|e| e.status(now)))
    }

    /// Store the outcome of a claimed key, for replay.
    ///
    /// # Errors
    /// `Conflict` for a wrong token or a key already completed; `NotFound`
    /// for an absent or expired key; `InvalidInput` for a bad response.
    pub async fn complete(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
    ) -> Result<()> {
        check_key(scope, key)?;
        validate::json("response", response)?;
        let now = self.checked_now()?;
        self.timed(
            "complete",
            self.store.complete(
                &self.cx(now),
                &CompleteKey::new(scope, key, token, response),
            ),
        )
        .await
    }

    /// Give up a claim so a retry can acquire the key.
    ///
    /// # Errors
    /// `Conflict` for a wrong token or a completed key; `NotFound` for an
    /// absent or expired key.
    pub async fn release(&self, scope: &str, key: &str, token: &str) -> Result<()> {
        check_key(scope, key)?;
        let now = self.checked_now()?;
        self.timed(
            "release",
            self.store
                .release(&self.cx(now), &ReleaseKey::new(scope, key, token)),
        )
        .await
    }
}
