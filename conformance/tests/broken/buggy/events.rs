//! Planted bugs in the event log: tie order, dedupe, reserve-then-write, endless pages, newest-first paging.

use super::*;

#[async_trait]
impl EventStore for Buggy {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let events = op.events;
        if self.bug == Bug::NoDedupe {
            // Salt the digest so nothing ever matches.
            let salted: Vec<PreparedEvent> = events
                .iter()
                .map(|e| PreparedEvent {
                    digest: format!("{}-{}", e.digest, uuid()),
                    ..e.clone()
                })
                .collect();
            return self.inner.append(cx, &Append::new(&salted)).await;
        }
        if self.bug == Bug::ReserveThenWrite {
            let mut out = Vec::new();
            for e in events {
                let position = self
                    .reserved
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1;
                let event = Event {
                    id: position,
                    position,
                    kind: e.kind.clone(),
                    occurred_at: e.occurred_at,
                    data: e.data.clone(),
                };
                self.log.lock().unwrap().insert(position, event);
                out.push(Appended {
                    id: position,
                    position,
                    duplicate: false,
                });
            }
            return Ok(out);
        }
        if self.bug == Bug::AppendOneByOne {
            let mut out = Vec::new();
            for (i, e) in events.iter().enumerate() {
                out.extend(
                    self.inner
                        .append(cx, &Append::new(std::slice::from_ref(e)))
                        .await?,
                );
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            return Ok(out);
        }
        if self.bug == Bug::DedupeSurvivesPurge && events.len() == 1 {
            let e = &events[0];
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(a) = self.seen.lock().unwrap().get(&key) {
                return Ok(vec![Appended {
                    duplicate: true,
                    ..*a
                }]);
            }
            let out = self.inner.append(cx, op).await?;
            self.seen.lock().unwrap().insert(key, out[0]);
            return Ok(out);
        }
        match self.inner.append(cx, op).await {
            Err(e) if self.bug == Bug::SilentOverflow && e.kind() == ErrorKind::InvalidInput => {
                Ok(events
                    .iter()
                    .map(|_| Appended {
                        id: 0,
                        position: 0,
                        duplicate: false,
                    })
                    .collect())
            }
            other => self.closed_as_unavailable(other),
        }
    }
    async fn list_events(&self, cx: &Cx, q: &EventQuery) -> Result<Vec<Event>> {
        if self.bug == Bug::NewestFirstPagesForward && q.newest_first && q.after.is_some() {
            let forward = EventQuery {
                newest_first: false,
                ..q.clone()
            };
            return self.inner.list_events(cx, &forward).await;
        }
        let mut v = self.inner.list_events(cx, q).await?;
        if self.bug == Bug::TieOrder {
            v.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(b.id.cmp(&a.id)));
        }
        Ok(v)
    }
    async fn read_log(&self, cx: &Cx, op: &ReadLog) -> Result<Vec<Event>> {
        let ReadLog { after, limit, .. } = *op;
        if self.bug == Bug::ReserveThenWrite {
            let log = self.log.lock().unwrap();
            return Ok(log
                .range(after + 1..)
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect());
        }
        let after = if self.bug == Bug::EndlessPages {
            0
        } else {
            after
        };
        self.inner.read_log(cx, &ReadLog::new(after, limit)).await
    }
}

fn uuid() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::SeqCst))
}
