//! The group-commit layer: concurrent appends to one namespace share one
//! transaction.
//!
//! Each namespace has a queue and at most one writer task. An append joins
//! the queue; the writer takes everything queued (up to
//! [`GroupCommit::MAX_EVENTS`] events), appends it in one call to the store
//! beneath, and hands each caller its own slice of the result. So
//! throughput grows with concurrency while every rule holds:
//!
//! - positions follow commit order (one call, one transaction, in queue
//!   order);
//! - an event equal to one earlier in the same group is a duplicate of it,
//!   as it would be had the appends run one after the other;
//! - each caller's batch is all-or-nothing: when the combined call fails,
//!   the writer runs each caller's batch on its own, so each caller gets
//!   its own result or error.
//!
//! A caller that stops waiting (a handle timeout) does not take its batch
//! back: it is appended with the group, as a database call whose answer
//! was lost may have committed.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;

use persistkit_core::error::{Error, Result};
use persistkit_core::events::{Appended, PreparedEvent};
use persistkit_core::layer::{
    ForwardAdmin, ForwardBatches, ForwardEvents, ForwardIdempotency, ForwardMetrics,
    ForwardRecords, Layer,
};
use persistkit_core::op::*;
use persistkit_core::Cx;
use persistkit_core::Store;

type Reply = oneshot::Sender<Result<Vec<Appended>>>;

struct Request {
    events: Vec<PreparedEvent>,
    reply: Reply,
    /// The caller's own call context: its deadline bounds the write.
    cx: Cx,
}

/// The context a group is written under: the most patient caller's (a
/// caller with no deadline, else the latest deadline). A caller that gives
/// up sooner stops waiting for its answer by itself.
fn group_cx(group: &[Request]) -> Option<Cx> {
    group
        .iter()
        .max_by_key(|r| match r.cx.deadline() {
            None => (1, None),
            Some(d) => (0, Some(d)),
        })
        .map(|r| r.cx.clone())
}

#[derive(Default)]
struct Queue {
    pending: Vec<Request>,
    writing: bool,
}

/// A layer that commits concurrent appends to one namespace together.
pub struct GroupCommit {
    inner: Arc<dyn Store>,
    queues: Mutex<HashMap<String, Arc<Mutex<Queue>>>>,
}

impl fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Most events one combined append carries (a caller's batch is never
    /// split, so one larger batch goes alone).
    pub const MAX_EVENTS: usize = 2_000;

    /// Group the appends of `inner`.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            inner,
            queues: Mutex::new(HashMap::new()),
        })
    }

    fn queue(&self, ns: &str) -> Arc<Mutex<Queue>> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(ns.to_string()).or_default().clone()
    }
}

/// Resets the queue if the writer ends early (a panic in the store): the
/// waiting callers get an error instead of waiting for ever, and the next
/// append starts a new writer.
struct WriterGuard {
    queue: Arc<Mutex<Queue>>,
    done: bool,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.writing = false;
        for r in q.pending.drain(..) {
            let _ = r.reply.send(Err(Error::internal(
                "the group-commit writer stopped before this append ran",
            )));
        }
    }
}

/// The writer of one namespace: appends what is queued, group by group,
/// until the queue is empty.
async fn write(inner: Arc<dyn Store>, queue: Arc<Mutex<Queue>>) {
    let mut guard = WriterGuard {
        queue: queue.clone(),
        done: false,
    };
    loop {
        // Let the callers just answered (and any other ready task) queue
        // their next appends first: a writer that went straight on would
        // commit groups of one while they wait in the run queue.
        tokio::task::yield_now().await;
        let group: Vec<Request> = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.pending.is_empty() {
                q.writing = false;
                guard.done = true;
                return;
            }
            let mut n = 0;
            let take = q
                .pending
                .iter()
                .take_while(|r| {
                    let first = n == 0;
                    n += r.events.len();
                    first || n <= GroupCommit::MAX_EVENTS
                })
                .count();
            q.pending.drain(..take).collect()
        };
        // Each group under its callers' context, not the first caller's:
        // a writer kept busy outlives any one caller's deadline.
        let Some(cx) = group_cx(&group) else {
            continue;
        };
        if let [one] = group.as_slice() {
            let r = inner.append(&cx, &Append::new(&one.events)).await;
            let one = group.into_iter().next().expect("one request");
            let _ = one.reply.send(r);
            continue;
        }
        // The events move into one batch; each caller's share is a range
        // of it.
        let mut all: Vec<PreparedEvent> = Vec::new();
        let mut replies = Vec::with_capacity(group.len());
        for r in group {
            let start = all.len();
            all.extend(r.events);
            replies.push((start..all.len(), r.reply));
        }
        match inner.append(&cx, &Append::new(&all)).await {
            Ok(results) if results.len() == all.len() => {
                let mut results = results.into_iter();
                for (range, reply) in replies {
                    let mine: Vec<Appended> = results.by_ref().take(range.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            // The group failed as a whole (one batch's fault, or the
            // database's): each batch on its own, so each caller gets its
            // own answer.
            _ => {
                for (range, reply) in replies {
                    let result = inner.append(&cx, &Append::new(&all[range])).await;
                    let _ = reply.send(result);
                }
            }
        }
    }
}

#[async_trait]
impl ForwardEvents for GroupCommit {
    async fn append(&self, cx: &Cx, op: &Append<'_>) -> Result<Vec<Appended>> {
        let ns = cx.ns();
        let events = op.events;
        let queue = self.queue(ns);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            q.pending.push(Request {
                events: events.to_vec(),
                reply,
                cx: cx.clone(),
            });
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            tokio::spawn(write(self.inner.clone(), queue));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::internal(
                "the group-commit writer stopped before this append ran",
            ))
        })
    }
}

impl Layer for GroupCommit {
    fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

impl ForwardMetrics for GroupCommit {}
impl ForwardIdempotency for GroupCommit {}
impl ForwardRecords for GroupCommit {}
impl ForwardBatches for GroupCommit {}
impl ForwardAdmin for GroupCommit {}
