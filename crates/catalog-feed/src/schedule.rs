//! When a feed's work is due, pure but for the clock, which is injected (`Clock`): its
//! incrementals at its run times (`cadence`), the weekly full refresh (Sunday 02:00 local), and the
//! order work is picked in: a due incremental first, then a due full refresh, then backfill
//! chunks, so backfill never delays an incremental by more than one chunk.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

/// Where the scheduler reads the time and waits: the system clock in production, a clock
/// that jumps in tests.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `at` (or at once if it has passed), or when `shutdown` fires.
    async fn sleep_until(&self, at: DateTime<Utc>, shutdown: &CancellationToken);
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>, shutdown: &CancellationToken) {
        // In steps of at most a minute, so a wall clock set forward is noticed.
        loop {
            let left = at - Utc::now();
            if left <= Duration::zero() {
                return;
            }
            let step = left.min(Duration::minutes(1)).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// A clock for tests: sleeping moves it to the wake-up time at once, and it fires `end` once
/// it would pass `stop_at`, so a week of schedule runs in milliseconds.
#[derive(Debug)]
pub struct JumpingClock {
    now: Mutex<DateTime<Utc>>,
    stop_at: DateTime<Utc>,
    end: CancellationToken,
}

impl JumpingClock {
    pub fn new(start: DateTime<Utc>, stop_at: DateTime<Utc>, end: CancellationToken) -> Arc<JumpingClock> {
        Arc::new(JumpingClock { now: Mutex::new(start), stop_at, end })
    }
}

#[async_trait]
impl Clock for JumpingClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn sleep_until(&self, at: DateTime<Utc>, _shutdown: &CancellationToken) {
        if at >= self.stop_at {
            self.end.cancel();
            return;
        }
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = (*now).max(at);
    }
}

use crate::cadence::{local_instant, Cadence};

/// The weekly full refresh: Sunday at this local time.
pub const FULL_REFRESH_DAY: Weekday = Weekday::Sun;

fn refreshes_around(timezone: Tz, time: NaiveTime, around: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let today = around.with_timezone(&timezone).date_naive();
    (-8..=8)
        .filter_map(|days| today.checked_add_signed(Duration::days(days)))
        .filter(|date| date.weekday() == FULL_REFRESH_DAY)
        .map(|date| local_instant(timezone, date, time))
        .collect()
}

/// The first weekly full refresh after `after`.
pub fn next_full_refresh_at(timezone: Tz, time: NaiveTime, after: DateTime<Utc>) -> DateTime<Utc> {
    refreshes_around(timezone, time, after).into_iter().find(|at| *at > after).unwrap_or(after + Duration::days(7))
}

/// The last weekly full refresh at or before `at`.
pub fn previous_full_refresh_at(timezone: Tz, time: NaiveTime, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    refreshes_around(timezone, time, at).into_iter().rev().find(|refresh| *refresh <= at)
}

/// Work a feed can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Incremental,
    FullRefresh,
    Backfill,
}

/// How a failed run holds its feed back (decision 0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// When the run failed.
    pub failed_at: DateTime<Utc>,
    /// No scheduled work is tried before this.
    pub until: DateTime<Utc>,
    /// The supplier asked for no request before this (a 429 whose `Retry-After` ended the
    /// run): a manual run waits for it too.
    pub supplier_until: Option<DateTime<Utc>>,
    /// The `requested_at` of the manual run waiting when the run failed (the failed run's
    /// own, if it was one): it waits out the hold. A request is told from another by this
    /// stamp, never by comparing it with `failed_at`: the stamp is the admin service's clock.
    pub request_waiting: Option<DateTime<Utc>>,
}

/// What a feed's scheduler knows: when its next incremental and full refresh are due,
/// whether gaps are left, and how long a failure holds it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub next_incremental: DateTime<Utc>,
    pub next_full_refresh: DateTime<Utc>,
    /// Gaps are left since going live (until backfill finds none).
    pub backfill_pending: bool,
    /// A full refresh completed once: until then the first one waits for backfill to end,
    /// so the drift it records is drift, not history not pulled yet.
    pub refreshed_before: bool,
    /// The last scheduled full refresh failed: a backfill, if gaps are left, goes before the
    /// refresh is tried again (one that keeps failing, a snapshot the supplier cannot serve,
    /// held back every backfill for as long as it failed). Cleared by the next backfill, or a
    /// refresh that completes.
    pub refresh_failed: bool,
    /// After a failed run, until one succeeds.
    pub hold: Option<Hold>,
    /// When the feed goes live: nothing is due before (decision 0054).
    pub live_at: DateTime<Utc>,
}

impl Plan {
    /// The plan at start-up: an incremental is due at once if none covers the last run time,
    /// a full refresh if none ran since the last weekly slot. A feed that goes live after
    /// `now` is planned as it would be at `go_live`: nothing is due before.
    pub fn start(
        cadence: Cadence<'_>,
        refresh_time: NaiveTime,
        last_incremental_until: Option<DateTime<Utc>>,
        last_full_refresh_at: Option<DateTime<Utc>>,
        go_live: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Plan {
        let now = now.max(go_live);
        let next_incremental = cadence.next_incremental_at(last_incremental_until, now);
        let timezone = cadence.timezone;
        let previous_refresh = previous_full_refresh_at(timezone, refresh_time, now);
        let next_full_refresh = match (previous_refresh, last_full_refresh_at) {
            (Some(previous), Some(done)) if done >= previous => next_full_refresh_at(timezone, refresh_time, now),
            (Some(previous), _) => previous,
            (None, _) => now,
        };
        Plan {
            next_incremental,
            next_full_refresh,
            backfill_pending: true,
            refreshed_before: last_full_refresh_at.is_some(),
            refresh_failed: false,
            hold: None,
            live_at: go_live,
        }
    }

    /// Holds the feed until `until`, which its supplier asked for (a `Retry-After` that ended
    /// a run, this loop's or another's), if that is after `now` and after any hold in force;
    /// a manual run waits for it too. Whether that held it longer.
    pub fn hold_for_the_supplier(&mut self, until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if until <= now {
            return false;
        }
        // The supplier's time and the failure hold are merged each on its own: a manual run
        // asked for after a failure waits for the first alone, so a longer failure hold must
        // not swallow a supplier's time.
        let hold = self.hold.unwrap_or(Hold { failed_at: now, until, supplier_until: None, request_waiting: None });
        let supplier_until = hold.supplier_until.map_or(until, |held| held.max(until));
        let merged = Hold { until: hold.until.max(until), supplier_until: Some(supplier_until), ..hold };
        let longer = self.hold.is_none_or(|before| before.supplier_until != merged.supplier_until);
        self.hold = Some(merged);
        longer
    }

    /// When a manual run asked for at `requested_at` may run (at once if that has passed):
    /// not before going live. One asked for after the last run failed (an operator who
    /// mended the cause: another request than the one waiting then) waits only for a
    /// supplier's `Retry-After`; the one waiting then, whose own run may be the one that
    /// failed, waits out the hold, like scheduled work.
    pub fn manual_run_from(&self, requested_at: DateTime<Utc>) -> DateTime<Utc> {
        let held = match self.hold {
            Some(hold) if hold.request_waiting != Some(requested_at) => hold.supplier_until,
            Some(hold) => Some(hold.until),
            None => None,
        };
        held.map_or(self.live_at, |held| held.max(self.live_at))
    }

    /// The work to do at `now`, most urgent first; `None`: sleep until [`Plan::wake_at`].
    pub fn next_work(&self, now: DateTime<Utc>) -> Option<Work> {
        if now < self.live_at || self.hold.is_some_and(|hold| now < hold.until) {
            None
        } else if now >= self.next_incremental {
            Some(Work::Incremental)
        } else if now >= self.next_full_refresh
            && (self.refreshed_before || !self.backfill_pending)
            && !(self.refresh_failed && self.backfill_pending)
        {
            Some(Work::FullRefresh)
        } else if self.backfill_pending {
            Some(Work::Backfill)
        } else {
            None
        }
    }

    /// When something is next due.
    pub fn wake_at(&self) -> DateTime<Utc> {
        let due = self.next_incremental.min(self.next_full_refresh);
        let wake = match self.hold {
            // Backfill waits only for the hold to pass.
            Some(hold) if self.backfill_pending => hold.until,
            Some(hold) => hold.until.max(due),
            None => due,
        };
        wake.max(self.live_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::tests::{at, berlin, times};

    fn cadence(run_times: &[NaiveTime]) -> Cadence<'_> {
        Cadence { run_times, timezone: berlin(), frequency: Duration::hours(6) }
    }

    #[test]
    fn a_supplier_s_time_held_in_the_store_is_merged_apart_from_the_failure_hold() {
        let two = times(&["02:00"])[0];
        let now = at("2026-06-01T12:00:00Z");
        let mut plan = Plan::start(cadence(&times(&["00:00"])), two, None, None, now, now);
        assert!(!plan.hold_for_the_supplier(now, now), "a time passed holds nothing");
        assert_eq!(plan.hold, None);
        // A failure (a 5xx) holds the feed until 12:05; another run meets a 429 asking until
        // 12:04, inside that hold: a manual run asked for after the failure still waits for it.
        let failure =
            Hold { failed_at: now, until: at("2026-06-01T12:05:00Z"), supplier_until: None, request_waiting: None };
        plan.hold = Some(failure);
        assert!(plan.hold_for_the_supplier(at("2026-06-01T12:04:00Z"), at("2026-06-01T12:01:00Z")));
        assert_eq!(plan.manual_run_from(at("2026-06-01T12:02:00Z")), at("2026-06-01T12:04:00Z"));
        assert_eq!(plan.hold.map(|hold| hold.until), Some(failure.until), "the failure hold stands");
        // A shorter time shortens nothing; a longer one lengthens both.
        assert!(!plan.hold_for_the_supplier(at("2026-06-01T12:03:00Z"), at("2026-06-01T12:01:00Z")));
        assert!(plan.hold_for_the_supplier(at("2026-06-01T13:00:00Z"), at("2026-06-01T12:01:00Z")));
        let hold = plan.hold.expect("held");
        assert_eq!((hold.until, hold.supplier_until), (at("2026-06-01T13:00:00Z"), Some(at("2026-06-01T13:00:00Z"))));
    }

    #[test]
    fn the_full_refresh_is_weekly_on_sunday_local_time() {
        let two = times(&["02:00"])[0];
        let first = next_full_refresh_at(berlin(), two, at("2026-03-25T12:00:00Z"));
        let second = next_full_refresh_at(berlin(), two, first);
        // 02:00 does not exist on 2026-03-29 in Berlin: it runs when the clocks jump.
        assert_eq!((first, second), (at("2026-03-29T01:00:00Z"), at("2026-04-05T00:00:00Z")));
        assert_eq!(previous_full_refresh_at(berlin(), two, second), Some(second));
    }

    #[test]
    fn a_failed_refresh_lets_a_backfill_go_before_it_is_tried_again() {
        let two = times(&["02:00"])[0];
        let now = at("2026-06-03T07:00:00Z");
        let go_live = at("2026-05-31T22:00:00Z");
        let run_times = times(&["06:00"]);
        let refreshed = at("2026-05-20T00:00:00Z");
        let mut plan = Plan::start(cadence(&run_times), two, Some(now), Some(refreshed), go_live, now);
        plan.next_incremental = cadence(&run_times).next_run_at(now);
        assert_eq!(plan.next_work(now), Some(Work::FullRefresh), "refreshed before: the weekly refresh first");
        plan.refresh_failed = true;
        assert_eq!(plan.next_work(now), Some(Work::Backfill), "the refresh failed: a gap's backfill goes first");
        plan.refresh_failed = false;
        assert_eq!(plan.next_work(now), Some(Work::FullRefresh), "then the refresh again");
        plan.refresh_failed = true;
        plan.backfill_pending = false;
        assert_eq!(plan.next_work(now), Some(Work::FullRefresh), "no gap left: nothing to let go first");
    }

    #[test]
    fn a_due_incremental_comes_before_backfill_and_the_first_refresh_waits_for_it() {
        let run_times = times(&["00:00", "06:00", "12:00", "18:00"]);
        let two = times(&["02:00"])[0];
        let now = at("2026-06-03T07:00:00Z");
        let go_live = at("2026-05-31T22:00:00Z");
        let mut plan = Plan::start(cadence(&run_times), two, None, None, go_live, now);
        assert_eq!(plan.next_incremental, at("2026-06-03T04:00:00Z"), "06:00 local passed without a run");
        assert_eq!(plan.next_work(now), Some(Work::Incremental));
        plan.next_incremental = cadence(&run_times).next_run_at(now);
        assert_eq!(plan.next_work(now), Some(Work::Backfill), "the refresh never ran, but gaps are left");
        plan.backfill_pending = false;
        assert_eq!(plan.next_work(now), Some(Work::FullRefresh));
        plan.next_full_refresh = next_full_refresh_at(berlin(), two, now);
        assert_eq!(plan.next_work(now), None);
        assert_eq!(plan.wake_at(), at("2026-06-03T10:00:00Z"));
        let hold = Hold {
            failed_at: at("2026-06-03T10:00:00Z"),
            until: at("2026-06-03T11:00:00Z"),
            supplier_until: None,
            request_waiting: Some(at("2026-06-03T09:59:00Z")),
        };
        plan.hold = Some(hold);
        assert_eq!(plan.next_work(at("2026-06-03T10:30:00Z")), None, "held after a failure");
        assert_eq!(plan.wake_at(), at("2026-06-03T11:00:00Z"));
        assert_eq!(plan.manual_run_from(at("2026-06-03T09:59:00Z")), hold.until, "waiting at the failure");
        assert_eq!(plan.manual_run_from(at("2026-06-03T10:01:00Z")), go_live, "asked after it: at once");
        // The admin service's clock ahead of the worker's: the request that was waiting (or
        // whose run failed) is stamped after the failure, and still waits out the hold.
        let ahead = Hold { request_waiting: Some(at("2026-06-03T10:00:10Z")), ..hold };
        plan.hold = Some(ahead);
        assert_eq!(plan.manual_run_from(at("2026-06-03T10:00:10Z")), hold.until, "its own failure");
        plan.hold = Some(hold);
        plan.hold = Some(Hold { supplier_until: Some(at("2026-06-03T10:20:00Z")), ..hold });
        assert_eq!(plan.manual_run_from(at("2026-06-03T10:01:00Z")), at("2026-06-03T10:20:00Z"), "Retry-After");

        let covered = Plan::start(cadence(&run_times), two, Some(at("2026-06-03T04:00:00Z")), Some(now), go_live, now);
        assert_eq!(covered.next_incremental, at("2026-06-03T10:00:00Z"));
        assert_eq!(covered.next_full_refresh, at("2026-06-07T00:00:00Z"));
    }

    #[test]
    fn nothing_is_due_before_going_live_and_the_plan_starts_there() {
        let run_times = times(&["09:00"]);
        let two = times(&["02:00"])[0];
        // Configured on Monday to go live on Thursday 2026-06-04 (Berlin).
        let (now, go_live) = (at("2026-06-01T12:00:00Z"), at("2026-06-03T22:00:00Z"));
        let plan = Plan::start(cadence(&run_times), two, None, None, go_live, now);
        assert_eq!(plan.next_work(now), None);
        assert_eq!(plan.next_work(at("2026-06-03T21:59:59Z")), None, "not even backfill");
        assert_eq!(plan.wake_at(), go_live);
        assert_eq!(plan.manual_run_from(now), go_live, "a manual run waits for going live too");
        // At going live: the incremental of the last run time (Wednesday 09:00, an empty
        // window), and the weekly refresh never run.
        assert_eq!(plan.next_incremental, at("2026-06-03T07:00:00Z"));
        assert_eq!(plan.next_full_refresh, at("2026-05-31T00:00:00Z"));
        assert_eq!(plan.next_work(go_live), Some(Work::Incremental));
    }
}
