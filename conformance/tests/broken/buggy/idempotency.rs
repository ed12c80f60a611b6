//! Planted bugs in idempotency keys: check-then-insert, everyone wins, lookups that claim.

use super::*;

#[async_trait]
impl IdempotencyStore for Buggy {
    async fn claim(&self, cx: &Cx, op: &ClaimKey<'_>) -> Result<Claim> {
        let ns = cx.ns();
        let s = op.scope;
        let k = op.key;
        let tok = op.token;
        let now = cx.now();
        let exp = op.expires_at;
        if self.bug == Bug::CheckThenInsert {
            let key = (ns.to_string(), s.to_string(), k.to_string());
            let taken = self.claims.lock().unwrap().contains(&key);
            if taken {
                return Ok(Claim::Exists {
                    state: KeyState::InProgress,
                    claimed_at: now,
                    expires_at: exp,
                });
            }
            self.claims.lock().unwrap().insert(key);
            return Ok(Claim::Acquired {
                token: tok.into(),
                expires_at: exp,
            });
        }
        let stored = || async { self.inner.get_key(cx, &GetKey::new(op.scope, op.key)).await };
        match self.bug {
            Bug::FingerprintIgnored => {
                return self.inner.claim(cx, &op.with_fingerprint(None)).await;
            }
            Bug::CompletedServesAnyRequest => {
                if let Some(e) = stored().await? {
                    if e.response.is_some() {
                        if let Some(live) = e.live_claim(now) {
                            return Ok(live);
                        }
                    }
                }
            }
            Bug::TakeoverKeepsFingerprint => {
                if let Some(e) = stored().await? {
                    if e.expires_at <= now && e.fingerprint.is_some() {
                        return self
                            .inner
                            .claim(cx, &op.with_fingerprint(e.fingerprint.as_deref()))
                            .await;
                    }
                }
            }
            _ => {}
        }
        let c = self.inner.claim(cx, op).await?;
        if self.bug == Bug::EveryoneWins {
            return Ok(Claim::Acquired {
                token: tok.into(),
                expires_at: exp,
            });
        }
        Ok(c)
    }
    async fn complete(&self, cx: &Cx, op: &CompleteKey<'_>) -> Result<()> {
        self.inner.complete(cx, op).await
    }
    async fn release(&self, cx: &Cx, op: &ReleaseKey<'_>) -> Result<()> {
        self.inner.release(cx, op).await
    }
    async fn extend(&self, cx: &Cx, op: &ExtendKey<'_>) -> Result<()> {
        match self.bug {
            Bug::ExtendDoesNothing => return Ok(()),
            Bug::ExtendsCompletedKeys => {
                let e = self
                    .inner
                    .get_key(cx, &GetKey::new(op.scope, op.key))
                    .await?;
                if let Some(e) = e {
                    if e.token == op.token && e.expires_at > cx.now() && e.response.is_some() {
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
        self.inner.extend(cx, op).await
    }
    async fn get_key(&self, cx: &Cx, op: &GetKey<'_>) -> Result<Option<IdempotencyEntry>> {
        let GetKey { scope, key, .. } = *op;
        if self.bug == Bug::LookupClaims {
            // A lookup written as "claim, then read": it creates the key.
            self.inner
                .claim(
                    &cx.at(Timestamp::MIN),
                    &ClaimKey::new(scope, key, "observer", Timestamp::MAX),
                )
                .await?;
        }
        self.inner.get_key(cx, op).await
    }

    async fn scan_keys(&self, cx: &Cx, op: &ScanKeys<'_>) -> Result<Vec<IdempotencyEntry>> {
        self.inner.scan_keys(cx, op).await
    }
}
