//! Journal retention as the worker runs it (decision 0019): on a timer, make the journal's
//! next days ahead of need, archive and drop what was received before the retention, and
//! forget claims past the dedupe horizon; publish attempts and drifts past the retention are
//! dropped without an archive (decision 0030). Archives are gzip-compressed NDJSON files, one per
//! day of the journal, one `JournalEntry` per line, written to a partial file of the pass's
//! own, synced and linked under the day's name before the store drops a row they hold; an
//! unfinished partial file is removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use catalog_core::{Classify, ClockPolicy, StockChange};
use catalog_store::{ArchiveSink, JournalEntry, RetentionPolicy, RetentionReport, RetentionStore, StoreError};
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio_util::sync::CancellationToken;

use crate::Metrics;

/// How the worker keeps its journal bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Journal rows received longer ago than this are archived and dropped.
    pub retention: chrono::Duration,
    /// Where archives go (created if missing).
    pub archive_dir: PathBuf,
    /// How often retention runs.
    pub interval: Duration,
    /// How many days of journal to make ahead of need (Postgres partitions).
    pub days_ahead: u32,
    /// Rows per statement and per transaction.
    pub chunk: usize,
    /// The clock allowance the worker decides with: claims are kept long enough for it.
    pub clock: ClockPolicy,
}

impl RetentionSettings {
    /// What one pass at `now` drops: rows past the retention; claims past both the retention
    /// and the claim retention (a claim outlives its row when the retention is shorter).
    pub fn policy(&self, now: DateTime<Utc>) -> RetentionPolicy {
        let journal_cutoff = now - self.retention;
        let claim_cutoff = journal_cutoff.min(now - self.clock.claim_retention());
        RetentionPolicy { journal_cutoff, claim_cutoff, chunk: self.chunk }
    }
}

/// Writes each segment to `DIR/<segment>.ndjson.gz`.
#[derive(Debug)]
pub struct NdjsonArchive {
    directory: PathBuf,
    open: Option<OpenArchive>,
    /// The worker's shutdown: the pass stops at its next safe point once it fires.
    stop: Option<CancellationToken>,
}

impl NdjsonArchive {
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self { directory: directory.into(), open: None, stop: None }
    }

    /// Tells the pass writing to this archive to stop once `stop` fires
    /// ([`ArchiveSink::stopping`]).
    pub fn stopped_by(mut self, stop: CancellationToken) -> Self {
        self.stop = Some(stop);
        self
    }

    fn finished(&self, name: &str) -> PathBuf {
        self.directory.join(format!("{name}.ndjson.gz"))
    }
}

/// What a pass is writing: the day's name, and the partial file only this pass writes.
#[derive(Debug)]
struct OpenArchive {
    name: String,
    partial: Partial,
    encoder: GzEncoder<BufWriter<File>>,
}

/// A partial archive file, removed when dropped: a pass that fails or stops before its
/// archive is linked under its day's name leaves no file behind (its rows are still in the
/// journal, and the next pass archives them again).
#[derive(Debug)]
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                partial = %self.0.display(),
                %error,
                "an unfinished journal archive could not be removed: it may be deleted by hand"
            ),
        }
    }
}

impl ArchiveSink for NdjsonArchive {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        create_durably(&self.directory)?;
        // A partial file of this pass alone (two workers' passes, or a pass beside the
        // leftovers of one that died, never write into one file).
        let partial = self.directory.join(format!(
            "{name}.{}-{}.ndjson.gz.partial",
            std::process::id(),
            Utc::now().format("%Y%m%dT%H%M%S%.6f")
        ));
        let file = File::options().write(true).create_new(true).open(&partial)?;
        let (partial, encoder) = (Partial(partial), GzEncoder::new(BufWriter::new(file), Compression::fast()));
        self.open = Some(OpenArchive { name: name.to_owned(), partial, encoder });
        Ok(())
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        let open = self.open.as_mut().ok_or_else(|| std::io::Error::other("no archive begun"))?;
        for entry in entries {
            serde_json::to_writer(&mut open.encoder, &ArchivedRow::from(entry))?;
            open.encoder.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<String> {
        let OpenArchive { name, partial: unfinished, encoder } =
            self.open.take().ok_or_else(|| std::io::Error::other("no archive begun"))?;
        // On any error below, `unfinished` is dropped and its file removed.
        let partial = &unfinished.0;
        let file = encoder.finish()?.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        // Linked under its day's name, or beside it when that is taken (a day archived by a
        // pass that died before its drop, or by another worker's pass): a link never
        // replaces a file, so nothing archived is overwritten.
        let mut finished = self.finished(&name);
        if let Err(error) = std::fs::hard_link(partial, &finished) {
            if error.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(error);
            }
            let unique = partial.file_name().and_then(|file| file.to_str()).unwrap_or(&name);
            finished = self.finished(unique.trim_end_matches(".ndjson.gz.partial"));
            std::fs::hard_link(partial, &finished)?;
        }
        std::fs::remove_file(partial)?;
        sync_directory(&self.directory)?;
        Ok(finished.display().to_string())
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(CancellationToken::is_cancelled)
    }
}

/// One line of an archive: a journal row column for column, as `events` holds it (decision
/// 0019 documents the format). A rejected message's kept bytes are hex.
#[derive(Debug, serde::Serialize)]
struct ArchivedRow<'a> {
    journal_id: i64,
    event_id: Option<uuid::Uuid>,
    tenant_id: Option<&'a str>,
    supplier_id: Option<&'a str>,
    sku: Option<&'a str>,
    event_type: Option<&'static str>,
    quantity: Option<i64>,
    delta: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
    sequence: Option<u64>,
    effective_at: Option<DateTime<Utc>>,
    clock_drift_clamped: bool,
    received_at: DateTime<Utc>,
    outcome: &'static str,
    reason: Option<&'a str>,
    detail: Option<&'a str>,
    redelivery_count: u32,
    payload_differs: bool,
    source: &'a str,
    source_partition: i32,
    source_offset: i64,
    traceparent: Option<&'a str>,
    raw_payload_hex: Option<String>,
    raw_payload_length: Option<u64>,
    decided_at: DateTime<Utc>,
}

impl<'a> From<&'a JournalEntry> for ArchivedRow<'a> {
    fn from(entry: &'a JournalEntry) -> Self {
        let (event_type, quantity, delta) = match entry.change {
            Some(change @ StockChange::Updated { quantity }) => (Some(change.type_name()), Some(quantity), None),
            Some(change @ StockChange::Adjusted { delta }) => (Some(change.type_name()), None, Some(delta)),
            None => (None, None, None),
        };
        ArchivedRow {
            journal_id: entry.journal_id,
            event_id: entry.event_id.map(|id| id.0),
            tenant_id: entry.tenant.as_deref(),
            supplier_id: entry.supplier.as_deref(),
            sku: entry.sku.as_deref(),
            event_type,
            quantity,
            delta,
            updated_at: entry.updated_at,
            sequence: entry.sequence,
            effective_at: entry.effective_at,
            clock_drift_clamped: entry.clock_drift_clamped,
            received_at: entry.received_at,
            outcome: entry.outcome.as_str(),
            reason: entry.reason.as_deref(),
            detail: entry.detail.as_deref(),
            redelivery_count: entry.redelivery_count,
            payload_differs: entry.payload_differs,
            source: &entry.source.source,
            source_partition: entry.source.partition,
            source_offset: entry.source.offset,
            traceparent: entry.traceparent.as_deref(),
            raw_payload_hex: entry
                .raw_payload
                .as_ref()
                .map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect()),
            raw_payload_length: entry.raw_payload_length,
            decided_at: entry.decided_at,
        }
    }
}

/// Creates `directory` and the missing directories above it, each made durable in its parent
/// (a crash must not lose the directory an archive was linked into, after its rows were
/// dropped).
fn create_durably(directory: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> =
        directory.ancestors().take_while(|path| !path.as_os_str().is_empty() && !path.exists()).collect();
    for path in missing.into_iter().rev() {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            // Another worker's pass made it meanwhile.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        // A relative directory's top level lives in the working directory.
        let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_directory(parent)?;
    }
    Ok(())
}

fn sync_directory(directory: &Path) -> std::io::Result<()> {
    File::open(directory)?.sync_all()
}

/// One retention pass at `now`: days made ahead, old days archived and dropped, claims pruned,
/// old publish attempts and drifts dropped; stopped at its next safe point once `stop` fires
/// (what it did not finish, the next pass does).
pub async fn run_once(
    store: &dyn RetentionStore,
    settings: &RetentionSettings,
    metrics: &Metrics,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) -> Result<RetentionReport, StoreError> {
    store.prepare_journal(now + chrono::Duration::days(i64::from(settings.days_ahead))).await?;
    let mut archive = NdjsonArchive::new(&settings.archive_dir).stopped_by(stop.clone());
    let report = store.expire_journal(&settings.policy(now), &mut archive).await?;
    metrics.retention.journal_segments_dropped.inc_by(report.dropped.len() as u64);
    metrics.retention.journal_rows_archived.inc_by(report.dropped.iter().map(|segment| segment.rows).sum());
    metrics.retention.journal_segments_kept.with_label_values(&["held_events"]).set(report.kept.len() as i64);
    metrics.retention.claims_pruned.inc_by(report.claims_pruned);
    metrics.retention.attempt_days_dropped.inc_by(report.attempt_days_dropped);
    metrics.retention.drifts_pruned.inc_by(report.drifts_pruned);
    metrics.retention.dead_letters_pruned.inc_by(report.dead_letters_pruned);
    metrics.retention.feed_windows_compacted.inc_by(report.feed_windows_compacted);
    for kept in &report.kept {
        tracing::warn!(
            segment = %kept.name,
            held_events = kept.held_events,
            "journal segment past the retention kept: it holds held events (switch their tenant or supplier on, or replay them)"
        );
    }
    Ok(report)
}

/// Runs retention every `settings.interval` until `cancel` (a pass running then is finished
/// first: a file run that ends by itself still completes its retention). `interrupt` (a
/// signal) stops a pass at its next safe point. A failed pass is logged with its class,
/// counted, and tried again at the next interval: retention never stops the worker.
pub async fn run(
    store: &dyn RetentionStore,
    settings: RetentionSettings,
    metrics: Metrics,
    cancel: CancellationToken,
    interrupt: CancellationToken,
) {
    loop {
        match run_once(store, &settings, &metrics, Utc::now(), &interrupt).await {
            Ok(report)
                if report.stopped
                    || !report.dropped.is_empty()
                    || report.claims_pruned > 0
                    || report.attempt_days_dropped > 0
                    || report.drifts_pruned > 0
                    || report.dead_letters_pruned > 0
                    || report.feed_windows_compacted > 0 =>
            {
                tracing::info!(
                    dropped = report.dropped.len(),
                    rows = report.dropped.iter().map(|segment| segment.rows).sum::<u64>(),
                    claims_pruned = report.claims_pruned,
                    attempt_days_dropped = report.attempt_days_dropped,
                    drifts_pruned = report.drifts_pruned,
                    dead_letters_pruned = report.dead_letters_pruned,
                    feed_windows_compacted = report.feed_windows_compacted,
                    stopped = report.stopped,
                    "journal retention pass{}",
                    if report.stopped { " stopped by a signal; the next pass goes on from there" } else { "" }
                );
            }
            Ok(_) => {}
            Err(error) => {
                let class = error.failure_class();
                metrics.retention.retention_failures.with_label_values(&[class.as_str()]).inc();
                tracing::error!(%error, class = class.as_str(), "journal retention pass failed; trying again next interval");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's archive tells its pass to stop once the worker's shutdown fires; an
    /// archive with no shutdown to follow (tools, tests) never does.
    #[test]
    fn an_archive_stopped_by_the_shutdown_tells_its_pass_to_stop() {
        let shutdown = CancellationToken::new();
        let archive = NdjsonArchive::new("unused").stopped_by(shutdown.clone());
        assert!(!archive.stopping());
        shutdown.cancel();
        assert!(archive.stopping());
        assert!(!NdjsonArchive::new("unused").stopping());
    }
}
