//! The applier's retries, on a real SQLite store behind a wrapper that fails on cue: a batch
//! whose commit landed but failed to confirm is found durable by the store's fence and not
//! applied again (its events are not their own redeliveries, its rejected message is
//! journaled once), and a batch that failed before its commit is applied again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog_app::{Applier, BatchSink, Metrics, Reread, RetryPolicy, SourceBatch};
use catalog_core::{StockChange, TenantId};
use catalog_sqlite::SqliteStore;
use catalog_store::contract::{base, incoming, offer, raw_incoming};
use catalog_store::prelude::*;
use catalog_store::{
    BatchInput, BatchResult, Checkpoint, IncomingEvent, JournalWindow, Position, StoreConfig, StoreError,
};

const KAFKA: &str = "kafka:catalog-sync:supplier.inventory.v1";
const FILE: &str = "file:/var/lib/catalog-sync/inbox/events.ndjson";
const FEED: &str = "feed:canary/acme";
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

/// A real store whose next calls fail as told: `lost_commits` applies commit and then report
/// the connection lost; `refused` applies fail before touching the store; `interloper` is
/// another run's batch, committed by the next apply in place of the one asked, which fails.
#[derive(Debug)]
struct FailingStore {
    inner: SqliteStore,
    lost_commits: AtomicUsize,
    refused: AtomicUsize,
    applies: AtomicUsize,
    interloper: std::sync::Mutex<Option<BatchInput>>,
    /// The next apply finds a row it cannot read (fatal).
    corrupt: AtomicUsize,
}

/// Takes one from `counter` if it is above zero.
fn take(counter: &AtomicUsize) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn connection_lost() -> StoreError {
    StoreError::Unavailable("connection reset by peer".into())
}

#[async_trait]
impl BatchStore for FailingStore {
    async fn apply_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        if take(&self.refused) {
            return Err(connection_lost());
        }
        if take(&self.corrupt) {
            return Err(StoreError::Corrupt("an offer row no build can read".into()));
        }
        let interloper = self.interloper.lock().expect("not poisoned").take();
        if let Some(interloper) = interloper {
            self.inner.apply_batch(&interloper).await?;
            return Err(connection_lost());
        }
        let result = self.inner.apply_batch(batch).await?;
        if take(&self.lost_commits) {
            return Err(connection_lost());
        }
        Ok(result)
    }

    async fn preview_batch(&self, batch: &BatchInput) -> Result<BatchResult, StoreError> {
        self.inner.preview_batch(batch).await
    }

    async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints(source).await
    }

    async fn rewind_checkpoint(
        &self,
        source: &str,
        partition: i32,
        from: i64,
        to: &Position,
    ) -> Result<bool, StoreError> {
        self.inner.rewind_checkpoint(source, partition, from, to).await
    }
}

struct Run {
    store: Arc<FailingStore>,
    applier: Applier,
    metrics: Metrics,
    _directory: tempfile::TempDir,
}

async fn run(lost_commits: usize, refused: usize) -> Run {
    let directory = tempfile::tempdir().expect("temp dir");
    let inner =
        SqliteStore::open_path(&directory.path().join("catalog.db"), StoreConfig::default()).await.expect("open");
    let store = Arc::new(FailingStore {
        inner,
        lost_commits: AtomicUsize::new(lost_commits),
        refused: AtomicUsize::new(refused),
        applies: AtomicUsize::new(0),
        interloper: std::sync::Mutex::new(None),
        corrupt: AtomicUsize::new(0),
    });
    let metrics = Metrics::new();
    let retry = RetryPolicy { first_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(5) };
    let applier = Applier::new(store.clone(), metrics.clone(), CancellationToken::new()).with_retry(retry);
    Run { store, applier, metrics, _directory: directory }
}

/// Three events of tenant `canary` and, between them, one it sends with a malformed SKU, from
/// partition 0 of a Kafka topic.
fn source_batch() -> SourceBatch {
    from_source(KAFKA)
}

/// The same messages, from `source`.
fn from_source(source: &str) -> SourceBatch {
    let key = offer("canary", "acme", "SKU-1");
    let malformed = format!(
        r#"{{"event_id":"00000000-0000-0000-0000-00000000000b","type":"inventory.updated","tenant_id":"canary","supplier_id":"acme","sku":"not a sku!","quantity":1,"updated_at":"{}"}}"#,
        base().to_rfc3339()
    );
    let events = vec![
        incoming(0, &key, StockChange::Updated { quantity: 5 }, 0, 0),
        incoming(1, &key, StockChange::Updated { quantity: 6 }, 1, 0),
        raw_incoming(2, malformed.into_bytes(), 0),
        incoming(3, &offer("canary", "acme", "SKU-2"), StockChange::Updated { quantity: 7 }, 0, 0),
    ];
    in_source(source, events, Position::at(4))
}

/// `events` as a batch of partition 0 of `source`, up to `checkpoint`.
fn in_source(source: &str, mut events: Vec<IncomingEvent>, checkpoint: Position) -> SourceBatch {
    for event in &mut events {
        event.source.source = source.into();
    }
    SourceBatch {
        source: source.into(),
        partition: 0,
        events,
        checkpoint: Some(checkpoint),
        last_message_at: None,
        high_watermark: None,
    }
}

/// The journal of tenant `canary`: (outcome, redelivery count) per row, sorted.
async fn journal(store: &FailingStore) -> Vec<(String, u32)> {
    let window = JournalWindow {
        tenant: TenantId::parse("canary").expect("valid"),
        since: base(),
        until: None,
        supplier: None,
        held_only: false,
    };
    let entries = store.inner.journal_window(&window).await.expect("journal window");
    let mut rows: Vec<_> =
        entries.iter().map(|entry| (entry.outcome.as_str().to_owned(), entry.redelivery_count)).collect();
    rows.sort();
    rows
}

fn owned(rows: &[(&str, u32)]) -> Vec<(String, u32)> {
    rows.iter().map(|(outcome, count)| ((*outcome).to_owned(), *count)).collect()
}

#[tokio::test]
async fn a_batch_whose_commit_landed_unconfirmed_is_not_applied_again() {
    for (batch, kind) in [(from_source(KAFKA), "kafka"), (from_source(FILE), "file")] {
        a_batch_of_whose_commit_landed_unconfirmed_is_not_applied_again(batch, kind).await;
    }
}

/// A feed's page: every record at the page's number, checkpointed at the next page.
fn feed_page() -> SourceBatch {
    let mut page = from_source(FEED);
    for event in &mut page.events {
        event.source.offset = 7;
    }
    page.checkpoint = Some(Position::at(8));
    page
}

/// A feed's page whose commit landed unconfirmed is not applied again either, but it cannot
/// be told from another run's page at the same number: it is counted as applied elsewhere,
/// and its puller pulls the window again (duplicates by id), where taking another run's page
/// for its own would lose its records.
#[tokio::test]
async fn a_feed_page_whose_commit_landed_unconfirmed_is_counted_as_applied_elsewhere() {
    let run = run(1, 0).await;
    let durable = run.applier.apply(feed_page()).await.expect("durable");
    assert_eq!(durable.applied_elsewhere, 4, "the puller pulls the window again");
    assert_eq!(run.store.applies.load(Ordering::SeqCst), 2, "tried again, and found applied");
    assert_eq!(
        journal(&run.store).await,
        owned(&[("applied", 0), ("applied", 0), ("applied", 0), ("rejected", 0)]),
        "one row per message, none its own redelivery"
    );
    assert_eq!(run.metrics.batches_commit_unconfirmed.with_label_values(&["feed"]).get(), 0);
}

async fn a_batch_of_whose_commit_landed_unconfirmed_is_not_applied_again(batch: SourceBatch, kind: &str) {
    // The commit lands and the connection drops; the batch is found applied whole.
    let run = run(1, 0).await;
    let mut publishers = run.applier.publish_work().subscribe();
    run.applier.apply(batch).await.expect("durable");

    assert_eq!(run.store.applies.load(Ordering::SeqCst), 2, "tried again, and found applied");
    assert_eq!(
        journal(&run.store).await,
        owned(&[("applied", 0), ("applied", 0), ("applied", 0), ("rejected", 0)]),
        "one row per message, none its own redelivery"
    );
    let metrics = &run.metrics;
    assert_eq!(metrics.batches_commit_unconfirmed.with_label_values(&[kind]).get(), 1);
    assert_eq!(metrics.events_commit_unconfirmed.with_label_values(&[kind]).get(), 4);
    assert_eq!(metrics.store_retries.with_label_values(&["unavailable"]).get(), 1);
    assert_eq!(metrics.redeliveries.with_label_values(&["false"]).get(), 0);
    assert_eq!(metrics.skipped_below_checkpoint.with_label_values(&["0"]).get(), 0, "not another member's");
    let totals = run.applier.totals();
    assert_eq!((totals.events_unconfirmed, totals.events_by_outcome.values().sum::<u64>()), (4, 0));
    assert!(publishers.notified().now_or_never().is_some(), "publishers wake for what the batch queued");
}

/// Two runs of one feed number their pages from the same checkpoint. This run's first attempt
/// fails, and meanwhile the other run commits its own page 7: the retry finds page 7 applied
/// whole, but with the other run's records, not these. Taken for its own commit, the batch
/// was reported durable, and these records were never applied nor pulled again.
#[tokio::test]
async fn a_feed_page_another_run_committed_while_this_one_retried_is_not_taken_for_its_own() {
    let page_of = |n: u64, key: &catalog_core::OfferKey, cursor: &str| {
        let events = vec![incoming(n, key, StockChange::Updated { quantity: 5 }, 0, 0)];
        let mut page = in_source(FEED, events, Position { offset: 8, cursor: Some(cursor.to_owned()) });
        for event in &mut page.events {
            event.source.offset = 7;
        }
        page
    };
    let theirs = || {
        let theirs = page_of(20, &offer("canary", "acme", "SKU-THEIRS"), "window-of-the-other-run");
        let mut input = BatchInput::new(theirs.events, vec![]);
        input.checkpoints =
            vec![Checkpoint { source: FEED.to_owned(), partition: 0, position: theirs.checkpoint.expect("one") }];
        input.skip_applied = true;
        input
    };
    let ours = page_of(21, &offer("canary", "acme", "SKU-OURS"), "window-of-this-run");

    let first = run(0, 0).await;
    *first.store.interloper.lock().expect("not poisoned") = Some(theirs());
    let durable = first.applier.apply(ours.clone()).await.expect("durable");
    assert_eq!(durable.applied_elsewhere, 1, "the puller hears of the other run, and pulls its window again");
    assert_eq!(first.metrics.batches_commit_unconfirmed.with_label_values(&["feed"]).get(), 0);

    // The same, when the retry (fenced off whole, yet writing this run's checkpoint over the
    // other's) commits and loses its confirmation too: the stored checkpoint is this run's
    // by then, and still says nothing of whose records page 7 holds.
    let second = run(1, 0).await;
    *second.store.interloper.lock().expect("not poisoned") = Some(theirs());
    let durable = second.applier.apply(ours).await.expect("durable");
    assert_eq!(durable.applied_elsewhere, 1);
    assert_eq!(second.store.applies.load(Ordering::SeqCst), 3, "their page, this one lost, this one found");
}

/// A fatal store failure stops the source, tried once: not retried, so not counted as a retry
/// (`catalog_store_retries_total`, which pages as "the database fails, batches are retried").
#[tokio::test]
async fn a_fatal_store_failure_is_not_counted_as_a_retry() {
    let run = run(0, 0).await;
    run.store.corrupt.store(1, Ordering::SeqCst);
    let error = run.applier.apply(source_batch()).await.expect_err("fatal");
    assert!(matches!(error, catalog_app::SinkError::Fatal(_)), "{error:?}");
    assert_eq!(run.store.applies.load(Ordering::SeqCst), 1, "not tried again");
    assert_eq!(run.metrics.store_retries.with_label_values(&["corrupt"]).get(), 0);
}

#[tokio::test]
async fn a_batch_refused_before_its_commit_is_applied_again() {
    let run = run(0, 2).await;
    run.applier.apply(source_batch()).await.expect("durable");

    assert_eq!(run.store.applies.load(Ordering::SeqCst), 3);
    assert_eq!(journal(&run.store).await, owned(&[("applied", 0), ("applied", 0), ("applied", 0), ("rejected", 0)]));
    let metrics = &run.metrics;
    assert_eq!(metrics.batches_commit_unconfirmed.with_label_values(&["kafka"]).get(), 0);
    assert_eq!(metrics.events.with_label_values(&["applied", ""]).get(), 3);
    assert_eq!(metrics.store_retries.with_label_values(&["unavailable"]).get(), 2);
    assert_eq!(run.applier.totals().events_unconfirmed, 0);
}

/// A partition held by two members of the group at once (tansu hands it to a new member
/// before the old one lets go): the second applies a batch that starts below the checkpoint
/// the first stored. The messages applied already are skipped, not journaled again.
#[tokio::test]
async fn messages_another_member_applied_are_skipped_not_journaled_again() {
    let run = run(0, 0).await;
    run.applier.apply(source_batch()).await.expect("the first member's batch");
    let mut overlapping = source_batch().events;
    overlapping.drain(..2);
    let key = offer("canary", "acme", "SKU-3");
    overlapping.push(incoming(4, &key, StockChange::Updated { quantity: 8 }, 0, 0));
    overlapping.push(incoming(5, &key, StockChange::Updated { quantity: 9 }, 1, 0));
    run.applier.apply(in_source(KAFKA, overlapping, Position::at(6))).await.expect("the second member's batch");
    // And a batch the first member applied whole, delivered again.
    run.applier.apply(source_batch()).await.expect("a batch applied whole");

    assert_eq!(
        journal(&run.store).await,
        owned(&[("applied", 0), ("applied", 0), ("applied", 0), ("applied", 0), ("applied", 0), ("rejected", 0)]),
        "one row per message, none counted twice"
    );
    assert_eq!(run.metrics.skipped_below_checkpoint.with_label_values(&["0"]).get(), 2 + 4);
    assert_eq!(run.applier.totals().events_applied_elsewhere, 2 + 4, "named in the run's summary");
    assert_eq!(run.metrics.redeliveries.with_label_values(&["false"]).get(), 0);
    assert_eq!(run.metrics.events.with_label_values(&["applied", ""]).get(), 3 + 2);
    assert_eq!(run.metrics.batches_commit_unconfirmed.with_label_values(&["kafka"]).get(), 0);
}

/// A member still reading a topic after it was deleted and created again, and after the
/// checkpoint moved back to the new topic (decision 0040): its batch is applied by its event
/// ids, counted and logged, and leaves the new topic's checkpoint where it stands, so the new
/// topic's messages at offsets the old one passed are applied when they come.
#[tokio::test]
async fn a_batch_of_a_replaced_topic_leaves_the_new_topic_s_checkpoint_alone() {
    const OLD: &str = "0123456789abcdef0123456789abcdef";
    const NEW: &str = "fedcba9876543210fedcba9876543210";
    let run = run(0, 0).await;
    run.applier.apply(in_source(KAFKA, vec![], Position::in_log(1_000, OLD))).await.expect("the old topic's end");
    assert!(run.applier.rewind_checkpoint(KAFKA, 0, 1_000, &Position::in_log(0, NEW)).await.expect("rewind"));

    let key = offer("canary", "acme", "SKU-1");
    let zombie = vec![incoming(900, &key, StockChange::Updated { quantity: 5 }, 0, 0)];
    run.applier.apply(in_source(KAFKA, zombie, Position::in_log(901, OLD))).await.expect("the old member's batch");
    assert_eq!(run.metrics.batches_of_a_replaced_topic.with_label_values(&["0"]).get(), 1);
    let stored = run.store.checkpoints(KAFKA).await.expect("checkpoints");
    assert_eq!(stored.iter().map(|c| c.position.clone()).collect::<Vec<_>>(), [Position::in_log(0, NEW)]);

    let new = vec![incoming(3, &key, StockChange::Updated { quantity: 7 }, 1, 0)];
    run.applier.apply(in_source(KAFKA, new, Position::in_log(4, NEW))).await.expect("the new topic's batch");
    assert_eq!(run.metrics.skipped_below_checkpoint.with_label_values(&["0"]).get(), 0);
    assert_eq!(run.metrics.events.with_label_values(&["applied", ""]).get(), 2, "both topics' events applied");
    assert_eq!(run.metrics.batches_of_a_replaced_topic.with_label_values(&["0"]).get(), 1);

    // Moved back once; a checkpoint given its log where it stands is not counted as moved back.
    assert_eq!(run.metrics.checkpoints_beyond_end.with_label_values(&["0"]).get(), 1);
    assert!(run.applier.rewind_checkpoint(KAFKA, 0, 4, &Position::in_log(4, NEW)).await.expect("named"));
    assert_eq!(run.metrics.checkpoints_beyond_end.with_label_values(&["0"]).get(), 1);
}

/// Queue lag is how long what is still waiting has waited: a batch behind the partition's end
/// reads the age of its last message; one that reaches the end reads 0, however old its last
/// message (a partition gone quiet is caught up, not minutes behind).
#[tokio::test]
async fn queue_lag_is_zero_once_a_batch_reaches_the_partition_s_end() {
    let run = run(0, 0).await;
    let lag = |metrics: &Metrics| {
        (
            metrics.queue_lag_seconds.with_label_values(&["0"]).get(),
            metrics.queue_lag_messages.with_label_values(&["0"]).get(),
        )
    };
    let mut behind = source_batch();
    behind.last_message_at = Some(chrono::Utc::now() - chrono::Duration::minutes(5));
    behind.high_watermark = Some(10);
    run.applier.apply(behind).await.expect("apply");
    let (seconds, messages) = lag(&run.metrics);
    assert!((299..=310).contains(&seconds), "{seconds}");
    assert_eq!(messages, 6);

    let key = offer("canary", "acme", "SKU-4");
    let events =
        (4..10_u64).map(|n| incoming(n, &key, StockChange::Updated { quantity: n as i64 }, n as i64, 0)).collect();
    let mut caught_up = in_source(KAFKA, events, Position::at(10));
    caught_up.last_message_at = Some(chrono::Utc::now() - chrono::Duration::minutes(5));
    caught_up.high_watermark = Some(10);
    run.applier.apply(caught_up).await.expect("apply");
    assert_eq!(lag(&run.metrics), (0, 0));

    // Revoked (or read to its end): its series go, so a worker's last value never stands for
    // a partition another member now reads.
    let mut behind = source_batch();
    behind.high_watermark = Some(50);
    run.applier.apply(behind).await.expect("apply");
    assert!(run.metrics.render().contains("catalog_queue_lag_messages{partition=\"0\"}"));
    catalog_app::BatchSink::partition_done(&run.applier, KAFKA, 0);
    let rendered = run.metrics.render();
    assert!(
        !rendered.contains("catalog_queue_lag_messages{partition=")
            && !rendered.contains("catalog_queue_lag_seconds{partition="),
        "{rendered}"
    );
}

/// Progress is reported for the partitions a source reads as a stream, from their start to
/// their end or revocation. A feed's pages (a run ends with nothing left to wait for) and a
/// late batch of a partition read to its end leave none: a row no source forgets would age
/// into queue lag for every tenant once the worker stops. A forget the store did not take is
/// asked again at the next report.
#[tokio::test]
async fn only_a_partition_its_source_reads_has_progress() {
    let run = run(0, 0).await;
    let partitions = |report: &catalog_app::ProgressReport| -> Vec<String> {
        report.partitions.iter().map(|p| format!("{} {}", p.source, p.partition)).collect()
    };
    run.applier.apply(from_source(FEED)).await.expect("a feed's page");
    assert_eq!(partitions(&run.applier.take_progress(chrono::Utc::now())), Vec::<String>::new());

    catalog_app::BatchSink::partition_started(&run.applier, KAFKA, 0);
    run.applier.apply(source_batch()).await.expect("apply");
    assert_eq!(partitions(&run.applier.take_progress(chrono::Utc::now())), [format!("{KAFKA} 0")]);
    catalog_app::BatchSink::partition_done(&run.applier, KAFKA, 0);
    run.applier.apply(source_batch()).await.expect("a late batch");
    let report = run.applier.take_progress(chrono::Utc::now());
    assert_eq!((partitions(&report), report.done.clone()), (vec![], vec![(KAFKA.to_owned(), "0".to_owned())]));

    run.applier.forget_later(report.done);
    assert_eq!(run.applier.take_progress(chrono::Utc::now()).done, [(KAFKA.to_owned(), "0".to_owned())]);
}

/// A source's re-reads (a Kafka worker stepping back to check where its fetch starts, a
/// broker delivering a message again) are counted by why, apart from the messages the store's
/// fence finds another worker applied: those alone are `catalog_skipped_below_checkpoint_total`
/// and `applied_by_another_worker` in the run's summary.
#[tokio::test]
async fn a_source_s_rereads_are_not_counted_as_another_worker_s() {
    let run = run(0, 0).await;
    run.applier.reread(0, Reread::StartCheck);
    run.applier.reread(0, Reread::StartCheck);
    run.applier.reread(0, Reread::Refetch);

    let metrics = &run.metrics;
    assert_eq!(metrics.rereads.with_label_values(&["0", "start_check"]).get(), 2);
    assert_eq!(metrics.rereads.with_label_values(&["0", "refetch"]).get(), 1);
    assert!(!metrics.render().contains("catalog_skipped_below_checkpoint_total{"), "no other worker's");
    assert_eq!(run.applier.totals().events_applied_elsewhere, 0);
}

/// Where a partition's reading starts sets its lag in messages before any batch; its lag in
/// seconds only when nothing waits (0): how long a waiting message has waited is not known
/// until a batch tells, and is never reported as a made-up 0.
#[tokio::test]
async fn queue_lag_is_known_from_where_a_partition_s_reading_starts() {
    let run = run(0, 0).await;
    let lag = |partition: &str| {
        let rendered = run.metrics.render();
        let sample = |name: &str| {
            let prefix = format!("{name}{{partition=\"{partition}\"}} ");
            rendered.lines().find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        };
        (sample("catalog_queue_lag_messages"), sample("catalog_queue_lag_seconds"))
    };
    run.applier.reading_starts(0, 40, 50);
    run.applier.reading_starts(1, 50, 50);
    assert_eq!(lag("0"), (Some("10".to_owned()), None));
    assert_eq!(lag("1"), (Some("0".to_owned()), Some("0".to_owned())));
    // Messages came before the first fetch read the end again: nothing waits no longer holds.
    run.applier.reading_starts(1, 50, 80);
    assert_eq!(lag("1"), (Some("30".to_owned()), None));

    // The first batch says how long its messages waited.
    let mut behind = source_batch();
    behind.last_message_at = Some(chrono::Utc::now() - chrono::Duration::minutes(5));
    behind.high_watermark = Some(50);
    run.applier.apply(behind).await.expect("apply");
    let (messages, seconds) = lag("0");
    assert_eq!(messages.as_deref(), Some("46"));
    assert!(seconds.is_some_and(|seconds| (299..=310).contains(&seconds.parse::<i64>().expect("seconds"))));
}
