//! The buggy store: a decorator that forwards every call, except where it
//! plants its bug, and the harnesses that hand it out.

use super::*;

mod admin;
mod batch;
mod events;
mod harness;
mod idempotency;
mod metrics;
mod records;

pub(crate) use harness::{outcome, BuggyHarness, BuggySqlite};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bug {
    /// `clear` empties every namespace, not just its own.
    ClearAllNamespaces,
    /// `namespaces` lists the namespaces of every table but the
    /// idempotency keys', as a UNION that forgot one would.
    NamespacesMissKeys,
    /// `get_key` claims the key before reading it: the read-only state
    /// lookup creates keys.
    LookupClaims,
    /// `list_events` returns ties in reverse id order.
    TieOrder,
    /// `append` never reports duplicates and stores them again.
    NoDedupe,
    /// `write_metrics` writes only the first half of a batch.
    PartialBatch,
    /// `claim` always acquires.
    EveryoneWins,
    /// A put without a TTL keeps the expiry an earlier write set, as an
    /// upsert that forgets the column would. No case of its own looks for
    /// it: the differential run must.
    ExpirySurvivesPut,
    /// A whole-range aggregate aligned to the epoch, as SQL written for
    /// epoch-aligned buckets computes it: a range across the epoch splits
    /// in two, and rows start at the epoch instead of `from`.
    WholeRangeFromEpoch,
    /// `claim` never stores or compares fingerprints, as a backend whose
    /// table lacks the column would behave.
    FingerprintIgnored,
    /// Fingerprints are compared while a key is in progress, but a
    /// completed key replays its response to any claimer.
    CompletedServesAnyRequest,
    /// Taking over an expired key keeps the old request's fingerprint
    /// (the upsert forgets to set the column).
    TakeoverKeepsFingerprint,
    /// `extend` reports success and changes nothing.
    ExtendDoesNothing,
    /// `extend` forgets `response IS NULL`: a completed key is "extended".
    ExtendsCompletedKeys,
    /// `list_components` sorts case-insensitively, like a default collation.
    LocaleSort,
    /// `import` commits namespace by namespace.
    ImportPerNamespace,
    /// `import` keeps ids and positions as floats.
    LossyPositions,
    /// `import` writes every namespace into `default`.
    ImportIntoDefault,
    /// A full log or a record at its last version wraps silently instead
    /// of refusing the write.
    SilentOverflow,
    /// A closed store answers "unavailable, retry".
    ClosedIsRetryable,
    /// Dedupe keys outlive the events that retention purged.
    DedupeSurvivesPurge,
    /// `read_log` and `list_records` ignore where to continue: the same
    /// page comes back for ever.
    EndlessPages,
    /// `list_records` reads one record more than its limit, to know whether
    /// another page follows, and forgets to drop it.
    PageOneTooLong,
    /// `list_records` orders ids case-insensitively, as a database's
    /// default collation on the id column would.
    IdLocaleOrder,
    /// `get` busy-loops without ever yielding to the runtime.
    NeverYields,
    /// `claim` checks whether the key is taken, then takes it: two critical
    /// sections with no await point between them.
    CheckThenInsert,
    /// `append` reserves a position, then writes the event: positions
    /// follow reservation order, not commit order.
    ReserveThenWrite,
    /// `write_metrics` commits point by point.
    PointByPoint,
    /// `append` commits event by event.
    AppendOneByOne,
    /// `import` writes item by item through the ordinary write calls.
    ImportItemByItem,
    /// Metric times go through float seconds.
    FloatSeconds,
    /// Metric components are cut to 200 bytes.
    TruncatedNames,
    /// Collections are listed case-insensitively, like a default collation.
    CollectionLocaleSort,
    /// Metric writes are acknowledged at once and committed a moment later,
    /// in the background.
    AckBeforeCommit,
    /// Declares `durable`, and its harness offers no way to reopen.
    DurableWithoutReopen,
    /// Refuses a newer schema with a message that names no versions.
    VaguelyNewerSchema,
    /// A newest-first listing continues from its cursor oldest first.
    NewestFirstPagesForward,
    /// Quantiles interpolate between neighbours (`percentile_cont`) instead
    /// of taking the nearest rank.
    InterpolatedQuantiles,
    /// A store opened "in another schema" lands on the same tables, as when
    /// a pooler drops the start-up setting that chose the schema.
    MergedSchemas,
    /// A conditional record write ignores the version it expects.
    VersionIgnored,
    /// `incr` reads, adds, and writes without a version check or a
    /// transaction: concurrent increments are lost.
    IncrReadThenWrite,
    /// Reads of a record ignore its expiry.
    ExpiredStillVisible,
    /// `count` counts expired records too.
    CountIncludesExpired,
    /// Purge leaves expired records behind.
    PurgeKeepsExpired,
    /// A unique index is created as a plain one.
    UniqueNotEnforced,
    /// `find` orders by id instead of by the index key.
    FindByIdOrder,
    /// `find` ignores the key range: every record of the index matches.
    FindIgnoresRange,
    /// `import` drops the archive's index declarations.
    ImportSkipsIndexes,
    /// A batch runs item by item through the ordinary calls: what came
    /// before a failing item stays written, and others see it meanwhile.
    BatchItemByItem,
    /// A batch refused by a unique index whose key an earlier write of the
    /// same batch holds says `Conflict` without the index and the holder
    /// (it looks the holder up outside the batch, and finds none).
    BatchForgetsUniqueHolder,
    /// Purge applies each domain's period to everything, ignoring the
    /// periods of components and collections.
    OneRetentionPeriod,
    /// A read cache that is not invalidated by `clear`.
    CacheForgetsClear,
    /// A read cache that is not invalidated by `delete`.
    CacheForgetsDelete,
    /// A read cache that stores what it read even when a write invalidated
    /// the key while it was reading.
    CacheStoresStaleReads,
    /// Declaring an index under a taken name is a silent no-op, whatever
    /// its fields (an `ON CONFLICT DO NOTHING` on the declaration).
    IndexNameOnly,
}

/// A decorator that forwards every call, except where it plants its bug.
#[derive(Debug)]
pub(crate) struct Buggy {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) bug: Bug,
    /// Every append result by dedupe key, for `DedupeSurvivesPurge`.
    pub(crate) seen: Mutex<HashMap<(String, Timestamp, String), Appended>>,
    /// Claimed keys, for `CheckThenInsert`.
    pub(crate) claims: Mutex<std::collections::HashSet<(String, String, String)>>,
    /// The log of `ReserveThenWrite`: the last position handed out, and
    /// the events written so far.
    pub(crate) reserved: std::sync::atomic::AtomicU64,
    pub(crate) log: Mutex<std::collections::BTreeMap<u64, Event>>,
    /// The read cache of the cache bugs.
    pub(crate) cache: Mutex<HashMap<(String, String, String), Option<Record>>>,
}

impl Buggy {
    pub(crate) fn closed_as_unavailable<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(e) if self.bug == Bug::ClosedIsRetryable && e.kind() == ErrorKind::Closed => {
                Err(Error::unavailable("store closed; retry"))
            }
            other => other,
        }
    }
}
