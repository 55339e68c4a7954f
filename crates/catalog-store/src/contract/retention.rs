//! Contract cases of `RetentionStore` (decision 0019): old journal days are archived, then
//! dropped; a day holding held events is kept; an archive that fails drops nothing; and a
//! redelivery of an event whose row is gone, or whose claim is gone too, is never applied
//! twice. Publish attempts and drifts past the retention are dropped (decision 0030) and
//! publishing goes on; dead letters resolved before the cutoff are deleted, open ones stay
//! (decision 0031); old feed windows that overlap or touch are merged (decision 0035). A pass
//! told to stop drops nothing half archived.

use catalog_core::{detect_drift, Expected, Shown, StockChange, DEDUPE_HORIZON};
use chrono::{DateTime, Days, NaiveTime, Utc};

use super::fixtures::*;
use crate::{
    ArchiveSink, DeadLetterFilter, DriftCorrection, FeedDrift, FullRefresh, JournalEntry, Provenance, PublishOutcome,
    RetentionPolicy, StoreConfig,
};

/// An archive that keeps what it is given, by segment.
#[derive(Debug, Default)]
struct Recorded {
    finished: Vec<(String, Vec<JournalEntry>)>,
    open: Option<(String, Vec<JournalEntry>)>,
    fail_on_finish: bool,
    /// Says to stop once this many writes were made (the worker shutting down).
    stop_after_writes: Option<usize>,
    writes: usize,
}

impl ArchiveSink for Recorded {
    fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.open = Some((name.to_owned(), Vec::new()));
        Ok(())
    }

    fn write(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        self.open.as_mut().expect("begun").1.extend_from_slice(entries);
        self.writes += 1;
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop_after_writes.is_some_and(|writes| self.writes >= writes)
    }

    fn finish(&mut self) -> std::io::Result<String> {
        if self.fail_on_finish {
            return Err(std::io::Error::other("disk full"));
        }
        let segment = self.open.take().expect("begun");
        let name = segment.0.clone();
        self.finished.push(segment);
        Ok(format!("memory:{name}"))
    }
}

/// Seconds from the fixtures' base time to the start of the day `days` from today.
fn day_from_today(days: u64) -> DateTime<Utc> {
    Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc().checked_add_days(Days::new(days)).expect("in range")
}

fn received_second(at: DateTime<Utc>) -> i64 {
    (at - base()).num_seconds()
}

/// A pass whose cutoff falls inside a day archives none of it: the first pass past the day's
/// end archives it whole, in one segment, as PostgreSQL drops its partitions whole. SQLite
/// archived the part before each hourly pass's cutoff, each part a file beside the day's, which
/// decision 0019 says is a day archived twice (found by review).
pub(super) async fn a_day_is_archived_whole_by_the_first_pass_past_its_end<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let day = day_from_today(2);
    let hours = |hours: i64| day + chrono::Duration::hours(hours);
    let events = (1..=3u64)
        .map(|n| {
            let at = received_second(hours(2 * n as i64 - 1));
            incoming(n, &key, StockChange::Updated { quantity: n as i64 }, at, at)
        })
        .collect();
    store.apply_batch(&batch(events)).await.expect("apply");
    let mut archive = Recorded::default();
    for cutoff in [hours(2), hours(4), hours(25)] {
        let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base() - DEDUPE_HORIZON, chunk: 100 };
        store.expire_journal(&policy, &mut archive).await.expect("expire");
    }
    // PostgreSQL archives its empty partitions too, as empty segments.
    let segments: Vec<(&str, usize)> = archive
        .finished
        .iter()
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(name, entries)| (name.as_str(), entries.len()))
        .collect();
    let name = format!("events_{}", day.format("%Y%m%d"));
    assert_eq!(segments, [(name.as_str(), 3)], "one segment holding the whole day");
}

pub(super) async fn retention_archives_old_days_and_an_old_redelivery_stays_a_duplicate<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let held_key = offer("canary", "globex", "ABC-1");
    let snapshot = incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1);
    let adjustment = incoming(2, &key, StockChange::Adjusted { delta: 5 }, 10, 11);
    store.apply_batch(&batch(vec![snapshot.clone(), adjustment.clone()])).await.expect("apply");
    // A held event on a later day, and the live stream further on.
    store.set_supplier_sync(&held_key.tenant, &held_key.supplier, false).await.expect("flag");
    let held_day = received_second(day_from_today(2) + chrono::Duration::hours(1));
    let held = incoming(3, &held_key, StockChange::Updated { quantity: 7 }, 20, held_day);
    let live_day = received_second(day_from_today(5) + chrono::Duration::hours(1));
    let live = incoming(4, &offer("canary", "acme", "XYZ-9"), StockChange::Updated { quantity: 1 }, 30, live_day);
    store.apply_batch(&batch(vec![held, live])).await.expect("apply");
    let item_id = key.item_key().item_id();
    let quantity = || async { store.item(item_id).await.expect("item").expect("exists").quantity() };
    assert_eq!(quantity().await, 15);

    // An archive that fails drops nothing.
    let cutoff = day_from_today(3);
    let keep_claims = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base() - DEDUPE_HORIZON, chunk: 1 };
    let mut failing = Recorded { fail_on_finish: true, ..Recorded::default() };
    store.expire_journal(&keep_claims, &mut failing).await.expect_err("the archive failed");
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 3, "nothing dropped without its archive");
    assert_eq!(store.journal_horizon().await.expect("horizon"), None);

    let mut archive = Recorded::default();
    let report = store.expire_journal(&keep_claims, &mut archive).await.expect("expire");
    let archived: Vec<_> =
        archive.finished.iter().flat_map(|(_, entries)| entries).map(|entry| entry.event_id).collect();
    assert_eq!(archived, vec![Some(event_id(1)), Some(event_id(2))], "the old day's rows, archived in journal order");
    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 2);
    assert_eq!(report.kept.len(), 1, "the held event's day is kept: {report:?}");
    assert_eq!(report.kept[0].held_events, 1);
    assert_eq!(report.claims_pruned, 0);
    let horizon = store.journal_horizon().await.expect("horizon").expect("retention ran");
    let kept_since = horizon.kept_since.expect("a journal day was dropped");
    assert!(kept_since > base() && kept_since <= cutoff, "{horizon:?}");
    assert!(horizon.archive.is_some_and(|archive| archive.starts_with("memory:")));
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    assert_eq!(trace.events.len(), 1, "only the held event is left: {:?}", trace.events);

    // The claims outlive the rows: a redelivery is a duplicate, journaled on its own.
    let redelivered_at = live_day + 60;
    let again = |event: &crate::IncomingEvent, offset: i64| {
        let mut event = event.clone();
        event.delivery.received_at = base() + chrono::Duration::seconds(redelivered_at);
        event.source.offset = offset;
        event
    };
    // The adjustment comes back changed: still a duplicate, journaled as a redelivery that
    // differs, as it would have been on its own row.
    let changed = incoming(2, &key, StockChange::Adjusted { delta: 9 }, 10, 11);
    let result = store.apply_batch(&batch(vec![again(&snapshot, 10), again(&changed, 11)])).await.expect("apply");
    for decision in &result.decisions {
        assert_eq!(decision.outcome.as_str(), "duplicate");
    }
    assert!(result.changed_items.is_empty());
    assert_eq!(quantity().await, 15);
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    let mut archived_again: Vec<_> = trace
        .events
        .iter()
        .filter(|entry| entry.reason.as_deref() == Some("journal_row_archived"))
        .map(|entry| (entry.event_id, entry.redelivery_count, entry.payload_differs))
        .collect();
    archived_again.sort();
    assert_eq!(
        archived_again,
        [(Some(event_id(1)), 1, false), (Some(event_id(2)), 1, true)],
        "each redelivery has a row saying why, counted as one: {:?}",
        trace.events
    );

    // Past the dedupe horizon the claims go too; the offer's state still knows both events.
    let forget_claims = RetentionPolicy { claim_cutoff: cutoff, ..keep_claims };
    let report = store.expire_journal(&forget_claims, &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.claims_pruned, 2, "the two old claims, not the held one nor the live one");
    let result = store.apply_batch(&batch(vec![again(&snapshot, 12), again(&adjustment, 13)])).await.expect("apply");
    for decision in &result.decisions {
        assert_ne!(decision.outcome.as_str(), "applied", "{decision:?}");
    }
    assert!(result.changed_items.is_empty());
    assert_eq!(quantity().await, 15);

    // The held event was kept, and is decided once its supplier is on.
    store.set_supplier_sync(&held_key.tenant, &held_key.supplier, true).await.expect("flag");
    let mut replayed = incoming(3, &held_key, StockChange::Updated { quantity: 7 }, 20, held_day);
    replayed.provenance = Provenance::Replayed;
    let result = store.apply_batch(&batch(vec![replayed])).await.expect("apply");
    assert_eq!(result.decisions[0].outcome.as_str(), "applied");
    assert_eq!(quantity().await, 22);
}

/// A pass told to stop (the worker shutting down) stops between two chunks of a day's archive:
/// it drops nothing half archived, forgets no claim, and says it stopped. The next pass
/// archives that day again whole, then the next day. A pass over a long backlog held the
/// worker's shutdown until it had done everything.
pub(super) async fn a_pass_told_to_stop_drops_nothing_half_archived_and_the_next_goes_on<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let adjust = |n: u64, received: i64| incoming(n, &key, StockChange::Adjusted { delta: 1 }, n as i64 * 10, received);
    let next_day = received_second(day_from_today(1) + chrono::Duration::hours(1));
    store.apply_batch(&batch((1..=3).map(|n| adjust(n, n as i64)).collect())).await.expect("apply");
    store.apply_batch(&batch((4..=6).map(|n| adjust(n, next_day + n as i64)).collect())).await.expect("apply");
    let cutoff = day_from_today(3);
    let policy = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 1 };

    let mut stopping = Recorded { stop_after_writes: Some(2), ..Recorded::default() };
    let report = store.expire_journal(&policy, &mut stopping).await.expect("a pass that stops");
    assert!(report.stopped, "{report:?}");
    assert_eq!((report.dropped.len(), report.claims_pruned), (0, 0), "nothing dropped or forgotten: {report:?}");
    assert!(stopping.finished.is_empty(), "no archive finished: {stopping:?}");
    assert_eq!(stopping.writes, 2, "stopped at the first chunk after it was told");

    let mut archive = Recorded::default();
    let report = store.expire_journal(&policy, &mut archive).await.expect("the next pass");
    assert!(!report.stopped, "{report:?}");
    let archived: Vec<_> =
        archive.finished.iter().flat_map(|(_, entries)| entries).map(|entry| entry.event_id).collect();
    let all: Vec<_> = (1..=6).map(|n| Some(event_id(n))).collect();
    assert_eq!(archived, all, "both days archived whole, in journal order");
    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 6);
    assert_eq!(report.claims_pruned, 6, "{report:?}");
}

/// A supplier clock ten days ahead (decision 0019, "A clamped clock"): its adjustment is
/// ordered at its receipt, and its claim is kept from its own time, so a redelivery while that
/// time is still ahead finds the claim. Once the claim is gone too, the offer remembers the
/// clamped time and the redelivery still counts nothing.
pub(super) async fn a_clamped_event_s_claim_is_kept_from_its_own_time<G, F>(factory: impl FnOnce(StoreConfig) -> F)
where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    let ahead = received_second(day_from_today(10));
    let snapshot = incoming(1, &key, StockChange::Updated { quantity: 10 }, 0, 1);
    let adjustment = incoming(2, &key, StockChange::Adjusted { delta: 5 }, ahead, 2);
    let result = store.apply_batch(&batch(vec![snapshot, adjustment.clone()])).await.expect("apply");
    assert_eq!(result.decisions[1].reason(), Some("clock_drift_clamped"));
    let item_id = key.item_key().item_id();
    let quantity = || async { store.item(item_id).await.expect("item").expect("exists").quantity() };
    assert_eq!(quantity().await, 15);
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    let stored = trace.offers[0].state.clamped_until();
    assert_eq!(stored, Some(day_from_today(10)), "the offer keeps the clamped time as read back");

    // Three days on, retention forgets every claim received before then: the snapshot's, not
    // the adjustment's, whose own time is still a week ahead.
    let cutoff = day_from_today(3);
    let forget = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: 1 };
    let report = store.expire_journal(&forget, &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.claims_pruned, 1, "the snapshot's claim, dropped with its day or apart: {report:?}");
    let again = |event: &crate::IncomingEvent, at: DateTime<Utc>, offset: i64| {
        let mut event = event.clone();
        event.delivery.received_at = at;
        event.source.offset = offset;
        event
    };
    let result = store.apply_batch(&batch(vec![again(&adjustment, day_from_today(4), 10)])).await.expect("redelivery");
    assert_eq!(result.decisions[0].outcome.as_str(), "duplicate", "found by its claim: {:?}", result.decisions);
    assert_eq!(quantity().await, 15);

    // Past the claim retention from its own time the claim goes; the offer still knows.
    let past = day_from_today(11);
    let report = store
        .expire_journal(
            &RetentionPolicy { journal_cutoff: past, claim_cutoff: past, chunk: 1 },
            &mut Recorded::default(),
        )
        .await
        .expect("expire");
    assert_eq!(report.claims_pruned, 1, "{report:?}");
    let late = past + catalog_core::ClockPolicy::default().claim_retention() + chrono::Duration::days(1);
    let result = store.apply_batch(&batch(vec![again(&adjustment, late, 11)])).await.expect("redelivery");
    assert_ne!(result.decisions[0].outcome.as_str(), "applied", "{:?}", result.decisions);
    assert_eq!(quantity().await, 15);
}

/// `--journal-retention-chunk` takes any count up to `u64::MAX`: a chunk larger than a
/// database's signed 64-bit integer is held at its largest, not wrapped to -1 (on SQLite the
/// pass stepped backwards through the journal ids, a writer job each, for ever; PostgreSQL
/// refused the negative `LIMIT`).
pub(super) async fn a_pass_with_the_largest_chunk_ends_and_drops_the_old_day<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let key = offer("canary", "acme", "ABC-1");
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    // The day's end is past on both stores (PostgreSQL's journal starts with one partition to
    // the end of the day it was made).
    let cutoff = day_from_today(1);
    let largest = RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: cutoff, chunk: usize::MAX };
    let mut archive = Recorded::default();
    let pass = store.expire_journal(&largest, &mut archive);
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), pass)
        .await
        .expect("the pass ends within ten seconds")
        .expect("expire");
    assert_eq!(report.dropped.iter().map(|segment| segment.rows).sum::<u64>(), 1, "{report:?}");
    let archived: Vec<_> =
        archive.finished.iter().flat_map(|(_, entries)| entries).map(|entry| entry.event_id).collect();
    assert_eq!(archived, [Some(event_id(1))]);
    let trace = store.item_trace(key.item_key().item_id()).await.expect("trace").expect("exists");
    assert!(trace.events.is_empty(), "the old day is dropped: {:?}", trace.events);
}

pub(super) async fn publish_attempts_and_drifts_past_the_retention_are_dropped_and_publishing_goes_on<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    // A full refresh long ago found one difference.
    let feed = super::feeds::settings("canary", "acme");
    store.upsert_feed(&feed).await.expect("feed");
    let refresh =
        FullRefresh { key: feed.key.clone(), as_of: base(), completed_at: base() + chrono::Duration::hours(1) };
    let drift =
        FeedDrift { sku: catalog_core::Sku::parse("ABC-1").expect("sku"), stored: None, supplier: 3, as_of: base() };
    store.record_feed_drifts(&feed.key, &[drift], refresh.completed_at).await.expect("drift");
    store.complete_full_refresh(&refresh).await.expect("refresh");
    let key = offer("canary", "acme", "ABC-1");
    let item_id = key.item_key().item_id();
    let publish = || async {
        let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
        claimed[0].item.clone()
    };
    store
        .apply_batch(&batch(vec![incoming(1, &key, StockChange::Updated { quantity: 4 }, 0, 1)]))
        .await
        .expect("apply");
    let item = publish().await;
    // The storefront showed 9: a drift, corrected by version 2, published in turn.
    let shown = Some(Shown { quantity: 9, version: 1 });
    let expected = Expected { quantity: item.quantity(), version: item.version(), accepted: Some(item.version()) };
    let drift = detect_drift(expected, shown).expect("a drift");
    let correction = DriftCorrection::of(item_id, item.version(), drift);
    assert_eq!(store.correct_drifts("storefront", &[correction]).await.expect("correct").len(), 1);
    publish().await;
    let attempts = || async {
        let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
        trace.publish_attempts.iter().map(|attempt| attempt.version).collect::<Vec<_>>()
    };
    let drifts = || async { store.item_drifts(item_id, 10).await.expect("drifts").len() };
    assert_eq!((attempts().await, drifts().await), (vec![1, 2], 1));

    // A cutoff at the start of today keeps today's attempts and drifts; the refresh's drift
    // goes.
    let policy = |cutoff| RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base() - DEDUPE_HORIZON, chunk: 1 };
    let report = store.expire_journal(&policy(day_from_today(0)), &mut Recorded::default()).await.expect("expire");
    assert_eq!((report.attempt_days_dropped, report.drifts_pruned), (0, 1), "{report:?}");
    assert!(store.feed_drifts(&feed.key, 10).await.expect("feed drifts").is_empty());
    assert_eq!((attempts().await, drifts().await), (vec![1, 2], 1));
    let horizon = store.journal_horizon().await.expect("horizon");
    assert_eq!(horizon.and_then(|horizon| horizon.attempts_kept_since), None);

    // A cutoff inside today, after them: the drift goes, the attempts stay (they go by whole
    // days, as PostgreSQL drops its partitions; SQLite cut them at the cutoff).
    let tomorrow = day_from_today(1);
    let inside_today = tomorrow - chrono::Duration::seconds(1);
    let report = store.expire_journal(&policy(inside_today), &mut Recorded::default()).await.expect("expire");
    assert_eq!((report.attempt_days_dropped, report.drifts_pruned), (0, 1), "{report:?}");
    assert_eq!((attempts().await, drifts().await), (vec![1, 2], 0));
    let horizon = store.journal_horizon().await.expect("horizon");
    assert_eq!(horizon.and_then(|horizon| horizon.attempts_kept_since), None);

    // Past today: they go, and the trace says since when attempts are kept. The item and what
    // the storefront holds stay.
    let report = store.expire_journal(&policy(tomorrow), &mut Recorded::default()).await.expect("expire");
    assert_eq!((report.attempt_days_dropped, report.drifts_pruned), (1, 0), "{report:?}");
    assert_eq!((attempts().await, drifts().await), (vec![], 0));
    let horizon = store.journal_horizon().await.expect("horizon").expect("attempts were dropped");
    assert_eq!(horizon.attempts_kept_since, Some(tomorrow));
    let trace = store.item_trace(item_id).await.expect("trace").expect("exists");
    assert_eq!((trace.item.quantity(), trace.item.version()), (4, 2));
    assert!(trace.pending_publishes.is_empty());

    // Publishing goes on today, though retention dropped today's attempts ahead of time (on
    // PostgreSQL the day's partition is made again).
    store
        .apply_batch(&batch(vec![incoming(2, &key, StockChange::Updated { quantity: 6 }, 2, 3)]))
        .await
        .expect("apply");
    publish().await;
    assert_eq!(attempts().await, [3]);
}

pub(super) async fn resolved_dead_letters_past_the_retention_are_deleted_and_open_ones_stay<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    let (store, _guard) = factory(StoreConfig::default()).await;
    let (a, b) = (offer("canary", "acme", "A-1"), offer("canary", "acme", "B-1"));
    let events = vec![
        incoming(1, &a, StockChange::Updated { quantity: 4 }, 0, 1),
        incoming(2, &b, StockChange::Updated { quantity: 4 }, 0, 1),
    ];
    store.apply_batch(&batch(events)).await.expect("apply");
    // Both items' first versions are rejected: two open letters.
    dead_letter_every_due(&*store).await;
    // A's second version is accepted, which resolves A's letter; B's stays open.
    store.apply_batch(&batch(vec![incoming(3, &a, StockChange::Updated { quantity: 5 }, 1, 2)])).await.expect("apply");
    let claimed = store.claim_outbox("storefront", &immediate(10)).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    store.record_publish(&published(&claimed[0], PublishOutcome::Published)).await.expect("record");
    let letters = |open| {
        let store = &store;
        async move {
            let filter = DeadLetterFilter { open: Some(open), limit: 10, ..DeadLetterFilter::default() };
            let mut subjects: Vec<String> =
                store.dead_letters(&filter).await.expect("list").into_iter().map(|letter| letter.subject).collect();
            subjects.sort();
            subjects
        }
    };
    let (a_subject, b_subject) = (a.item_key().item_id().to_string(), b.item_key().item_id().to_string());
    assert_eq!((letters(true).await, letters(false).await), (vec![b_subject.clone()], vec![a_subject.clone()]));

    // A cutoff at the start of today: A was resolved after it, and stays.
    let policy = |cutoff| RetentionPolicy { journal_cutoff: cutoff, claim_cutoff: base() - DEDUPE_HORIZON, chunk: 1 };
    let report = store.expire_journal(&policy(day_from_today(0)), &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.dead_letters_pruned, 0, "{report:?}");
    assert_eq!(letters(false).await, [a_subject]);

    // Past today: A's resolved letter goes; B's, open and as old, stays, with the item's
    // failure still on record.
    let report = store.expire_journal(&policy(day_from_today(1)), &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.dead_letters_pruned, 1, "{report:?}");
    assert!(letters(false).await.is_empty());
    assert_eq!(letters(true).await, [b_subject]);
    let open = store.item_dead_letters(b.item_key().item_id()).await.expect("letters");
    assert_eq!(open.iter().map(|letter| letter.version).collect::<Vec<_>>(), [1]);
}

pub(super) async fn old_feed_windows_that_overlap_or_touch_are_merged_and_their_coverage_kept<G, F>(
    factory: impl FnOnce(StoreConfig) -> F,
) where
    F: std::future::Future<Output = Fresh<G>>,
{
    use crate::{CompletedWindow, WindowKind};
    let (store, _guard) = factory(StoreConfig::default()).await;
    let acme = super::feeds::settings("canary", "acme");
    store.upsert_feed(&acme).await.expect("upsert");
    let hours = |hours| base() + chrono::Duration::hours(hours);
    let window = |kind, since, until, completed| CompletedWindow {
        kind,
        since: hours(since),
        until: hours(until),
        completed_at: hours(completed),
        n_records: 100,
        n_pages: 1,
        n_windows: 1,
        requested_at: None,
    };
    // Four six-hourly incrementals overlapping by an hour, a backfill beside them, and one
    // incremental completed after the cutoff.
    let pulled = [
        window(WindowKind::Backfill, -48, -24, 1),
        window(WindowKind::Incremental, -24, -12, 2),
        window(WindowKind::Incremental, -13, -6, 3),
        window(WindowKind::Incremental, -7, 0, 4),
        window(WindowKind::Incremental, -1, 6, 30),
    ];
    for completed in &pulled {
        store.complete_window(&acme.key, completed).await.expect("complete");
    }
    let policy = RetentionPolicy { journal_cutoff: hours(10), claim_cutoff: base() - DEDUPE_HORIZON, chunk: 2 };
    let report = store.expire_journal(&policy, &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.feed_windows_compacted, 3, "{report:?}");
    let merged =
        CompletedWindow { n_records: 400, n_pages: 4, n_windows: 4, ..window(WindowKind::Backfill, -48, 0, 4) };
    assert_eq!(store.feed_windows(&acme.key).await.expect("windows"), [merged, pulled[4].clone()]);
    let report = store.expire_journal(&policy, &mut Recorded::default()).await.expect("expire");
    assert_eq!(report.feed_windows_compacted, 0, "merged once: {report:?}");
}
