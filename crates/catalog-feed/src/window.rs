//! Windows of a feed, pure: the incremental window due at a run, the gaps since
//! `go_live_date` no completed window covers, the 7-day chunk backfill pulls next, and the
//! cursor a window's progress is checkpointed as. No clock is read here: `now` is passed in.

pub use catalog_app::feeds::{gaps, gaps_at, go_live_at};
use catalog_store::{CompletedWindow, FeedRunKind, FeedRunRequest, WindowKind};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How far back of the last completed incremental window the next one starts, by default,
/// so records a supplier stamps late are still caught.
pub const DEFAULT_OVERLAP: Duration = Duration::hours(24);

/// How much of a gap one backfill window covers at most.
pub const BACKFILL_CHUNK: Duration = Duration::days(7);

/// A window of the feed: records with `since <= updated_at < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "kind_name")]
    pub kind: WindowKind,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

mod kind_name {
    use catalog_store::WindowKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(kind: &WindowKind, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(kind.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WindowKind, D::Error> {
        let name = String::deserialize(deserializer)?;
        WindowKind::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown window kind {name:?}")))
    }
}

/// Where a window stands, stored as the checkpoint's cursor with the batch that got there:
/// the window, the cursor of its next page (`None`: pulled to its end), what this pass of it
/// pulled so far, and the manual run it is pulled for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCursor {
    pub window: Window,
    pub next: Option<String>,
    pub n_pages: u64,
    pub n_records: u64,
    /// The `requested_at` of the manual run the window is pulled for, if any: a run that
    /// finds the window on the checkpoint knows what is left of the request
    /// ([`left_of_request`]). Absent from cursors stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<DateTime<Utc>>,
}

impl WindowCursor {
    /// The checkpoint's cursor text.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("a window cursor always serializes")
    }

    /// A stored cursor, or `None` for one this build does not read (it is then ignored:
    /// the windows are planned from the completed ones, nothing is lost).
    pub fn parse(stored: &str) -> Option<WindowCursor> {
        serde_json::from_str(stored).ok()
    }
}

/// What is left of the manual run `request` once `resumed`, the window on the checkpoint, is
/// pulled to its end: nothing when that window was the request's incremental or its last
/// backfill chunk; the rest of its range after one of its chunks (they are pulled in order,
/// so the chunks before it were pulled too); all of it when the window was not the
/// request's (another run's, or another request's). `None`: the request is done.
pub fn left_of_request(request: &FeedRunRequest, resumed: Option<&WindowCursor>) -> Option<FeedRunRequest> {
    let Some(resumed) = resumed.filter(|resumed| resumed.request == Some(request.requested_at)) else {
        return Some(request.clone());
    };
    let kind = match request.kind {
        FeedRunKind::Backfill { until, .. } if resumed.window.until < until => {
            FeedRunKind::Backfill { since: resumed.window.until, until }
        }
        FeedRunKind::Backfill { .. } | FeedRunKind::Incremental => return None,
        // A full refresh keeps no cursor: it runs again whole.
        FeedRunKind::FullRefresh => FeedRunKind::FullRefresh,
    };
    Some(FeedRunRequest { kind, ..request.clone() })
}

/// Whether a completed window's stamp names the manual run stamped `request`: compared to
/// the microsecond, as the stores keep it (a stamp taken in memory holds nanoseconds).
pub(crate) fn same_request(stamp: Option<DateTime<Utc>>, request: Option<DateTime<Utc>>) -> bool {
    stamp.map(|at| at.timestamp_micros()) == request.map(|at| at.timestamp_micros())
}

/// The end of the newest completed incremental window that does not end after `now`. One that
/// does was pulled while the clock ran ahead; counted, it would hold every incremental back
/// until the clock caught up with it, and the next would start after records updated in
/// between (decision 0015). Left out, the next incremental starts at the last window pulled
/// before the clock ran ahead, and pulls again what was pulled since (duplicates, by id).
pub fn last_incremental_until(completed: &[CompletedWindow], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    completed
        .iter()
        .filter(|window| window.kind == WindowKind::Incremental && window.until <= now)
        .map(|window| window.until)
        .max()
}

/// The incremental window due at `now`: from the end of the last completed incremental
/// window ([`last_incremental_until`]; without one, one sync period back), minus `overlap`
/// either way, to `now`; never before going live. `None` when that is empty.
pub fn incremental_window(
    go_live: DateTime<Utc>,
    sync_frequency: Duration,
    overlap: Duration,
    completed: &[CompletedWindow],
    now: DateTime<Utc>,
) -> Option<Window> {
    let last_until = last_incremental_until(completed, now);
    let since = (last_until.unwrap_or(now - sync_frequency) - overlap).max(go_live);
    (since < now).then_some(Window { kind: WindowKind::Incremental, since, until: now })
}

/// The backfill window to pull next at `now`: the first [`BACKFILL_CHUNK`] of the oldest gap,
/// gaps ending at the newest completed window ([`gaps_at`]).
pub fn backfill_window(go_live: DateTime<Utc>, completed: &[CompletedWindow], now: DateTime<Utc>) -> Option<Window> {
    gaps_at(go_live, completed, now).first().map(|(since, end)| Window {
        kind: WindowKind::Backfill,
        since: *since,
        until: (*since + BACKFILL_CHUNK).min(*end),
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use chrono_tz::Tz;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    fn done(kind: WindowKind, since: &str, until: &str) -> CompletedWindow {
        CompletedWindow {
            kind,
            since: at(since),
            until: at(until),
            completed_at: at(until),
            n_records: 0,
            n_pages: 0,
            n_windows: 1,
            requested_at: None,
        }
    }

    fn show(windows: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
        windows.iter().map(|(since, until)| format!("{since} .. {until}\n")).collect()
    }

    #[test]
    fn gaps_are_what_no_completed_window_covers() {
        let completed = [
            done(WindowKind::Backfill, "2026-05-01T00:00:00Z", "2026-05-08T00:00:00Z"),
            done(WindowKind::Backfill, "2026-05-08T00:00:00Z", "2026-05-10T00:00:00Z"),
            done(WindowKind::Incremental, "2026-05-20T00:00:00Z", "2026-05-21T06:00:00Z"),
            done(WindowKind::Incremental, "2026-05-21T00:00:00Z", "2026-05-21T12:00:00Z"),
        ];
        let found = gaps(at("2026-04-28T22:00:00Z"), &completed, at("2026-05-22T00:00:00Z"));
        insta::assert_snapshot!(show(&found), @r"
        2026-04-28 22:00:00 UTC .. 2026-05-01 00:00:00 UTC
        2026-05-10 00:00:00 UTC .. 2026-05-20 00:00:00 UTC
        2026-05-21 12:00:00 UTC .. 2026-05-22 00:00:00 UTC
        ");
        let first = backfill_window(at("2026-05-01T00:00:00Z"), &completed, at("2026-05-22T00:00:00Z")).expect("a gap");
        assert_eq!(
            (first.since, first.until),
            (at("2026-05-10T00:00:00Z"), at("2026-05-17T00:00:00Z")),
            "7-day chunks"
        );
        assert!(gaps(at("2026-05-01T00:00:00Z"), &completed[..2], at("2026-05-10T00:00:00Z")).is_empty());
    }

    #[test]
    fn the_time_since_the_newest_window_is_no_gap_to_backfill() {
        let go_live = at("2026-05-01T00:00:00Z");
        let completed = [
            done(WindowKind::Backfill, "2026-05-01T00:00:00Z", "2026-05-08T00:00:00Z"),
            done(WindowKind::Incremental, "2026-05-07T00:00:00Z", "2026-05-08T12:00:00Z"),
        ];
        // A second after the incremental ended (the time the pull took), and a day after.
        for now in [at("2026-05-08T12:00:01Z"), at("2026-05-09T12:00:00Z")] {
            assert_eq!(backfill_window(go_live, &completed, now), None, "at {now}");
        }
        // Before any window completed, going live to now is the one gap.
        let first = backfill_window(go_live, &[], at("2026-05-03T00:00:00Z")).expect("a gap");
        assert_eq!((first.since, first.until), (go_live, at("2026-05-03T00:00:00Z")));
    }

    #[test]
    fn an_incremental_window_overlaps_the_last_one_and_never_starts_before_go_live() {
        let go_live = at("2026-05-01T00:00:00Z");
        let six_hours = Duration::hours(6);
        let now = at("2026-05-21T18:00:00Z");
        let completed = [done(WindowKind::Incremental, "2026-05-20T00:00:00Z", "2026-05-21T12:00:00Z")];
        let window = incremental_window(go_live, six_hours, DEFAULT_OVERLAP, &completed, now).expect("due");
        assert_eq!((window.since, window.until), (at("2026-05-20T12:00:00Z"), now));
        let first = incremental_window(go_live, six_hours, DEFAULT_OVERLAP, &[], now).expect("due");
        assert_eq!(first.since, at("2026-05-20T12:00:00Z"), "one period and the overlap back");
        let young = incremental_window(at("2026-05-21T17:00:00Z"), six_hours, DEFAULT_OVERLAP, &[], now).expect("due");
        assert_eq!(young.since, at("2026-05-21T17:00:00Z"));
        assert_eq!(incremental_window(now, six_hours, DEFAULT_OVERLAP, &[], now), None);
    }

    #[test]
    fn a_window_pulled_while_the_clock_ran_ahead_holds_no_incremental_back() {
        let go_live = at("2026-05-01T00:00:00Z");
        let six_hours = Duration::hours(6);
        // Pulled at 12:00 with the clock right, then at 18:00 with the clock three days ahead.
        let completed = [
            done(WindowKind::Incremental, "2026-05-19T12:00:00Z", "2026-05-20T12:00:00Z"),
            done(WindowKind::Incremental, "2026-05-22T12:00:00Z", "2026-05-23T18:00:00Z"),
        ];
        // The clock is right again, six hours later.
        let now = at("2026-05-21T00:00:00Z");
        let window = incremental_window(go_live, six_hours, DEFAULT_OVERLAP, &completed, now).expect("due");
        assert_eq!((window.since, window.until), (at("2026-05-19T12:00:00Z"), now), "from the last window before");
        assert_eq!(last_incremental_until(&completed, now), Some(at("2026-05-20T12:00:00Z")));
        // Once the clock passes the window pulled ahead, it counts as any other.
        let later = at("2026-05-23T18:00:00Z");
        assert_eq!(last_incremental_until(&completed, later), Some(later));
    }

    #[test]
    fn go_live_is_local_midnight_and_cursors_round_trip() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let date = NaiveDate::from_ymd_opt(2026, 6, 1).expect("date");
        assert_eq!(go_live_at(date, berlin), at("2026-05-31T22:00:00Z"));
        let cursor = WindowCursor {
            window: Window {
                kind: WindowKind::Backfill,
                since: at("2026-05-01T00:00:00Z"),
                until: at("2026-05-08T00:00:00Z"),
            },
            next: Some("opaque/1".to_owned()),
            n_pages: 3,
            n_records: 2_000,
            request: Some(at("2026-06-01T09:00:00Z")),
        };
        assert_eq!(WindowCursor::parse(&cursor.render()), Some(cursor.clone()));
        assert_eq!(WindowCursor::parse("c1"), None);
        // A cursor stored before the request was kept reads as no request's.
        let older = r#"{"window":{"kind":"backfill","since":"2026-05-01T00:00:00Z","until":"2026-05-08T00:00:00Z"},"next":null,"n_pages":3,"n_records":2000}"#;
        assert_eq!(WindowCursor::parse(older).map(|cursor| cursor.request), Some(None));
    }

    #[test]
    fn a_request_whose_window_was_resumed_goes_on_after_it() {
        let request =
            |kind| FeedRunRequest { kind, requested_by: "otto".to_owned(), requested_at: at("2026-06-01T09:00:00Z") };
        let cursor = |kind, since: &str, until: &str, request: Option<&str>| WindowCursor {
            window: Window { kind, since: at(since), until: at(until) },
            next: None,
            n_pages: 1,
            n_records: 1,
            request: request.map(at),
        };
        let backfill =
            request(FeedRunKind::Backfill { since: at("2026-05-01T00:00:00Z"), until: at("2026-05-20T00:00:00Z") });
        let chunk = |request| cursor(WindowKind::Backfill, "2026-05-08T00:00:00Z", "2026-05-15T00:00:00Z", request);
        let ours = chunk(Some("2026-06-01T09:00:00Z"));
        let left = left_of_request(&backfill, Some(&ours)).expect("a chunk is left");
        assert_eq!(
            left.kind,
            FeedRunKind::Backfill { since: at("2026-05-15T00:00:00Z"), until: at("2026-05-20T00:00:00Z") }
        );
        assert_eq!(left.requested_at, backfill.requested_at, "the same request, cleared by its time");
        let last =
            cursor(WindowKind::Backfill, "2026-05-15T00:00:00Z", "2026-05-20T00:00:00Z", Some("2026-06-01T09:00:00Z"));
        assert_eq!(left_of_request(&backfill, Some(&last)), None, "its last chunk: done");
        for other in [None, Some(&chunk(None)), Some(&chunk(Some("2026-06-01T08:00:00Z")))] {
            assert_eq!(left_of_request(&backfill, other), Some(backfill.clone()), "not its window: {other:?}");
        }
        let incremental = request(FeedRunKind::Incremental);
        let window = cursor(
            WindowKind::Incremental,
            "2026-05-31T06:00:00Z",
            "2026-06-01T09:00:00Z",
            Some("2026-06-01T09:00:00Z"),
        );
        assert_eq!(left_of_request(&incremental, Some(&window)), None);
    }
}
