//! Idempotency keys: claims, completion, release and reads.

use async_trait::async_trait;
use persistkit_core::backend::*;
use persistkit_core::op::*;
use persistkit_core::validate::canonical_json;
use persistkit_core::*;
use rusqlite::{params, Connection};
use serde_json::Value;

use crate::sql::*;
use crate::store::*;

/// Complete the live claim `token` holds, on `c` (maybe in a transaction).
pub(crate) fn complete_on(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    response: &Value,
    now: Timestamp,
) -> Result<()> {
    let response = canonical_json(response);
    let done = exec(
        c,
        COMPLETE_KEY,
        params![ns, scope, key, token, response, now.as_micros()],
    )?;
    if done == 1 {
        return Ok(());
    }
    Err(explain_key_miss(
        c,
        ns,
        scope,
        key,
        token,
        now,
        "completed again",
    ))
}

pub(crate) fn get_key_in(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyEntry>> {
    first(c, GET_KEY, [ns, scope, key], key_row)
}

/// Why a complete or release changed nothing: the claim is missing,
/// expired, someone else's or already completed; or, if it looks live and
/// ours, it changed concurrently.
pub(crate) fn explain_key_miss(
    c: &Connection,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    now: Timestamp,
    action: &str,
) -> Error {
    match get_key_in(c, ns, scope, key) {
        Err(e) => e,
        Ok(entry) => match check_live_claim(entry.as_ref(), scope, key, token, now, action) {
            Err(e) => e,
            Ok(()) => Error::conflict(None, "the idempotency key changed concurrently; retry"),
        },
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
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
        self.pool
            .run_by(cx.deadline(), |c| {
                // The upsert is one statement, so exactly one concurrent
                // claimer's insert or takeover succeeds. If it reports
                // nothing and the key is gone by the time we look, a release
                // raced us: try again.
                for _ in 0..16 {
                    let won: Option<String> = first(
                        c,
                        CLAIM,
                        params![
                            ns,
                            scope,
                            key,
                            token,
                            now.as_micros(),
                            expires_at.as_micros(),
                            fingerprint
                        ],
                        |r| col(r, 0, "token"),
                    )?;
                    if won.as_deref() == Some(token) {
                        return Ok(Claim::Acquired {
                            token: token.into(),
                            expires_at,
                        });
                    }
                    if let Some(live) =
                        lost_claim(get_key_in(c, ns, scope, key)?.as_ref(), op, now)?
                    {
                        return Ok(live);
                    }
                }
                Err(Error::unavailable(
                    "idempotency claim kept racing with releases; retry",
                ))
            })
            .await
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
        self.pool
            .run_by(cx.deadline(), |c| {
                complete_on(c, ns, scope, key, token, response, now)
            })
            .await
    }

    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let ReleaseKey {
            scope, key, token, ..
        } = *op;
        self.pool
            .run_by(cx.deadline(), |c| {
                let done = exec(
                    c,
                    RELEASE_KEY,
                    params![ns, scope, key, token, now.as_micros()],
                )?;
                if done == 1 {
                    return Ok(());
                }
                Err(explain_key_miss(c, ns, scope, key, token, now, "released"))
            })
            .await
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
        self.pool
            .run_by(cx.deadline(), |c| {
                let done = exec(
                    c,
                    EXTEND_KEY,
                    params![
                        ns,
                        scope,
                        key,
                        token,
                        expires_at.as_micros(),
                        now.as_micros()
                    ],
                )?;
                if done == 1 {
                    return Ok(());
                }
                Err(explain_key_miss(c, ns, scope, key, token, now, "extended"))
            })
            .await
    }

    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let ns = cx.ns();
        let GetKey { scope, key, .. } = *op;
        self.pool
            .run_by(cx.deadline(), |c| get_key_in(c, ns, scope, key))
            .await
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        let ns = cx.ns();
        let ScanKeys { after, limit, .. } = *op;
        self.pool
            .run_by(cx.deadline(), |c| {
                all(
                    c,
                    SCAN_KEYS,
                    params![ns, after.map(|a| a.0), after.map(|a| a.1), limit as i64],
                    key_row,
                )
            })
            .await
    }
}
