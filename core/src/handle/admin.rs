//! Administration through a handle, and the admin scope.

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Handle;
use crate::admin::archive::{self, ExportScope, ExportSummary, ImportSummary};
use crate::admin::health;
use crate::admin::{
    Counts, HealthReport, PurgeCutoffs, PurgeReport, RetentionOverrides, RetentionPolicy,
    SchemaVersions, StoreCounts,
};
use crate::cx::Cx;
use crate::deadline::within;
use crate::error::{Error, Result};
use crate::limits::DEFAULT_TIMEOUT;
use crate::store::Store;
use crate::time::Timestamp;
use crate::validate;

impl Handle {
    /// Apply pending migrations (a no-op when there are none).
    ///
    /// # Errors
    /// `Schema` when the database is newer than the code or a migration fails.
    pub async fn migrate(&self) -> Result<SchemaVersions> {
        self.timed("migrate", self.store.migrate()).await
    }

    /// Row counts per domain in this namespace.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn counts(&self) -> Result<Counts> {
        self.timed("counts", self.store.counts(&self.cx(self.now())))
            .await
    }

    /// A health report. Never fails: a down database is `unhealthy` with the
    /// error.
    pub async fn health(&self) -> HealthReport {
        let cx = self.cx(self.now());
        health::health_within(
            self.store.as_ref(),
            &cx,
            health::Scope::Namespace,
            self.timeout,
        )
        .await
    }

    /// Delete what `policy` names, expired idempotency keys and expired
    /// records, in this namespace only.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn purge(&self, policy: &RetentionPolicy) -> Result<PurgeReport> {
        self.purge_with(policy, &RetentionOverrides::default())
            .await
    }

    /// [`purge`](Self::purge), with periods of their own for some metric
    /// components and collections (`overrides`), which replace the
    /// policy's period for them.
    ///
    /// # Errors
    /// `InvalidInput` for a bad component or collection name (nothing is
    /// purged); `Unavailable` when the database cannot be reached.
    pub async fn purge_with(
        &self,
        policy: &RetentionPolicy,
        overrides: &RetentionOverrides,
    ) -> Result<PurgeReport> {
        for c in overrides.metrics_by_component.keys() {
            validate::name("component", c)?;
        }
        for c in overrides.records_by_collection.keys() {
            validate::name("collection", c)?;
        }
        let now = self.checked_now()?;
        let before = |d: &Duration| now.saturating_sub(*d);
        let cutoffs = PurgeCutoffs {
            now,
            metrics_before: policy.metrics_older_than.as_ref().map(before),
            events_before: policy.events_older_than.as_ref().map(before),
            records_before: policy.records_not_updated_for.as_ref().map(before),
            metrics_by_component: overrides
                .metrics_by_component
                .iter()
                .map(|(c, d)| (c.clone(), before(d)))
                .collect(),
            records_by_collection: overrides
                .records_by_collection
                .iter()
                .map(|(c, d)| (c.clone(), before(d)))
                .collect(),
        };
        self.timed("purge", self.store.purge(&self.cx(self.now()), &cutoffs))
            .await
    }

    /// Empty this handle's namespace: every metric point, event, idempotency
    /// key and record in it, at once (one transaction). Other namespaces are
    /// untouched. The event log starts again at position 1 and dedupe
    /// forgets the deleted events, so pollers of this namespace must start
    /// over. For test resets, and before importing an archive over a
    /// namespace. Returns how many of each were deleted.
    ///
    /// # Errors
    /// As any write: `Unavailable` when the store cannot be reached (then
    /// nothing was deleted).
    pub async fn clear(&self) -> Result<Counts> {
        self.timed("clear", self.store.clear(&self.cx(self.now())))
            .await
    }

    /// Write the portable archive of this namespace to `out`. `progress` is
    /// called with the running item count.
    ///
    /// # Errors
    /// `InvalidInput` for [`ExportScope::All`]: a handle never sees other
    /// namespaces (use [`Handle::admin`]); `Internal` when `out` fails to
    /// write.
    pub async fn export(
        &self,
        scope: ExportScope,
        out: &mut (dyn Write + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ExportSummary> {
        if scope == ExportScope::All {
            return Err(Error::invalid(format!(
                "a handle on namespace {:?} exports only that namespace; \
                 use Handle::admin() to export every namespace",
                self.ns
            )));
        }
        archive::export(
            self.store.as_ref(),
            self.timeout,
            std::slice::from_ref(&self.ns.to_string()),
            out,
            progress,
        )
        .await
    }

    /// Load a portable archive of this handle's namespace into it, while it
    /// is empty. The whole archive is read and checked before anything is
    /// written, and it lands all-or-nothing.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed archive (with the line number) or one
    /// that holds another namespace (use [`Handle::admin`] for those);
    /// `Conflict` when the namespace already holds data; `Unavailable` when
    /// the backend makes no progress within the handle's timeout.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ImportSummary> {
        let parsed = archive::parse(input)?;
        if let Some(other) = parsed.iter().find(|ns| *ns.name != *self.ns) {
            return Err(Error::invalid(format!(
                "the archive holds namespace {:?}; a handle on namespace {:?} imports only into \
                 its own namespace (use Handle::admin() to import several); nothing was imported",
                other.name, self.ns
            )));
        }
        archive::import(self.store.as_ref(), &parsed, self.timeout, progress).await
    }

    /// Native backup to `dest`, where the backend declares one.
    ///
    /// # Errors
    /// `Unsupported` when the backend has none; `InvalidInput` when `dest`
    /// exists.
    pub async fn backup(&self, dest: &Path) -> Result<()> {
        if !self.capabilities().native_backup {
            return Err(Error::unsupported(format!(
                "{} does not declare native_backup",
                self.store.backend_name()
            )));
        }
        if dest.exists() {
            return Err(Error::invalid(format!(
                "backup destination {} already exists",
                dest.display()
            )));
        }
        self.store.backup(dest).await
    }
}

/// Operations over every namespace of a store: listing namespaces, and
/// exporting or importing all of them at once. Get one with
/// [`Handle::admin`] or [`AdminHandle::new`]; it is the only way to reach
/// beyond one namespace.
#[derive(Clone)]
pub struct AdminHandle {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for AdminHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminHandle")
            .field("backend", &self.store.backend_name())
            .finish()
    }
}

impl AdminHandle {
    /// Every-namespace operations on `store`, with the default timeout.
    pub fn new(store: Arc<dyn Store>) -> Self {
        AdminHandle {
            store,
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// As [`Handle::with_timeout`].
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Namespaces holding any data, sorted byte-wise.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        within(
            self.timeout,
            self.store.backend_name(),
            "namespaces",
            self.store.namespaces(),
        )
        .await
    }

    /// The counts of every namespace holding data, and their sum (ADM-9).
    /// Each namespace is counted on its own, so the figures of a store
    /// being written to are each as of its own moment.
    ///
    /// # Errors
    /// `Unavailable` when the database gets no answer within the timeout.
    pub async fn counts(&self) -> Result<StoreCounts> {
        let cx = self.cx();
        within(
            self.timeout,
            self.store.backend_name(),
            "counts",
            health::store_counts(self.store.as_ref(), &cx),
        )
        .await
    }

    /// A health report whose counts are over every namespace (`counts` is
    /// their sum, `namespaces` each one's, `namespace` is empty). Never
    /// fails: a down database is `unhealthy` with the error.
    pub async fn health(&self) -> HealthReport {
        let cx = self.cx();
        health::health_within(
            self.store.as_ref(),
            &cx,
            health::Scope::All(&cx),
            self.timeout,
        )
        .await
    }

    /// The context of an every-namespace call: the wall clock, and the
    /// timeout's deadline.
    fn cx(&self) -> Cx {
        let deadline = self
            .timeout
            .and_then(|t| std::time::Instant::now().checked_add(t));
        Cx::new("default", Timestamp::now()).with_deadline(deadline)
    }

    /// Write the portable archive of every namespace with data to `out`.
    ///
    /// # Errors
    /// `Internal` when `out` fails to write; `Unavailable` when a page read
    /// gets no answer within the timeout.
    pub async fn export(
        &self,
        out: &mut (dyn Write + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ExportSummary> {
        let namespaces = self.namespaces().await?;
        archive::export(
            self.store.as_ref(),
            self.timeout,
            &namespaces,
            out,
            progress,
        )
        .await
    }

    /// Load a portable archive (every namespace it holds) into a store where
    /// those namespaces are empty: all of it, or nothing.
    ///
    /// # Errors
    /// As [`Handle::import`], without the one-namespace rule.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<ImportSummary> {
        let parsed = archive::parse(input)?;
        archive::import(self.store.as_ref(), &parsed, self.timeout, progress).await
    }
}
