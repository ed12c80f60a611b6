//! Idempotency keys.

use async_trait::async_trait;
use persistkit_core::backend::{check_live_claim, lost_claim};
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::{Claim, IdempotencyEntry, IdempotencyStore, Result, Timestamp};
use serde_json::Value;
use std::ops::Bound;

use crate::state::*;
use crate::store::*;

#[async_trait]
impl IdempotencyStore for MemoryStore {
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
        let mut s = self.lock()?;
        let keys = s.keys.entry(ns.to_string()).or_default();
        let k = (scope.to_string(), key.to_string());
        if let Some(live) = lost_claim(keys.get(&k), op, now)? {
            return Ok(live);
        }
        keys.insert(
            k,
            IdempotencyEntry {
                scope: scope.into(),
                key: key.into(),
                token: token.into(),
                claimed_at: now,
                expires_at,
                response: None,
                fingerprint: fingerprint.map(str::to_string),
            },
        );
        Ok(Claim::Acquired {
            token: token.into(),
            expires_at,
        })
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
        let mut s = self.lock()?;
        complete_in(
            s.keys.entry(ns.to_string()).or_default(),
            scope,
            key,
            token,
            response,
            now,
        )
    }

    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        let ns = cx.ns();
        let now = cx.now();
        let ReleaseKey {
            scope, key, token, ..
        } = *op;
        let mut s = self.lock()?;
        claimed(&mut s, ns, scope, key, token, now, "released")?;
        s.keys
            .get_mut(ns)
            .expect("found above")
            .remove(&(scope.to_string(), key.to_string()));
        Ok(())
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
        let mut s = self.lock()?;
        claimed(&mut s, ns, scope, key, token, now, "extended")?.expires_at = expires_at;
        Ok(())
    }

    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let ns = cx.ns();
        let GetKey { scope, key, .. } = *op;
        let s = self.lock()?;
        Ok(s.keys
            .get(ns)
            .and_then(|keys| keys.get(&(scope.to_string(), key.to_string())))
            .cloned())
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        let ns = cx.ns();
        let ScanKeys { after, limit, .. } = *op;
        let s = self.lock()?;
        let Some(keys) = s.keys.get(ns) else {
            return Ok(Vec::new());
        };
        let lower = match after {
            Some((sc, k)) => Bound::Excluded((sc.to_string(), k.to_string())),
            None => Bound::Unbounded,
        };
        Ok(keys
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// Complete the live claim `token` holds on `(scope, key)` in `keys`.
pub(crate) fn complete_in(
    keys: &mut Keys,
    scope: &str,
    key: &str,
    token: &str,
    response: &Value,
    now: Timestamp,
) -> Result<()> {
    let entry = keys.get_mut(&(scope.to_string(), key.to_string()));
    check_live_claim(entry.as_deref(), scope, key, token, now, "completed again")?;
    entry.expect("checked above").response = Some(response.clone());
    Ok(())
}

/// The live claim `token` holds on `(scope, key)`, or why there is none.
pub(crate) fn claimed<'a>(
    s: &'a mut State,
    ns: &str,
    scope: &str,
    key: &str,
    token: &str,
    now: Timestamp,
    action: &str,
) -> Result<&'a mut IdempotencyEntry> {
    let entry = s
        .keys
        .get_mut(ns)
        .and_then(|m| m.get_mut(&(scope.to_string(), key.to_string())));
    check_live_claim(entry.as_deref(), scope, key, token, now, action)?;
    Ok(entry.expect("checked above"))
}
