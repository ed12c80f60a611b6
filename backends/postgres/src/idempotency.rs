//! Idempotency keys: claims, completion, release and reads.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use serde_json::Value;
use sqlx::postgres::PgConnection;

use crate::error::map;
use crate::sql::*;
use crate::store::*;

impl PgStore {
    pub(crate) async fn read_key(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyEntry>> {
        let row = one!(read self, |c| self
            .q(GET_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *c)
            .await
            .map_err(map))?;
        row.as_ref().map(key_row).transpose()
    }

    pub(crate) async fn explain_key_miss(
        &self,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        now: Timestamp,
        action: &str,
    ) -> Error {
        match self.read_key(ns, scope, key).await {
            Err(e) => e,
            Ok(entry) => match check_live_claim(entry.as_ref(), scope, key, token, now, action) {
                Err(e) => e,
                Ok(()) => Error::conflict(None, "the idempotency key changed concurrently; retry"),
            },
        }
    }
}

impl PgStore {
    /// Complete the live claim `token` holds on `c` (a connection of its
    /// own, or a batch's transaction): whether it did. The one body both
    /// `complete` and `apply` use.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn complete_on(
        &self,
        c: &mut PgConnection,
        ns: &str,
        scope: &str,
        key: &str,
        token: &str,
        response: &Value,
        now: Timestamp,
    ) -> Result<bool> {
        let done = self
            .q(COMPLETE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(canonical_json(response))
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        let ns = cx.ns();
        let now = cx.now();
        let ClaimKey {
            scope,
            key,
            token,
            expires_at,
            fingerprint,
            ..
        } = *op;
        // INSERT … ON CONFLICT DO UPDATE … WHERE expired is atomic: concurrent
        // claimers queue on the row, and only an expired row is taken over.
        for _ in 0..16 {
            let won: Option<String> = one!(self, |c| self
                .qs(CLAIM)
                .bind(ns)
                .bind(scope)
                .bind(key)
                .bind(token)
                .bind(dt(now))
                .bind(dt(expires_at))
                .bind(fingerprint)
                .fetch_optional(&mut *c)
                .await
                .map_err(map))?;
            if won.as_deref() == Some(token) {
                return Ok(Claim::Acquired {
                    token: token.into(),
                    expires_at,
                });
            }
            if let Some(live) = lost_claim(self.read_key(ns, scope, key).await?.as_ref(), op, now)?
            {
                return Ok(live);
            }
        }
        Err(Error::unavailable(
            "idempotency claim kept racing with releases; retry",
        ))
    }

    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let CompleteKey {
            scope,
            key,
            token,
            response,
            ..
        } = *op;
        if one!(self, |c| self
            .complete_on(c, ns, scope, key, token, response, now)
            .await)?
        {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "completed again")
            .await)
    }

    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let ReleaseKey {
            scope, key, token, ..
        } = *op;
        let done = one!(self, |c| self
            .q(RELEASE_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "released")
            .await)
    }

    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let ExtendKey {
            scope,
            key,
            token,
            expires_at,
            ..
        } = *op;
        let done = one!(self, |c| self
            .q(EXTEND_KEY)
            .bind(ns)
            .bind(scope)
            .bind(key)
            .bind(token)
            .bind(dt(expires_at))
            .bind(dt(now))
            .execute(&mut *c)
            .await
            .map_err(map))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(self
            .explain_key_miss(ns, scope, key, token, now, "extended")
            .await)
    }

    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let ns = cx.ns();
        let GetKey { scope, key, .. } = *op;
        self.read_key(ns, scope, key).await
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        let ns = cx.ns();
        let ScanKeys { after, limit, .. } = *op;
        let rows = one!(read self, |c| self
            .q(SCAN_KEYS)
            .bind(ns)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(limit as i64)
            .fetch_all(&mut *c)
            .await
            .map_err(map))?;
        rows.iter().map(key_row).collect()
    }
}
