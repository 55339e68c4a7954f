//! Supplier feeds as support and operators see them (issue 16): the seed's monitoring
//! queries over the feed store, pure apart from the reads. Whether a feed is current, behind
//! or stale by its sync frequency (or not live yet), the gaps since `go_live_date` no completed window covers
//! (with how many days behind each is), what was pulled per day, and the drift its last full
//! refresh found. The pull source uses the same window arithmetic (`go_live_at`, `gaps`).

use catalog_core::Classify;
pub use catalog_store::{gaps, gaps_at};
use catalog_store::{
    CompletedWindow, DeadLetter, FeedDriftRecord, FeedJournalDay, FeedKey, FeedSettings, FeedStore, StoreError,
    StoredFeed,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The first instant a feed's records count: midnight of `go_live_date` in its time zone, or
/// when the clocks jump on a day whose midnight a DST change skips.
pub fn go_live_at(go_live_date: NaiveDate, timezone: Tz) -> DateTime<Utc> {
    local_instant(timezone, go_live_date, NaiveTime::MIN)
}

/// `time` on `date` in `timezone`; a local time a DST change skips is when the clocks jumped
/// (the first local time after it that exists), and one it repeats is its first occurrence.
pub fn local_instant(timezone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let wanted = date.and_time(time);
    // Skipped: the first whole local minute that exists after it is when the clocks jumped
    // (gaps are 30 minutes to a day; tz transitions fall on whole minutes).
    for minutes in 0..=MAX_SKIPPED_MINUTES {
        match timezone.from_local_datetime(&(wanted + Duration::minutes(minutes))) {
            chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => return at.with_timezone(&Utc),
            chrono::LocalResult::None => {}
        }
    }
    Utc.from_utc_datetime(&wanted)
}

/// The longest run of local time a zone has ever skipped, in minutes, with room: a whole day
/// (Samoa, 2011-12-30).
const MAX_SKIPPED_MINUTES: i64 = 2 * 24 * 60;

/// How a feed keeps up, by its own sync frequency (decision 0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// A window completed within the last sync period.
    Current,
    /// The last completed window is one to two sync periods old: a run was missed.
    Behind,
    /// Nothing completed for two sync periods or more, or never.
    Stale,
    /// Its `go_live_date` has not come: nothing of it is pulled before (decision 0054).
    NotLive,
}

impl FeedState {
    /// The name shown and used as a label.
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedState::Current => "current",
            FeedState::Behind => "behind",
            FeedState::Stale => "stale",
            FeedState::NotLive => "not_live",
        }
    }
}

/// The seed's status query for a feed: current within one sync period of its last completed
/// window, behind within two, stale beyond or when no window ever completed.
pub fn feed_state(last_sync_at: Option<DateTime<Utc>>, sync_frequency_hours: u32, now: DateTime<Utc>) -> FeedState {
    let period = Duration::hours(i64::from(sync_frequency_hours));
    match last_sync_at {
        Some(at) if now - at <= period => FeedState::Current,
        Some(at) if now - at <= period * 2 => FeedState::Behind,
        _ => FeedState::Stale,
    }
}

/// When the feed `settings` describe goes live, if that is after `now`: nothing of it is
/// pulled before, and no manual run is asked for it (decision 0054). `None` too for a time
/// zone not known (its pulls stop with a `time_zone` dead letter, which its status shows).
pub fn goes_live_after(settings: &FeedSettings, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let timezone: Tz = settings.timezone.parse().ok()?;
    Some(go_live_at(settings.go_live_date, timezone)).filter(|go_live| now < *go_live)
}

/// A feed's state at `now`: not live before it goes live, else by its completed windows
/// (`feed_state`).
pub fn feed_state_at(feed: &StoredFeed, now: DateTime<Utc>) -> FeedState {
    match goes_live_after(&feed.settings, now) {
        Some(_) => FeedState::NotLive,
        None => feed_state(feed.last_sync_at, feed.settings.sync_frequency_hours, now),
    }
}

/// A span since going live that no completed window covers: backfill pulls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedGap {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Whole days from the gap's start to now.
    pub days_behind: i64,
}

/// What one day's completed windows pulled (by the day, UTC, they completed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayPulled {
    pub date: NaiveDate,
    pub windows: u64,
    pub records: u64,
    pub pages: u64,
}

/// One feed's status: its settings and state, whether it keeps up, its gaps, what it pulled,
/// and the drift its last full refresh found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    pub feed: StoredFeed,
    pub state: FeedState,
    /// Every window pulled to its end, merged ones included.
    pub windows_completed: u64,
    /// Oldest first; the time since the newest completed window is not a gap (the next
    /// incremental covers it).
    pub gaps: Vec<FeedGap>,
    /// The oldest gap's days behind; 0 without gaps.
    pub days_behind: i64,
    /// Newest day first, the last [`PULLED_DAYS`] days that completed a window.
    pub pulled_by_day: Vec<DayPulled>,
    /// The differences the last full refresh found (each corrected as an event).
    pub last_refresh_drift: Vec<FeedDriftRecord>,
    /// The feed's records as the journal decided them, per day of first reception (the last
    /// [`PULLED_DAYS`] days, newest first): applied, stale, rejected…, and duplicates (records
    /// pulled again).
    pub journal_by_day: Vec<FeedJournalDay>,
    /// The feed's open pull dead letter: its last run failed (why, since when, how often),
    /// and the worker tries again after the failure hold. `None` once a run completes. The
    /// `state` above is the seed's, by completed windows alone: a feed can be `current` and
    /// failing since.
    pub failing: Option<DeadLetter>,
}

/// How many days of pulls a status lists.
pub const PULLED_DAYS: usize = 14;

/// Most drift records a status lists.
pub const MAX_DRIFT_SHOWN: usize = 500;

/// The status of `feed` at `now` from its completed windows, its newest drift records and its
/// journal per day.
pub fn status(
    feed: StoredFeed,
    windows: &[CompletedWindow],
    newest_drift: Vec<FeedDriftRecord>,
    journal_by_day: Vec<FeedJournalDay>,
    now: DateTime<Utc>,
) -> Result<FeedStatus, StoreError> {
    // A zone this build does not know (written by hand, or dropped by a newer tz database):
    // its pulls stop with a `time_zone` dead letter, which the status shows as failing; the
    // status itself reads its go-live in UTC rather than fail, and every other feed's with it.
    let timezone: Tz = feed.settings.timezone.parse().unwrap_or_else(|_| {
        tracing::warn!(feed = %feed.settings.key, timezone = %feed.settings.timezone, "the feed's time zone is unknown: its status reads its go-live in UTC");
        Tz::UTC
    });
    let go_live = go_live_at(feed.settings.go_live_date, timezone);
    let gaps: Vec<FeedGap> = gaps_at(go_live, windows, now)
        .into_iter()
        .map(|(since, until)| FeedGap { since, until, days_behind: (now - since).num_days().max(0) })
        .collect();
    let mut by_day: std::collections::BTreeMap<NaiveDate, DayPulled> = std::collections::BTreeMap::new();
    // A row compaction merged stands for windows of many days (decision 0035): counted in
    // `windows_completed`, not per day.
    for window in windows.iter().filter(|window| window.n_windows == 1) {
        let date = window.completed_at.date_naive();
        let day = by_day.entry(date).or_insert(DayPulled { date, windows: 0, records: 0, pages: 0 });
        day.windows += 1;
        day.records += window.n_records;
        day.pages += window.n_pages;
    }
    let last_refresh_drift = match feed.last_full_refresh_at {
        Some(refreshed_at) => newest_drift.into_iter().filter(|drift| drift.detected_at == refreshed_at).collect(),
        None => Vec::new(),
    };
    Ok(FeedStatus {
        state: feed_state_at(&feed, now),
        windows_completed: windows.iter().map(|window| window.n_windows).sum(),
        days_behind: gaps.first().map_or(0, |gap| gap.days_behind),
        gaps,
        pulled_by_day: by_day.into_values().rev().take(PULLED_DAYS).collect(),
        last_refresh_drift,
        journal_by_day,
        feed,
        failing: None,
    })
}

/// The status of one feed, or `None` for a feed the store does not know.
pub async fn feed_status(
    store: &dyn FeedStore,
    key: &FeedKey,
    now: DateTime<Utc>,
) -> Result<Option<FeedStatus>, StoreError> {
    let Some(feed) = store.feed(key).await? else { return Ok(None) };
    let open = store.open_pull_dead_letters().await?;
    read_status(store, feed, &open, now).await.map(Some)
}

/// The status of every feed, by tenant and supplier.
pub async fn feed_statuses(store: &dyn FeedStore, now: DateTime<Utc>) -> Result<Vec<FeedStatus>, StoreError> {
    let mut statuses = Vec::new();
    let open = store.open_pull_dead_letters().await?;
    for feed in store.feeds().await? {
        statuses.push(read_status(store, feed, &open, now).await?);
    }
    Ok(statuses)
}

async fn read_status(
    store: &dyn FeedStore,
    feed: StoredFeed,
    open_pull_dead_letters: &[DeadLetter],
    now: DateTime<Utc>,
) -> Result<FeedStatus, StoreError> {
    let key = &feed.settings.key;
    let windows = store.feed_windows(key).await?;
    let drift = store.feed_drifts(key, MAX_DRIFT_SHOWN).await?;
    let journal = store.feed_journal_by_day(key, now - Duration::days(PULLED_DAYS as i64)).await?;
    let failing = pull_dead_letter(open_pull_dead_letters, key).cloned();
    Ok(FeedStatus { failing, ..status(feed, &windows, drift, journal, now)? })
}

/// `key`'s letter among the open pull dead letters.
pub fn pull_dead_letter<'a>(open_pull_dead_letters: &'a [DeadLetter], key: &FeedKey) -> Option<&'a DeadLetter> {
    let subject = key.to_string();
    open_pull_dead_letters.iter().find(|letter| letter.subject == subject)
}

/// Every `interval` until `shutdown`: each feed's state, whether it is failing and whether
/// it is switched on, as gauges (`catalog_feed_state`, `catalog_feed_failing`,
/// `catalog_feed_sync_enabled`) read from the store, so they move while no run completes
/// and agree across workers. A read that fails leaves the gauges as they were until the
/// next: `catalog_report_last_success_timestamp_seconds{report="feeds"}` says how old they are
/// (`CatalogReportsStale`).
pub async fn report_feeds(
    store: std::sync::Arc<dyn FeedStore>,
    metrics: crate::Metrics,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    metrics.report_started("feeds");
    loop {
        match report_feeds_once(&*store, &metrics, Utc::now()).await {
            Ok(()) => metrics.report_succeeded("feeds"),
            Err(error) => {
                tracing::warn!(%error, class = error.failure_class().as_str(), "reading the feeds for their gauges failed: they show the last read's; trying again");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass of [`report_feeds`] at `now`.
pub async fn report_feeds_once(
    store: &dyn FeedStore,
    metrics: &crate::Metrics,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let open = store.open_pull_dead_letters().await?;
    for feed in store.feeds().await? {
        let key = &feed.settings.key;
        let label = key.to_string();
        let failing = pull_dead_letter(&open, key).is_some();
        metrics.feed_failing.with_label_values(&[&label]).set(i64::from(failing));
        metrics.feed_sync_enabled.with_label_values(&[&label]).set(i64::from(feed.settings.sync_enabled));
        let state = feed_state_at(&feed, now);
        for each in [FeedState::Current, FeedState::Behind, FeedState::Stale, FeedState::NotLive] {
            metrics.feed_state.with_label_values(&[&label, each.as_str()]).set(i64::from(each == state));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use catalog_core::{Sku, SupplierId, TenantId};
    use catalog_store::{FeedDrift, FeedSettings, WindowKind};
    use chrono::NaiveTime;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    fn key() -> FeedKey {
        FeedKey { tenant: TenantId::parse("canary").unwrap(), supplier: SupplierId::parse("acme").unwrap() }
    }

    fn feed(last_sync_at: Option<&str>, last_full_refresh_at: Option<&str>) -> StoredFeed {
        StoredFeed {
            settings: FeedSettings {
                key: key(),
                base_url: "http://127.0.0.1:1".to_owned(),
                token_env: "ACME_TOKEN".to_owned(),
                go_live_date: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
                sync_frequency_hours: 6,
                timezone: "Europe/Berlin".to_owned(),
                run_times: vec![NaiveTime::from_hms_opt(0, 0, 0).unwrap()],
                requests_per_second: None,
                sync_enabled: true,
            },
            last_sync_at: last_sync_at.map(at),
            initial_sync_completed: last_full_refresh_at.is_some(),
            last_full_refresh_at: last_full_refresh_at.map(at),
            run_request: None,
            supplier_hold_until: None,
        }
    }

    fn window(kind: WindowKind, since: &str, until: &str, completed_at: &str, n_records: u64) -> CompletedWindow {
        CompletedWindow {
            kind,
            since: at(since),
            until: at(until),
            completed_at: at(completed_at),
            n_records,
            n_pages: n_records.div_ceil(1_000),
            n_windows: 1,
            requested_at: None,
        }
    }

    #[test]
    fn going_live_is_local_midnight_or_when_the_clocks_jump_past_it() {
        let cases = [
            ("Europe/Berlin", (2026, 6, 1), "2026-05-31T22:00:00Z"),
            // Egypt: clocks jump from 00:00 to 01:00 on the last Friday of April.
            ("Africa/Cairo", (2026, 4, 24), "2026-04-23T22:00:00Z"),
            // Chile: clocks jump from 00:00 to 01:00 on the first Sunday of September.
            ("America/Santiago", (2026, 9, 6), "2026-09-06T04:00:00Z"),
        ];
        for (zone, (year, month, day), expected) in cases {
            let timezone: Tz = zone.parse().expect("zone");
            let date = NaiveDate::from_ymd_opt(year, month, day).expect("date");
            assert_eq!(go_live_at(date, timezone), at(expected), "{zone} {date}");
        }
    }

    #[test]
    fn a_local_time_the_clocks_skip_is_when_they_jump() {
        let cases = [
            // Berlin jumps from 02:00 to 03:00 CEST (01:00 UTC): every skipped minute runs then.
            ("Europe/Berlin", (2026, 3, 29), (2, 0), "2026-03-29T01:00:00Z"),
            ("Europe/Berlin", (2026, 3, 29), (2, 15), "2026-03-29T01:00:00Z"),
            ("Europe/Berlin", (2026, 3, 29), (2, 59), "2026-03-29T01:00:00Z"),
            ("Europe/Berlin", (2026, 3, 29), (3, 0), "2026-03-29T01:00:00Z"),
            ("Europe/Berlin", (2026, 3, 29), (1, 59), "2026-03-29T00:59:00Z"),
            // Lord Howe Island jumps half an hour, from 02:00 to 02:30 (+11:00).
            ("Australia/Lord_Howe", (2026, 10, 4), (2, 10), "2026-10-03T15:30:00Z"),
            // Samoa skipped the whole of 2011-12-30.
            ("Pacific/Apia", (2011, 12, 30), (12, 0), "2011-12-30T10:00:00Z"),
        ];
        for (zone, (year, month, day), (hour, minute), expected) in cases {
            let timezone: Tz = zone.parse().expect("zone");
            let date = NaiveDate::from_ymd_opt(year, month, day).expect("date");
            let time = NaiveTime::from_hms_opt(hour, minute, 0).expect("time");
            assert_eq!(local_instant(timezone, date, time), at(expected), "{zone} {date} {time}");
        }
    }

    #[test]
    fn a_feed_is_current_within_one_period_behind_within_two_and_stale_after() {
        let now = at("2026-06-01T12:00:00Z");
        let cases = [
            (Some("2026-06-01T06:00:00Z"), FeedState::Current),
            (Some("2026-06-01T05:59:59Z"), FeedState::Behind),
            (Some("2026-06-01T00:00:00Z"), FeedState::Behind),
            (Some("2026-05-31T23:59:59Z"), FeedState::Stale),
            (None, FeedState::Stale),
        ];
        for (last_sync_at, expected) in cases {
            assert_eq!(feed_state(last_sync_at.map(at), 6, now), expected, "{last_sync_at:?}");
        }
    }

    #[test]
    fn status_lists_gaps_pulls_per_day_and_the_last_refresh_drift() {
        let now = at("2026-06-01T12:00:00Z");
        // Going live 2026-05-01 in Berlin is 2026-04-30T22:00Z. Backfilled: the first week;
        // incremental: the last day. Left: 2026-05-07T22:00Z .. 2026-05-31T06:00Z.
        let windows = [
            window(WindowKind::Backfill, "2026-04-30T22:00:00Z", "2026-05-07T22:00:00Z", "2026-05-31T08:00:00Z", 2_500),
            window(
                WindowKind::Incremental,
                "2026-05-31T06:00:00Z",
                "2026-06-01T06:00:00Z",
                "2026-06-01T06:00:05Z",
                700,
            ),
            window(
                WindowKind::Incremental,
                "2026-05-30T06:00:00Z",
                "2026-05-31T06:00:00Z",
                "2026-05-31T06:00:04Z",
                300,
            ),
        ];
        let drift = |sku: &str, detected_at: &str| FeedDriftRecord {
            key: key(),
            drift: FeedDrift { sku: Sku::parse(sku).unwrap(), stored: Some(3), supplier: 5, as_of: at(detected_at) },
            detected_at: at(detected_at),
        };
        let newest_drift = vec![drift("A-2", "2026-05-31T02:00:00Z"), drift("A-1", "2026-05-24T02:00:00Z")];
        let status = status(
            feed(Some("2026-06-01T06:00:05Z"), Some("2026-05-31T02:00:00Z")),
            &windows,
            newest_drift,
            Vec::new(),
            now,
        )
        .expect("valid feed");

        assert_eq!(status.state, FeedState::Current);
        assert_eq!(status.windows_completed, 3);
        assert_eq!(
            status.gaps,
            [FeedGap { since: at("2026-05-07T22:00:00Z"), until: at("2026-05-30T06:00:00Z"), days_behind: 24 }]
        );
        assert_eq!(status.days_behind, 24);
        let days: Vec<(String, u64, u64)> =
            status.pulled_by_day.iter().map(|day| (day.date.to_string(), day.windows, day.records)).collect();
        assert_eq!(days, [("2026-06-01".to_owned(), 1, 700), ("2026-05-31".to_owned(), 2, 2_800)]);
        let skus: Vec<&str> = status.last_refresh_drift.iter().map(|record| record.drift.sku.as_str()).collect();
        assert_eq!(skus, ["A-2"], "only the last refresh's drift");
    }

    #[test]
    fn a_feed_before_its_go_live_is_not_live_with_no_gap() {
        // Going live 2026-05-01 in Berlin is 2026-04-30T22:00Z.
        for (now, expected) in [("2026-04-30T21:59:59Z", "not_live"), ("2026-04-30T22:00:00Z", "stale")] {
            let status = status(feed(None, None), &[], Vec::new(), Vec::new(), at(now)).expect("valid feed");
            assert_eq!((status.state.as_str(), status.gaps.len(), status.days_behind), (expected, 0, 0), "at {now}");
        }
    }

    #[test]
    fn a_feed_never_pulled_is_stale_with_one_gap_since_going_live() {
        let now = at("2026-06-01T12:00:00Z");
        let status = status(feed(None, None), &[], Vec::new(), Vec::new(), now).expect("valid feed");
        assert_eq!(status.state, FeedState::Stale);
        assert_eq!(status.gaps.len(), 1);
        assert_eq!((status.gaps[0].since, status.gaps[0].until), (at("2026-04-30T22:00:00Z"), now));
        assert!(status.last_refresh_drift.is_empty());
    }
}
